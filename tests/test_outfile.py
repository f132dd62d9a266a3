"""outfile: output files are replaced whole (tempfile's mkstemp semantics, without it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

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
