"""packaging/manpage.py: the man pages say everything --help says, and render cleanly."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import manpage
import pytest

from hostdev_resolver.core.metadata import HR_NS
from hostdev_resolver.doors import hookops
from hostdev_resolver.doors.hookops import HookConfig
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


def test_main_writes_every_page(tmp_path: Path) -> None:
    assert manpage.main(["--outdir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hostdev-resolver-hook.8",
        "hostdev-resolver.8",
        "hostdev-virsh.8",
    ]


def _man(man: str, path: Path) -> str:
    proc = subprocess.run(
        [man, "--warnings", "-l", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MANWIDTH": "200", "LANG": "C.UTF-8"},
        check=False,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def _section(page: str, title: str) -> str:
    match = re.search(rf"^{title}\n(.*?)(?=^[A-Z]|\Z)", page, re.M | re.S)
    assert match, f"no {title} section"
    return " ".join(match.group(1).split())


def test_hostdev_resolver_page_has_the_readme_example_files_and_namespace(
    tmp_path: Path, man: str
) -> None:
    page = PAGES["hostdev-resolver"]
    path = tmp_path / "hostdev-resolver.8"
    path.write_text(manpage.render(page, manpage.build_parser(page), "9.9.9", "2025-01-02"))
    text = _man(man, path)
    examples = _section(text, "EXAMPLES")
    readme = manpage._readme_section("A worked example")
    commands = [line for line in readme.splitlines() if line.startswith("# hostdev-resolver ")]
    assert len(commands) >= 3
    for line in commands:
        assert " ".join(line.split()) in examples, line
    assert "hostdev-resolver resolve ml-train.xml" in examples
    domain_xml = _section(text, "DOMAIN XML")
    assert f"xmlns:hr='{HR_NS}'" in domain_xml and f"namespace {HR_NS}:" in domain_xml
    assert "schemas/domain.xsd" in domain_xml
    files = _section(text, "FILES")
    for path_text in (
        "/etc/hostdev-resolver/mappings.xml",
        "/etc/hostdev-resolver/hook.toml",
        "/etc/libvirt/hooks/qemu.d/50-hostdev-resolver",
        "/usr/libexec/hostdev-resolver/qemu-hook",
        "/usr/share/doc/hostdev-resolver/",
    ):
        assert path_text in files
    assert "HOSTDEV_RESOLVER_STORE" in _section(text, "ENVIRONMENT")
    assert "hostdev-resolver-hook(8)" in _section(text, "SEE ALSO")


def test_hook_page_lists_every_config_key_with_its_default(tmp_path: Path, man: str) -> None:
    path = tmp_path / "hostdev-resolver-hook.8"
    path.write_text(manpage._hook_page("9.9.9", "2025-01-02"))
    text = _man(man, path)
    assert text.startswith("HOSTDEV-RESOLVER-HOOK(8)")
    config = _section(text, "CONFIGURATION")
    defaults = HookConfig()
    _, keys = manpage.hook_config((apt.PACKAGING / "hook.toml").read_text())
    # Every key the hook accepts, and nothing else, as the installed file has it.
    assert [key.name for key in keys] == list(hookops._KEYS)
    for key in keys:
        assert f"{key.name} = {key.default}" in config
        assert key.text and " ".join(key.text.split()) in config
        value = getattr(defaults, key.name)
        # None: a default found at run time (node: this host's name; modules_alias: the
        # running kernel's file), which the file shows as an example.
        if value is not None:
            shown = str(value).lower() if isinstance(value, bool | int) else f'"{value}"'
            assert key.default == shown, key
    for heading in ("OPERATIONS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"):
        assert _section(text, heading)
    assert "HOSTDEV_RESOLVER_CONFIG" in _section(text, "ENVIRONMENT")
    assert "prepare begin" in _section(text, "OPERATIONS")


def test_hook_config_reader() -> None:
    header, keys = manpage.hook_config(
        "# title\n#\n# First paragraph\n# goes on.\n\n# The key.\n#a_key = 1\n\n#b = 'x'\n"
    )
    assert header == ["First paragraph goes on."]
    assert keys == [manpage.ConfigKey("a_key", "1", "The key."), manpage.ConfigKey("b", "'x'", "")]
