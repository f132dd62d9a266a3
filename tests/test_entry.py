"""The installed commands' entry points (doors.entry): each command is a short-lived
process that runs without the cyclic garbage collector; the agent runs with it."""

from __future__ import annotations

import gc
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_console_scripts_are_the_entry_points() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {
        "hostdev-resolver": "hostdev_resolver.doors.entry:hostdev_resolver",
        "hostdev-virsh": "hostdev_resolver.doors.entry:hostdev_virsh",
    }


@pytest.mark.parametrize("entry", ["hostdev_resolver", "hostdev_virsh"])
def test_a_command_runs_without_the_cyclic_collector(entry: str) -> None:
    """The collector is off before the command's first import, and stays off."""
    code = (
        "import gc, sys\n"
        f"from hostdev_resolver.doors.entry import {entry}\n"
        "import hostdev_resolver.doors.cli.main as cli, hostdev_resolver.doors.wrapper as w\n"
        "seen = []\n"
        "cli.main = w.main = lambda: seen.append(gc.isenabled()) or 0\n"
        f"rc = {entry}()\n"
        "print(rc, seen, gc.isenabled())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["0", "[False]", "False"]


def test_the_agent_turns_the_collector_back_on() -> None:
    """`agent` runs for days: the first thing it does is collect again (here it then
    refuses its missing options, as it always has)."""
    import argparse

    from hostdev_resolver.doors.cli.cluster import cmd_agent
    from hostdev_resolver.model.errors import UsageError

    gc.disable()
    try:
        with pytest.raises(UsageError):
            cmd_agent(argparse.Namespace(config=None, store=None, cache=None, node=None))
        assert gc.isenabled()
    finally:
        gc.enable()
