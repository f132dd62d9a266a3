"""Render hostdev-resolver(8) and hostdev-virsh(8) from the argparse parsers behind --help.

The package build runs this (``PYTHONPATH=src python3 packaging/manpage.py --outdir DIR``),
so the pages are never a hand-kept copy: every usage line, sub-command, option and help
text comes from ``hostdev_resolver.cli.build_parser()`` and
``hostdev_resolver.wrapper.build_parser()``. Only what argparse has no place for (files,
environment, exit status, see also) is written here.

argparse has no public API for walking a parser, so the few private attributes it
needs (``_actions``, ``_action_groups``, ``_choices_actions``, ``_expand_help``) are
read in this file only; they have been stable since Python 3.2.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A width no usage line reaches: roff does the filling, argparse must not wrap.
_WIDE = 10_000


@dataclass(frozen=True)
class Page:
    """One man page: the command, where its parser is built, and the hand-written sections."""

    name: str
    module: str
    summary: str
    sections: tuple[tuple[str, str], ...]


_EXIT_STATUS = (
    "EXIT STATUS",
    ".TP\n.B 0\nsuccess.\n"
    ".TP\n.B 1\nthe input is well-formed but not acceptable: an unresolvable or ambiguous "
    "reference, an identity mismatch, a shifted device, a conflict or an ACL denial.\n"
    ".TP\n.B 2\nusage error, or malformed or unreadable input (bad XML, bad store, "
    "bad arguments).\n"
    ".TP\n.B 3\nenvironment error: libvirt unreachable, permission denied, "
    "a sysfs write failed.",
)

_STORE_ENV = (
    ".TP\n.B HOSTDEV_RESOLVER_STORE\n"
    "the mapping store to use when \\fB\\-\\-store\\fR is not given."
)

PAGES = (
    Page(
        name="hostdev-resolver",
        module="hostdev_resolver.cli",
        summary="name libvirt host devices by stable identity",
        sections=(
            _EXIT_STATUS,
            ("ENVIRONMENT", _STORE_ENV),
            (
                "FILES",
                ".TP\n.I /etc/hostdev\\-resolver/mappings.xml\n"
                "the mapping store, validated against\n"
                ".IR /usr/share/hostdev\\-resolver/schemas/store.xsd .\n"
                ".TP\n.I /etc/hostdev\\-resolver/hook.toml\n"
                "configuration of the libvirt hook.\n"
                ".TP\n.I /etc/libvirt/hooks/qemu.d/50\\-hostdev\\-resolver\n"
                "the libvirt qemu hook that verifies mapped devices at every guest start "
                "and binds them to vfio\\-pci.",
            ),
            ("SEE ALSO", ".BR hostdev\\-virsh (8),\n.BR virsh (1),\n.BR libvirtd (8)"),
        ),
    ),
    Page(
        name="hostdev-virsh",
        module="hostdev_resolver.wrapper",
        summary="virsh that resolves hostdev-resolver device names first",
        sections=(
            _EXIT_STATUS,
            ("ENVIRONMENT", _STORE_ENV),
            ("FILES", ".TP\n.I /etc/hostdev\\-resolver/mappings.xml\nthe mapping store."),
            ("SEE ALSO", ".BR hostdev\\-resolver (8),\n.BR virsh (1)"),
        ),
    ),
)


def escape(text: str) -> str:
    """Text as roff reads it literally: backslashes, minus signs and control characters."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # A line starting with . or ' would be taken for a request.
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


def _bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    factory: Callable[..., argparse.HelpFormatter] = parser.formatter_class
    return factory(prog=parser.prog, width=_WIDE)


def _is_raw(parser: argparse.ArgumentParser) -> bool:
    return issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)


def usage(parser: argparse.ArgumentParser) -> str:
    """The usage line argparse prints, without the ``usage:`` prefix or wrapping."""
    formatter = _formatter(parser)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    return " ".join(formatter.format_help().split())


