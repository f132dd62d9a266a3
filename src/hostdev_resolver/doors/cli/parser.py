"""argparse's parser for `hostdev-resolver`: what `--help`, usage errors, completion and
the man pages are made from, and what reads a command line the fast reader
(`fastargs`) leaves to it. Imported only then: argparse, with re, enum and gettext,
costs a command about as much as a bare interpreter's start (issue 12)."""

from __future__ import annotations

import argparse
import os
import sys

from ...model.errors import UsageError

# Not typing.TYPE_CHECKING: see main.py.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size finds it: $COLUMNS, else stdout's
    terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized without importing shutil: argparse makes one for
    every add_argument (to check its metavar), and shutil (with bz2, lzma and fnmatch)
    costs every command about a tenth of a bare interpreter start."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (SPEC §5)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        # main() prefixes "hostdev-resolver: "; name only the subcommand, if any.
        sub = self.prog.partition(" ")[2]
        raise UsageError(f"{sub}: {message}" if sub else message, fix=f"see '{self.prog} --help'")
