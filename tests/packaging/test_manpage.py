"""packaging/manpage.py: the man pages say everything --help says, and render cleanly."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import manpage
import pytest

from tests.packaging import apt

PAGES = {page.name: page for page in manpage.PAGES}


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [parser, *(command.parser for command in manpage.commands(parser))]


@pytest.fixture(scope="module", params=sorted(PAGES))
def rendered(request: pytest.FixtureRequest) -> tuple[manpage.Page, argparse.ArgumentParser, str]:
    page = PAGES[request.param]
    parser = manpage.build_parser(page)
    return page, parser, manpage.render(page, parser, "9.9.9", "2025-01-02")


def test_every_command_and_option_of_help_is_in_the_page(
    rendered: tuple[manpage.Page, argparse.ArgumentParser, str],
) -> None:
    page, parser, text = rendered
    assert parser.prog == page.name
    assert f'.TH {manpage.escape(page.name.upper())} 8 "2025-01-02"' in text
    for command in manpage.commands(parser):
        assert f'.SS "{manpage.escape(" ".join(command.words))}' in text
        if command.help:
            assert manpage.escape(" ".join(command.help.split())) in text
    for sub in _all_parsers(parser):
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                assert f"\\fB{manpage.escape(option)}\\fR" in text, f"{sub.prog}: {option}"
            if action.help and action.option_strings:
                help_text = " ".join(manpage._formatter(sub)._expand_help(action).split())
                assert manpage.escape(help_text) in text, f"{sub.prog}: help of {action.dest}"


@pytest.fixture(scope="module")
def man() -> str:
    try:
        apt.ensure_installed(["man-db"])
    except apt.AptUnavailable as exc:
        pytest.skip(f"man-db not installed: {exc}")
    return "/usr/bin/man"


def test_pages_render_without_warnings(
    rendered: tuple[manpage.Page, argparse.ArgumentParser, str], tmp_path: Path, man: str
) -> None:
    page, _, text = rendered
    path = tmp_path / f"{page.name}.8"
    path.write_text(text)
    proc = subprocess.run(
        [man, "--warnings", "-l", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MANWIDTH": "80", "LANG": "C.UTF-8"},
        check=False,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith(f"{page.name.upper()}(8)")
    for heading in ("NAME", "SYNOPSIS", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{heading}\n" in proc.stdout


def _sample() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tool", description="tool: do a thing. More about it.\n\nSecond paragraph."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", aliases=["go"], help="run it")
    run.add_argument("--sysfs", metavar="ROOT", help="root (default: %(default)s)", default="/sys")
    run.add_argument("--secret", help=argparse.SUPPRESS)
    run.add_argument("file", metavar="FILE", help=".dotted help")
    sub.add_parser("hidden", help=argparse.SUPPRESS)
    return parser


def test_render_of_a_sample_parser() -> None:
    page = manpage.Page("tool", "sample", "fallback summary", (("SEE ALSO", ".BR x (1)"),))
    text = manpage.render(page, _sample(), "1.0", "2025-01-02")
    # NAME: the description's first sentence, without the "prog:" prefix.
    assert "\n.SH NAME\ntool \\- do a thing\n" in text
    assert "\n.PP\nSecond paragraph.\n" in text
    # Aliases are folded, hidden commands and options left out, %(default)s expanded.
    assert '.SS "run (also: go)"' in text and "hidden" not in text and "secret" not in text
    assert "root (default: /sys)" in text
    # Filling never separates an option from its metavar in a usage line.
    assert "[\\-\\-sysfs\\ ROOT]" in text
    # A help text starting with a dot is not taken for a roff request.
    assert "\n\\&.dotted help" in text
    assert text.endswith(".SH SEE ALSO\n.BR x (1)\n")


def test_name_line_stays_short() -> None:
    page = manpage.Page("tool", "sample", "fallback summary", ())
    long = "tool with extras: " + "does many things, " * 5 + "and more"
    assert manpage._summary(page, long) == "tool with extras"
    assert manpage._summary(page, "") == "fallback summary"


def test_escape() -> None:
    assert manpage.escape("a\\b") == "a\\eb"
    assert manpage.escape("--store") == "\\-\\-store"
    assert manpage.escape(".x\n'y\nz.w") == "\\&.x\n\\&'y\nz.w"


def test_date_comes_from_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert manpage.build_date() == "2023-11-14"


def test_main_writes_both_pages(tmp_path: Path) -> None:
    assert manpage.main(["--outdir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostdev-resolver.8", "hostdev-virsh.8"]
