"""The fast command-line reader (doors.cli.fastargs) against argparse: on any command
line it reads, it gives the namespace argparse gives; what it does not read, argparse
reads (errors, help and their wording stay argparse's)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.doors.cli.fastargs import Namespace, read_command_line, record
from hostdev_resolver.model.errors import UsageError

# Every command's leaves: the words that name one parser's arguments.
LEAVES = [
    ["inventory"],
    ["resolve"],
    ["validate"],
    ["verify"],
    ["allocate"],
    ["bind"],
    ["unbind"],
    ["agent"],
    ["store", "export"],
    ["store", "import"],
    ["hook", "install"],
    ["map", "list"],
    ["map", "show"],
    ["map", "remove"],
    ["map", "check"],
    *(["map", "add", kind] for kind in ("pci", "usb", "vf", "mdev", "lun", "scsi", "vhba")),
]


def _fast(argv: list[str]) -> Namespace | None:
    return read_command_line(argv, cli.register_of(argv[0]), cli._common)


_PARSERS: dict[str, Any] = {}


def _argparse(argv: list[str]) -> dict[str, Any] | None:
    """What argparse makes of argv; None for a usage error or --help."""
    parser = _PARSERS.get(argv[0])
    if parser is None:
        parser = _PARSERS[argv[0]] = cli.build_parser(argv[0], only=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return vars(parser.parse_args(argv))
    except (UsageError, SystemExit):
        return None


def _flags(leaf: list[str]) -> list[str]:
    """The option strings the leaf's parser takes (as the fast reader records them)."""
    parser = record(leaf[0], cli.register_of(leaf[0]), cli._common)
    for word in leaf:
        assert parser._subparsers is not None
        parser = parser._subparsers.parsers[word]
    return sorted(parser._by_flag)


# Values of every shape argparse treats differently: plain words, numbers, negative
# numbers, a lone dash, empty, the choices the commands have, option-looking words.
VALUES = st.sampled_from(
    [
        "a.xml", "b.xml", "gpu0", "hv1", "0", "7", "1.5", "-1", "-", "", "text", "json",
        "start", "boot", "libvirt", "tuned", "on", "off", "0000:41:00.0", "x=y", "--",
        "-h", "--help", "--bogus", "--sto", "-o", "with space", "-x y",
    ]
)  # fmt: skip


def _tokens(flags: list[str]) -> st.SearchStrategy[list[str]]:
    """Command lines after the leaf's words: options alone, with a value in the next
    word or after '=', and loose words."""
    flag = st.sampled_from(flags or ["--x"])
    piece = st.one_of(
        st.builds(lambda f: [f], flag),
        st.builds(lambda f, v: [f, v], flag, VALUES),
        st.builds(lambda f, v: [f"{f}={v}"], flag, VALUES),
        st.builds(lambda v: [v], VALUES),
    )
    return st.lists(piece, max_size=5).map(lambda pieces: [t for p in pieces for t in p])


@pytest.mark.parametrize("leaf", LEAVES, ids=" ".join)
def test_it_reads_what_argparse_reads(leaf: list[str]) -> None:
    flags = _flags(leaf)

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(_tokens(flags))
    def check(tokens: list[str]) -> None:
        argv = [*leaf, *tokens]
        fast = _fast(argv)
        if fast is None:
            return  # argparse reads it
        assert _argparse(argv) == vars(fast), argv

    check()


