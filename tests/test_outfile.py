"""outfile: output files are replaced whole (tempfile's mkstemp semantics, without it)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.doors.cli.common import write_output
from hostdev_resolver.host.outfile import create_temporary, replace_file


def test_a_temporary_file_is_new_private_and_beside_its_target(tmp_path: Path) -> None:
    fd, path = create_temporary(str(tmp_path), ".x-")
    os.close(fd)
    fd2, path2 = create_temporary(str(tmp_path), ".x-")
    os.close(fd2)
    assert path != path2 and os.path.dirname(path) == str(tmp_path)
    assert os.path.basename(path).startswith(".x-")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_replace_file_leaves_the_new_bytes_or_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.xml"
    target.write_bytes(b"old")
    replace_file(str(target), b"new", ".t-")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.xml"]

    def fail(_src: str, _dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        replace_file(str(target), b"newer", ".t-")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.xml"]  # no temporary left behind


def test_an_unwritable_directory_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        create_temporary(str(tmp_path / "missing"), ".x-")


def test_a_symlinked_output_is_written_at_its_target_and_stays_a_link(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    real = shared / "out.xml"
    real.write_bytes(b"old")
    link = tmp_path / "out.xml"
    link.symlink_to("shared/out.xml")  # relative, as `ln -s` is usually used
    replace_file(str(link), b"new", ".t-")
    assert link.is_symlink() and link.resolve() == real
    assert real.read_bytes() == b"new"
    # the temporary file was made (and renamed) beside the target, not beside the link
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.xml", "shared"]
    assert [p.name for p in shared.iterdir()] == ["out.xml"]


def test_a_dangling_output_link_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "out.xml"
    link.symlink_to(tmp_path / "new.xml")
    replace_file(str(link), b"new", ".t-")
    assert link.is_symlink() and (tmp_path / "new.xml").read_bytes() == b"new"


def test_an_output_link_loop_is_eloop_and_left_alone(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(OSError) as exc:
        replace_file(str(a), b"new", ".t-")
    assert exc.value.errno == errno.ELOOP
    assert a.is_symlink() and b.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_commands_write_o_through_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`allocate -o` and every command writing through common.write_output (resolve,
    map check, …) keep a symlinked OUT a link."""
    domain = tmp_path / "d.xml"
    domain.write_text(
        "<domain type='kvm'><name>a</name><memory>1048576</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
        "<devices><interface type='user'><model type='virtio'/></interface></devices></domain>"
    )
    (tmp_path / "real").mkdir()
    link = tmp_path / "o.xml"
    link.symlink_to("real/o.xml")
    assert cli.main(["allocate", str(domain), "-o", str(link)]) == 0, capsys.readouterr().err
    assert link.is_symlink()
    assert (tmp_path / "real" / "o.xml").read_text().count("<address") >= 1
    write_output(b"<resolved/>", str(link))
    assert link.is_symlink() and (tmp_path / "real" / "o.xml").read_bytes() == b"<resolved/>"


def test_an_existing_output_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "guest.xml"
    out.write_bytes(b"old")
    out.chmod(0o640)
    replace_file(str(out), b"new", ".guest.")
    assert out.read_bytes() == b"new"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_a_new_output_gets_0666_less_the_umask_as_a_shell_gives_it(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        replace_file(str(tmp_path / "new.xml"), b"x", ".new.")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.xml").stat().st_mode) == 0o640
