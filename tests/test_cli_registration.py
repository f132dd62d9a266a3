"""One registration scheme for the CLI's commands (doors.cli.main.COMMANDS): each
command's module adds its own parser, and is imported only when that command runs."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from hostdev_resolver.doors.cli.main import COMMANDS, build_parser

PROBE = """
import sys
from hostdev_resolver.doors.cli.main import build_parser
build_parser(sys.argv[1])
print(" ".join(sorted(m for m in sys.modules if m.startswith("hostdev_resolver.doors.cli."))))
"""


@pytest.mark.parametrize("name", sorted({name for name, _, _ in COMMANDS}))
def test_a_command_imports_only_its_own_module(name: str) -> None:
    module = next(m for n, m, _ in COMMANDS if n == name)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, name], capture_output=True, text=True, check=True
    ).stdout.split()
    expected = {"main", "common", "parser", module} | ({"mapcheck"} if name == "map" else set())
    assert set(out) == {f"hostdev_resolver.doors.cli.{m}" for m in expected}


def _listed(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in sub._choices_actions}


def test_a_command_is_described_the_same_whichever_command_runs() -> None:
    whole = _listed(build_parser())
    assert list(whole) == [name for name, _, _ in COMMANDS]
    for name, _, _ in COMMANDS:
        assert _listed(build_parser(name)) == whole


def test_a_command_run_builds_its_own_parser_alone_and_help_still_lists_all(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hostdev_resolver.doors.cli import main as cli

    assert list(_listed(build_parser("inventory", only=True))) == ["inventory"]
    assert list(_listed(build_parser("inventory"))) == [name for name, _, _ in COMMANDS]
    # Help before the command, and a command that does not exist, see every command.
    with pytest.raises(SystemExit):
        cli.main(["--help", "inventory"])
    listed = capsys.readouterr().out
    assert all(name in listed for name, _, _ in COMMANDS)
    assert cli.main(["inventroy"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'inventroy'" in err and "'validate'" in err


def test_version_and_top_level_help_import_no_command_module() -> None:
    probe = (
        "import sys\n"
        "from hostdev_resolver.doors.cli.main import main\n"
        "try:\n"
        "    main([sys.argv[1]])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('hostdev_resolver.doors.cli.')),"
        " file=sys.stderr)\n"
    )
    # --help needs argparse's parser (cli.parser); --version is printed without it.
    for flag, parser in (("--version", []), ("--help", ["hostdev_resolver.doors.cli.parser"])):
        proc = subprocess.run(
            [sys.executable, "-c", probe, flag], capture_output=True, text=True, check=True
        )
        assert proc.stderr.strip() == str(
            ["hostdev_resolver.doors.cli.common", "hostdev_resolver.doors.cli.main", *parser]
        )
        assert proc.stdout.strip()
