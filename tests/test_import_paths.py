"""What the commands measured in bench/bench_commands.py import (issue 12): each module
named here cost a command a tenth of a bare interpreter start or more."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli.main import _Formatter

ROOT = Path(__file__).resolve().parents[1]
GUEST = ROOT / "tests" / "allocation" / "golden"


def _modules_after(args: list[str], cwd: Path) -> set[str]:
    code = (
        "import sys, io, contextlib\n"
        "from hostdev_resolver.doors.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main({args!r})\n"
        "print(rc, ' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd
    )
    rc, _, names = out.stdout.strip().partition(" ")
    assert rc == "0", out.stderr
    return set(names.split())


def test_allocate_imports_no_tempfile_typing_or_shutil(tmp_path: Path) -> None:
    domain = tmp_path / "d.xml"
    domain.write_text(
        "<domain type='kvm'><name>a</name><memory>1048576</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
        "<devices><interface type='user'><model type='virtio'/></interface></devices></domain>"
    )
    loaded = _modules_after(["allocate", str(domain), "-o", str(tmp_path / "o.xml")], tmp_path)
    assert {"tempfile", "typing", "shutil"} & loaded == set()
    assert (tmp_path / "o.xml").read_text().count("<address") >= 1


def test_the_help_is_as_wide_as_argparse_makes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for columns in ("60", "132", "", "junk"):
        monkeypatch.setenv("COLUMNS", columns)
        ours = _Formatter("prog")
        theirs = argparse.HelpFormatter("prog")
        assert ours._width == theirs._width, columns
