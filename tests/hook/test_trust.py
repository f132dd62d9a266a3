"""read_trusted: what the root hook reads must be root's, all the way up, and not swappable."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hostdev_resolver.host.storeread import read_trusted
from hostdev_resolver.model.errors import UntrustedFileError


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail, instead of hanging the suite, when a read blocks (a FIFO without a writer)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    directory = tmp_path / "etc"
    directory.mkdir(mode=0o755)
    path = directory / "mappings.xml"
    path.write_text("<mappings/>")
    path.chmod(0o644)
    return path


def test_a_root_owned_file_in_root_directories_is_read(store: Path) -> None:
    assert read_trusted(str(store)) == b"<mappings/>"


def test_a_directory_another_user_owns_is_refused(store: Path) -> None:
    os.chown(store.parent, 65534, 65534)
    with pytest.raises(UntrustedFileError, match="which another user can change"):
        read_trusted(str(store))


def test_a_group_writable_directory_is_refused_a_sticky_one_is_not(store: Path) -> None:
    store.parent.chmod(0o775)
    with pytest.raises(UntrustedFileError, match="mode 775"):
        read_trusted(str(store))
    store.parent.chmod(0o1777)  # like /tmp: others cannot rename what they do not own
    assert read_trusted(str(store)) == b"<mappings/>"


def test_a_symlink_is_not_followed(store: Path) -> None:
    link = store.parent / "link.xml"
    link.symlink_to(store)
    with pytest.raises(UntrustedFileError, match="a symlink is not followed"):
        read_trusted(str(link))


def test_the_file_itself_is_checked(store: Path) -> None:
    store.chmod(0o666)
    with pytest.raises(UntrustedFileError, match="group- or world-writable"):
        read_trusted(str(store))
    store.chmod(0o644)
    os.chown(store, 65534, 65534)
    with pytest.raises(UntrustedFileError, match="owned by uid 65534"):
        read_trusted(str(store))


def test_a_missing_file_is_left_to_the_caller(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_trusted(str(tmp_path / "nope.xml"))


def symlinked_store(tmp_path: Path, store: Path) -> tuple[Path, Path]:
    """etc/by-link -> home/hostdev (a root-owned directory in uid 1000's home)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chown(home, 1000, 1000)
    real = home / "hostdev"
    real.mkdir(mode=0o755)
    (real / "mappings.xml").write_bytes(store.read_bytes())
    link = store.parent / "by-link"
    link.symlink_to(real)
    return link / "mappings.xml", home


def test_a_symlinked_directory_is_checked_where_it_really_is(tmp_path: Path, store: Path) -> None:
    path, home = symlinked_store(tmp_path, store)
    # Every directory on the written path is root's; the link leads through uid 1000's.
    with pytest.raises(UntrustedFileError) as caught:
        read_trusted(str(path))
    assert caught.value.message == (
        f"{path}: the mapping store is under {home} (reached through the symlink "
        f"{store.parent / 'by-link'}), which another user can change (owner uid 1000, "
        f"mode 755); not trusted; keep it in a directory only root can write, e.g. "
        f"chown root {home}; chmod go-w {home}"
    )
    os.chown(home, 0, 0)
    assert read_trusted(str(path)) == b"<mappings/>"


def test_relative_links_and_dot_dot_are_walked_physically(tmp_path: Path, store: Path) -> None:
    home = tmp_path / "home"
    (home / "a").mkdir(parents=True)
    os.chown(home, 1000, 1000)
    (home / "mappings.xml").write_text("<evil/>")
    # etc/up -> ../home/a: 'up/../mappings.xml' is home/mappings.xml to the kernel,
    # though etc/mappings.xml (root's) to anyone who normalises the path as text.
    (store.parent / "up").symlink_to("../home/a")
    with pytest.raises(UntrustedFileError, match=f"is under {home} "):
        read_trusted(str(store.parent / "up" / ".." / "mappings.xml"))
    os.chown(home, 0, 0)
    assert read_trusted(str(store.parent / "up" / ".." / "mappings.xml")) == b"<evil/>"


def test_a_symlink_loop_on_the_way_is_refused(tmp_path: Path, store: Path) -> None:
    (store.parent / "loop").symlink_to("loop")
    with pytest.raises(UntrustedFileError, match="more than 40 symlinks"):
        read_trusted(str(store.parent / "loop" / "mappings.xml"))


def test_a_missing_directory_is_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_trusted(str(tmp_path / "no-such-dir" / "mappings.xml"))


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_node_is_refused_without_blocking(
    tmp_path: Path, store: Path, kind: str
) -> None:
    store.unlink()
    if kind == "fifo":
        os.mkfifo(store, 0o644)  # open(O_RDONLY) would wait for a writer forever
        what = "a FIFO"
    else:
        os.mknod(store, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
        what = "a character device"
    with deadline(10), pytest.raises(UntrustedFileError, match=f"the mapping store is {what}, not"):
        read_trusted(str(store))