PLAIN = [
    ["inventory", "--sysfs", "/s", "--node", "n"],
    ["inventory", "--format", "json", "--host", "h.json"],
    ["resolve", "d.xml", "-o", "out.xml", "--store", "s.xml", "--node", "n", "--sysfs", "/s"],
    ["resolve", "--store=s.xml", "d.xml"],
    ["validate", "a.xml", "b.xml", "--store", "s.xml", "--node", "n", "--sysfs", "/s"],
    ["validate", "--all-nodes", "--format", "json", "a.xml"],
    ["verify", "d.xml", "--dry-run"],
    ["allocate", "g.xml", "-o", "o.xml", "--policy", "tuned", "--spare-ports", "3"],
    ["allocate", "g.xml", "--host-numa", "0000:41:00.0=1", "--host-numa", "0000:42:00.0=0"],
    ["map", "add", "pci", "gpu0", "--address", "0000:41:00.0", "--store", "s.xml"],
    ["map", "add", "pci", "gpu0", "--address", "0000:41:00.0", "--vfio"],
    ["map", "add", "pci", "gpu0", "--vfio=boot", "--allow", "ml-*", "--allow", "ci-*"],
    ["map", "add", "vf", "nic", "--pf", "0000:43:00.0", "--index", "2"],
    ["map", "add", "mdev", "vgpu", "--parent", "gpu0", "--type", "nvidia-222"],
    ["map", "check", "--store", "s.xml", "--host", "a.json", "--host", "b.json"],
    ["map", "list"],
    ["map", "show", "gpu0", "--format", "json"],
    ["map", "remove", "gpu0", "--node", "hv1"],
    ["bind", "gpu0", "gpu1", "--dry-run"],
    ["bind", "--boot"],
    ["unbind", "gpu0", "--proc", "/p"],
    ["hook", "install", "--hooks-dir", "/h"],
    ["store", "export", "--store", "etcd://h:2379/p", "-o", "o.xml"],
    ["agent", "--once", "--heartbeat", "5"],
]


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_a_plain_command_line_is_read_without_argparse(argv: list[str]) -> None:
    fast = _fast(argv)
    assert fast is not None
    assert vars(fast) == _argparse(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["inventory", "--sysf", "/s"],  # an abbreviation: argparse's
        ["inventory", "--help"],
        ["inventory", "--udev", "--sysfs", "/s"],  # exclusive
        ["resolve", "d.xml", "--store"],  # no value
        ["resolve", "d.xml", "e.xml"],  # one too many
        ["validate", "a.xml", "--node", "n", "b.xml"],  # positionals split
        ["validate", "--format", "xml", "a.xml"],  # not a choice
        ["allocate", "g.xml", "--spare-ports", "two"],  # not an int
        ["map", "add", "pci", "gpu0", "--vfio", "boot"],  # an optional value, or NAME?
        ["map", "--store", "s.xml", "list"],  # an option before the action
        ["resolve", "--", "d.xml"],
    ],
    ids=" ".join,
)
def test_what_it_does_not_read_is_argparses(argv: list[str]) -> None:
    assert _fast(argv) is None


def _shared_dest(sub: Any, name: str, help: str, common: Any) -> None:
    p = sub.add_parser(name)
    p.add_argument("--n", dest="n", type=int)
    p.add_argument("--m", dest="n", type=int, default="5")


def _append_onto(sub: Any, name: str, help: str, common: Any) -> None:
    p = sub.add_parser(name)
    p.add_argument("--a", dest="xs", default=["d"])
    p.add_argument("--b", dest="xs", action="append")


def _const_without_optional(sub: Any, name: str, help: str, common: Any) -> None:
    sub.add_parser(name).add_argument("--c", const="x")


def _required_positional(sub: Any, name: str, help: str, common: Any) -> None:
    sub.add_parser(name).add_argument("file", required=True)


@pytest.mark.parametrize(
    ("register", "argv"),
    [
        (_shared_dest, ["c", "--n", "3"]),  # a string default no longer the dest's
        (_shared_dest, ["c"]),
        (_append_onto, ["c", "--b", "v"]),  # appended onto another argument's default
    ],
    ids=str,
)
def test_shapes_no_command_has_yet_are_read_as_argparse_reads_them(
    register: Any, argv: list[str]
) -> None:
    import argparse

    top = argparse.ArgumentParser()
    register(top.add_subparsers(dest="command", required=True), argv[0], "", None)
    fast = read_command_line(argv, register, lambda parser: None)
    assert fast is not None and vars(fast) == vars(top.parse_args(argv))


@pytest.mark.parametrize("register", [_const_without_optional, _required_positional])
def test_what_argparse_refuses_to_register_is_left_to_it(register: Any) -> None:
    assert read_command_line(["c"], register, lambda parser: None) is None


def test_appending_to_a_string_is_left_to_argparse() -> None:
    """`--a w --b v`, both into one dest, the second appending: argparse itself fails
    (a str has no append); the fast reader does not make up a list."""
    assert read_command_line(["c", "--a", "w", "--b", "v"], _append_onto, lambda p: None) is None


def test_a_plain_command_imports_neither_argparse_nor_re(tmp_path: Any) -> None:
    code = (
        "import sys, io, contextlib\n"
        "from hostdev_resolver.doors.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main(['inventory', '--sysfs', {str(tmp_path)!r}, '--node', 'n'])\n"
        "print(rc, 'argparse' in sys.modules, 're' in sys.modules, 'enum' in sys.modules)\n"
    )
    (tmp_path / "bus" / "pci" / "devices").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False", "False", "False"]


def test_version_is_worded_as_argparse_words_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.main(["--version"])
    assert ended.value.code == 0
    ours = capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.build_parser("").parse_args(["--version"])
    assert ours == capsys.readouterr().out
