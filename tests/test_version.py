"""`hostdev-resolver --version` and `hostdev-virsh --version` (ours, then virsh's)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hostdev_resolver import __version__
from hostdev_resolver.doors.cli.main import main as cli
from hostdev_resolver.doors.wrapper import _asks_version, split_command_line

REPO = Path(__file__).resolve().parents[1]


def test_the_version_is_the_projects() -> None:
    with open(REPO / "pyproject.toml", "rb") as handle:
        assert tomllib.load(handle)["project"]["version"] == __version__


def test_hostdev_resolver_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"hostdev-resolver {__version__}\n"


@pytest.mark.parametrize(
    ("argv", "asks"),
    [
        (["--version"], True),
        (["--version=long"], True),
        (["--vers"], True),
        (["-v"], True),
        (["-V"], True),
        (["-qv"], True),
        (["-c", "test:///default", "-r", "--version"], True),
        (["-cv"], False),  # -c's value is "v"
        (["-q"], False),
        (["-c", "qemu:///system", "list"], False),
    ],
)
def test_which_command_lines_ask_for_the_version(argv: list[str], asks: bool) -> None:
    assert _asks_version(split_command_line(argv).virsh_globals) == asks


def test_hostdev_virsh_prints_ours_then_virshs(tmp_path: Path) -> None:
    fake = tmp_path / "virsh"
    fake.write_text('#!/bin/sh\necho "virsh called with: $*"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    for flag in ("--version", "-V"):
        proc = subprocess.run(
            [sys.executable, "-m", "hostdev_resolver.doors.wrapper", flag],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"hostdev-virsh {__version__}\nvirsh called with: {flag}\n"