def _paragraphs(text: str, raw: bool) -> str:
    """Prose from a description or epilog: blank lines part paragraphs; raw text keeps lines."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        if raw:
            out.append(".nf\n" + escape(block.rstrip()) + "\n.fi")
        else:
            out.append(escape(" ".join(block.split())))
    return "\n.PP\n".join(out)


def _help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    expanded: str = _formatter(parser)._expand_help(action)
    return " ".join(expanded.split())


def _invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = _formatter(parser)
    if not action.option_strings:
        metavar = formatter._metavar_formatter(action, action.dest)(1)[0]
        return _italic(metavar)
    if action.nargs == 0:
        return ", ".join(_bold(option) for option in action.option_strings)
    default = action.dest.upper()
    args: str = formatter._format_args(action, default)
    return ", ".join(f"{_bold(option)} {_italic(args)}" for option in action.option_strings)


def _entry(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """A tagged paragraph: the invocation, then the help text when there is one."""
    text = _help_text(parser, action)
    return ".TP\n" + _invocation(parser, action) + ("\n" + escape(text) if text else "")


def _synopsis(parser: argparse.ArgumentParser) -> str:
    """A usage line as a filled paragraph: long ones wrap instead of running off the page."""
    return ".PP\n" + _unbreakable_groups(escape(usage(parser)))


def _unbreakable_groups(text: str) -> str:
    """Spaces inside [...] and {...} become roff's unbreakable space, so that filling
    never parts an option from its metavar (``[--sysfs ROOT]``)."""
    out, depth = [], 0
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        # ... but a long {a | b | c} choice may still break after a bar.
        keep = char == " " and depth and not (out and out[-1] == "|")
        out.append("\\ " if keep else char)
    return "".join(out)


def _option_key(action: argparse.Action) -> tuple[tuple[str, ...], str]:
    return (tuple(action.option_strings), str(action.help))


def _subparsers(
    parser: argparse.ArgumentParser,
) -> Iterator[argparse._SubParsersAction[argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield action


def _documented(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction)


def _options(parser: argparse.ArgumentParser, skip: set[tuple[tuple[str, ...], str]]) -> list[str]:
    """One ``.TP`` entry per documented argument, under its group's title."""
    out: list[str] = []
    for group in parser._action_groups:
        entries = []
        for action in group._group_actions:
            if not _documented(action) or (action.option_strings and _option_key(action) in skip):
                continue
            entries.append(_entry(parser, action))
        if entries:
            title = group.title or "arguments"
            out.append(f".PP\n{_bold(title[:1].upper() + title[1:])}:\n" + "\n".join(entries))
    return out


