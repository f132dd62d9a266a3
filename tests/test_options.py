"""The store and host-source options are spelled once (doors.options) and every door
takes them as spelled there: the one-node commands, `map check`, `bind` and hostdev-virsh."""

from __future__ import annotations

import argparse

import pytest

from hostdev_resolver.doors import options, wrapper
from hostdev_resolver.doors.cli.main import build_parser
from hostdev_resolver.host.hostsource import default_store
from hostdev_resolver.host.storeread import DEFAULT_PATH


def _sub(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _check(parser: argparse.ArgumentParser, door: tuple[tuple[str, ...], ...]) -> None:
    actions = {s: a for a in parser._actions for s in a.option_strings}
    for option in door:
        flag, help = option[0], option[1]
        value, repeat = options.SPECS[flag]
        action = actions[flag]
        assert action.help == help
        assert (action.nargs == 0) == (value is None)
        assert isinstance(action, argparse._AppendAction) == repeat
        if value is not None:
            assert action.metavar == options.metavar(option)


def test_the_default_store_the_help_names_is_the_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = f"$HOSTDEV_RESOLVER_STORE or {DEFAULT_PATH}"
    assert expected == options.DEFAULT_STORE
    monkeypatch.delenv("HOSTDEV_RESOLVER_STORE", raising=False)
    assert default_store() == DEFAULT_PATH
    monkeypatch.setenv("HOSTDEV_RESOLVER_STORE", "/s.xml")
    assert default_store() == "/s.xml"


@pytest.mark.parametrize(
    ("path", "door"),
    [
        (("resolve",), options.COMMON),
        (("map", "add", "pci"), options.COMMON),
        (("map", "check"), options.MAP_CHECK_STORE + options.MAP_CHECK_NODES),
        (("bind",), options.BIND),
        (("unbind",), options.BIND),
    ],
)
def test_every_command_takes_the_options_as_the_table_spells_them(
    path: tuple[str, ...], door: tuple[tuple[str, ...], ...]
) -> None:
    _check(_sub(build_parser(path[0]), *path), door)


def test_one_node_commands_take_one_source() -> None:
    sources = [a for g in _sub(build_parser("resolve"), "resolve")._mutually_exclusive_groups
               for a in g._group_actions]  # fmt: skip
    assert tuple(s for a in sources for s in a.option_strings) == options.SOURCES


def test_hostdev_virsh_reads_the_table_as_its_help_shows_it() -> None:
    _check(wrapper.build_parser(), options.WRAPPER)
    for option in options.WRAPPER:
        flag = option[0]
        assert options.SPECS[flag][0] is not None  # hostdev-virsh's shared options take values
        for argv in (["define", "f.xml", flag, "v"], ["define", "f.xml", f"{flag}=v"]):
            assert wrapper.split_command_line(argv).ours == {flag: "v"}
