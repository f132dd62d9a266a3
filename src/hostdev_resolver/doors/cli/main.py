"""The `hostdev-resolver` command line (SPEC §5).

Only this layer (with the hook and the wrapper) turns errors into exit codes:
0 success, 1 refused, 2 malformed input or usage, 3 environment.
"""

from __future__ import annotations

import sys

from ... import __doc__ as _package_doc
from ... import __version__
from ...model.errors import HostdevError
from ..options import COMMON
from .common import add_options

# Not typing.TYPE_CHECKING: every command pays for what this module imports, and
# typing alone is half a bare interpreter's start-up. Modules only some commands need
# (json, tempfile, the allocator, the store writer) are imported where they are used.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    Handler = Callable[[argparse.Namespace], int]
    Subparsers = argparse._SubParsersAction[Any]
    Register = Callable[[Subparsers, str, str, argparse.ArgumentParser], None]


def _common(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand accepts after its name (`map add … --store S --sysfs R`)."""
    add_options(parser.add_argument_group("common options"), COMMON, one_source=True)


# -- parser ----------------------------------------------------------------------


# Every command: its name, one line of help, and the module (in doors/cli) whose
# `register(subparsers, name, help, common)` adds its parser and handler. A module is
# imported only when one of its commands runs, or for the whole parser (--help,
# completion, the man page): building every command's parser, and importing what it
# needs, costs a command more than its own work. The others are listed by name.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("inventory", "inventory", "list the host's PCI and USB devices with IOMMU groups and drivers"),
    ("map", "maps", "manage the mapping store"),
    ("resolve", "resolve", "rewrite hr:map references into plain libvirt XML for a node"),
    ("validate", "resolve", "check domain files and stores offline"),
    ("verify", "resolve", "the hook's start-time check, as a dry run"),
    ("allocate", "allocate", "assign guest PCI addresses (libvirt-identical, or tuned)"),
    ("hook", "hookinstall", "the libvirt qemu hook"),
    (
        "bind",
        "bind",
        "bind mapped PCI devices (and their IOMMU groups) to vfio-pci now, by identity",
    ),
    ("unbind", "bind", "give mapped devices bound by 'bind' back to their original drivers"),
    ("store", "cluster", "convert the store between etcd and its file form"),
    (
        "agent",
        "cluster",
        "cluster node service: cache the etcd store, publish this node's inventory",
    ),
)


def build_parser(command: str | None = None, *, only: bool = False) -> argparse.ArgumentParser:
    """The whole parser; with `command`, that subcommand's arguments only (the others
    are listed by name, see COMMANDS); with `only` too, the others are left out: each
    subparser argparse makes costs a command ~0.3 ms (its translated strings are looked
    up through gettext, with a stat per locale), and a command's own run needs none."""
    from .parser import Parser

    common = Parser(add_help=False)
    _common(common)
    parser = Parser(
        prog="hostdev-resolver",
        description=(_package_doc or "").strip()
        + " Resolve stable device names from a mapping store into libvirt domain XML, verify them, validate offline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, module, help in COMMANDS:
        if command is None or command == name:
            register: Register = command_module(module).register
            register(sub, name, help, common)
        elif not only:
            sub.add_parser(name, help=help)
    return parser


def register_of(command: str) -> Register:
    """The `register` of the module (in doors/cli) that adds `command`'s parser."""
    module = next(module for name, module, _ in COMMANDS if name == command)
    register: Register = command_module(module).register
    return register


def command_module(name: str) -> Any:
    """doors.cli.NAME, imported now (importlib.import_module, without importing importlib)."""
    return __import__(f"{__package__}.{name}", fromlist=["register"])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        given = list(sys.argv[1:] if argv is None else argv)
        command = next((a for a in given if not a.startswith("-")), None)
        # `hostdev-resolver COMMAND …` runs one command: its parser alone (the full list
        # of commands only matters for --help, or a command that does not exist).
        only = bool(given) and given[0] == command and any(c[0] == command for c in COMMANDS)
        args: Any = None
        if only:
            from .fastargs import read_command_line

            assert command is not None
            args = read_command_line(given, register_of(command), _common)
        elif given == ["--version"]:
            # As argparse's version action words it, and ends (SystemExit(0), not a return).
            print(f"hostdev-resolver {__version__}")
            raise SystemExit(0)
        if args is None:  # help, a usage error, a spelling only argparse reads
            # No command (--help): every command listed by name, none imported.
            args = build_parser(command or "", only=only).parse_args(given)
        handler: Handler = args.handler
        return handler(args)
    except HostdevError as exc:
        print(f"hostdev-resolver: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hostdev-resolver: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
