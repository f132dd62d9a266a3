"""read_trusted: what the root hook reads must be root's, all the way up, and not swappable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostdev_resolver.errors import UntrustedFileError
from hostdev_resolver.store import read_trusted

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