@dataclass(frozen=True)
class Command:
    """A sub-command as the man page lists it: its words after the program name."""

    words: tuple[str, ...]
    aliases: tuple[str, ...]
    help: str
    parser: argparse.ArgumentParser


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every sub-command, depth first, in the order argparse declares them (aliases folded)."""
    for action in _subparsers(parser):
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        seen: dict[int, list[str]] = {}
        for name, sub in action.choices.items():
            seen.setdefault(id(sub), []).append(name)
        for names in seen.values():
            sub = action.choices[names[0]]
            text = helps.get(names[0])
            if text == argparse.SUPPRESS:
                continue
            path = (*words, names[0])
            yield Command(path, tuple(names[1:]), text or "", sub)
            yield from commands(sub, path)


def _leaf_common(parser: argparse.ArgumentParser) -> set[tuple[tuple[str, ...], str]]:
    """Options every leaf sub-command repeats (a ``parents=`` common set)."""
    leaves = [c.parser for c in commands(parser) if not any(True for _ in _subparsers(c.parser))]
    if len(leaves) < 2:
        return set()
    sets = [
        {_option_key(a) for a in leaf._actions if a.option_strings and _documented(a)}
        for leaf in leaves
    ]
    return set.intersection(*sets)


def _summary(page: Page, description: str) -> str:
    """NAME's one line: the description's first sentence, without a leading ``prog:``."""
    first = " ".join(re.split(r"\n\s*\n", description.strip())[0].split())
    first = re.split(r"(?<=\.)\s", first)[0].rstrip(".")
    first = first.removeprefix(f"{page.name}:").strip()
    if len(first) > 70:
        # NAME is one short line (whatis(1) lists it): keep the clause before ':' or ';'.
        first = re.split(r"[:;]\s", first)[0]
    return first or page.summary


def render(page: Page, parser: argparse.ArgumentParser, version: str, date: str) -> str:
    """The roff source of one page."""
    top_keys = {_option_key(a) for a in parser._actions if a.option_strings}
    common = _leaf_common(parser) - top_keys
    description = parser.description or ""
    summary = _summary(page, description)
    out = [
        f'.\\" Generated by packaging/manpage.py from {page.module}.build_parser(); do not edit.',
        f'.TH {escape(page.name.upper())} 8 "{date}" "{escape(page.name)} {escape(version)}"'
        ' "System Administration"',
        ".SH NAME",
        f"{escape(page.name)} \\- {escape(summary)}",
        # Usage lines are long: fill them left-adjusted, unhyphenated, as synopses are.
        ".ad l",
        ".nh",
        ".SH SYNOPSIS",
        _synopsis(parser),
    ]
    subs = list(commands(parser))
    out += [_synopsis(c.parser) for c in subs if not any(True for _ in _subparsers(c.parser))]
    if description:
        out += [".SH DESCRIPTION", _paragraphs(description, _is_raw(parser))]
    options = _options(parser, set())
    if options:
        out += [".SH OPTIONS", *options]
    if common:
        entries = []
        seen: set[tuple[tuple[str, ...], str]] = set()
        for command in subs:
            for action in command.parser._actions:
                if _option_key(action) in common and _option_key(action) not in seen:
                    seen.add(_option_key(action))
                    entries.append(_entry(command.parser, action))
        out += [
            ".SH COMMON OPTIONS",
            "Accepted by every command, before or after its name.",
            *entries,
        ]
    if subs:
        out.append(".SH COMMANDS")
        for command in subs:
            title = " ".join(command.words)
            if command.aliases:
                title += f" (also: {', '.join(command.aliases)})"
            out += [f'.SS "{escape(title)}"', _synopsis(command.parser)]
            # The parent's --help lists the one-line help; the command's own --help
            # shows its description: the page gives both when they differ.
            if command.help:
                out += [".PP", _paragraphs(command.help, False)]
            description = command.parser.description
            if description and " ".join(description.split()) != " ".join(command.help.split()):
                out += [".PP", _paragraphs(description, _is_raw(command.parser))]
            out += _options(command.parser, top_keys | common)
            if command.parser.epilog:
                out += [".PP", _paragraphs(command.parser.epilog, _is_raw(command.parser))]
    if parser.epilog:
        out += [".SH NOTES", _paragraphs(parser.epilog, _is_raw(parser))]
    for title, body in page.sections:
        out += [f".SH {title}", body]
    return "\n".join(out) + "\n"


def build_parser(page: Page) -> argparse.ArgumentParser:
    """The page's parser, named as the installed command is (argparse takes argv[0])."""
    saved = sys.argv[0]
    sys.argv[0] = page.name
    try:
        module = importlib.import_module(page.module)
        parser: argparse.ArgumentParser = module.build_parser()
    finally:
        sys.argv[0] = saved
    parser.prog = page.name
    return parser


def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as handle:
        version: str = tomllib.load(handle)["project"]["version"]
    return version


def build_date() -> str:
    """SOURCE_DATE_EPOCH (set by dpkg-buildpackage from debian/changelog) for reproducible pages."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if epoch
        else datetime.datetime.now(datetime.UTC)
    )
    return when.strftime("%Y-%m-%d")


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="manpage.py", description=__doc__.split("\n")[0])
    cli.add_argument("--outdir", type=Path, required=True, help="where NAME.8 files are written")
    args = cli.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    version, date = project_version(), build_date()
    for page in PAGES:
        text = render(page, build_parser(page), version, date)
        (args.outdir / f"{page.name}.8").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
