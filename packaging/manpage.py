"""Render hostdev-resolver(8), hostdev-virsh(8) and hostdev-resolver-hook(8).

The package build runs this (``PYTHONPATH=src python3 packaging/manpage.py --outdir DIR``),
so the pages are never a hand-kept copy: every usage line, sub-command, option and help
text comes from ``hostdev_resolver.doors.cli.main.build_parser()`` and
``hostdev_resolver.doors.wrapper.build_parser()``; the EXAMPLES section is the README's worked
example; the hook page's CONFIGURATION is ``packaging/hook.toml``, the file the package
installs, key by key. Only what has no other home (files, environment, exit status, see
also) is written here.

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


def escape_uri(text: str) -> str:
    return text.replace("-", "\\-")


def escape(text: str) -> str:
    """Text as roff reads it literally: backslashes, minus signs and control characters."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # A line starting with . or ' would be taken for a request.
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


def _bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


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

_IDS_ENV = (
    ".TP\n.B HOSTDEV_RESOLVER_IDS\n"
    "colon\\-separated pci.ids and usb.ids files to take device names from instead of "
    "the installed ones; empty for no names."
)

# The namespaces, from the code that reads them (the page cannot name another one).
HR_NS = importlib.import_module("hostdev_resolver.core.metadata").HR_NS
STORE_NS = importlib.import_module("hostdev_resolver.xml.store").NS
# The default store, as the code writes it once (host.storeread).
STORE_PATH = importlib.import_module("hostdev_resolver.host.storeread").DEFAULT_PATH

_DOMAIN_XML = (
    "DOMAIN XML",
    "A device element of a libvirt domain names a mapping with the attribute\n"
    ".BI hr:map= NAME\n"
    "(or a LUN directly with\n"
    ".BI hr:wwn= WWN ),\n"
    "where the prefix\n"
    ".B hr\n"
    "is bound to the namespace\n"
    f".BR {escape_uri(HR_NS)} :\n"
    ".PP\n.RS 4\n.nf\n"
    f"<domain type=\\(aqkvm\\(aq xmlns:hr=\\(aq{escape_uri(HR_NS)}\\(aq>\n"
    "  <devices>\n"
    "    <hostdev mode=\\(aqsubsystem\\(aq type=\\(aqpci\\(aq hr:map=\\(aqgpu0\\(aq/>\n"
    "  </devices>\n"
    "</domain>\n"
    ".fi\n.RE\n.PP\n"
    "Resolution removes the\n.B hr\nattributes, writes the concrete host address into\n"
    ".BR <source> ,\n"
    "and records what it resolved in an\n.B hr:resolution\n"
    "element under\n.BR <metadata> ,\n"
    "which the hook verifies at every start. Both are described by\n"
    ".IR /usr/share/hostdev\\-resolver/schemas/domain.xsd .\n"
    "The mapping store's namespace is\n"
    f".BR {escape_uri(STORE_NS)} ;\n"
    "its schema is\n.IR /usr/share/hostdev\\-resolver/schemas/store.xsd .",
)

_FILES = (
    "FILES",
    f".TP\n.I {escape_uri(STORE_PATH)}\n"
    "the mapping store, validated against\n"
    ".IR /usr/share/hostdev\\-resolver/schemas/store.xsd .\n"
    ".TP\n.I /etc/hostdev\\-resolver/hook.toml\n"
    "configuration of the libvirt hook; see\n.BR hostdev\\-resolver\\-hook (8).\n"
    ".TP\n.I /etc/libvirt/hooks/qemu.d/50\\-hostdev\\-resolver\n"
    "a symlink to the hook,\n.IR /usr/libexec/hostdev\\-resolver/qemu\\-hook ,\n"
    "which verifies mapped devices at every guest start and binds them to vfio\\-pci.\n"
    ".TP\n.I /lib/systemd/system/hostdev\\-resolver\\-bind.service\n"
    "runs\n.B hostdev\\-resolver bind \\-\\-boot\n"
    "early at every boot (see BINDING AT BOOT).\n"
    ".TP\n.I /run/hostdev\\-resolver/bound/devices.json\n"
    "the original drivers of the devices\n.B bind\nmoved to vfio\\-pci, for\n.BR unbind .\n"
    ".TP\n.I /usr/share/hostdev\\-resolver/schemas/\n"
    "the XML schemas of the store and of the domain XML extension.\n"
    ".TP\n.I /usr/share/doc/hostdev\\-resolver/\n"
    "the README, the documents it links (docs/) and an example host (examples/).\n"
    ".TP\n.I /usr/share/misc/pci.ids\n"
    "where device names come from when installed (package pci.ids; also\n"
    ".I /usr/share/hwdata/pci.ids\n"
    "from hwdata, and\n.I /usr/share/misc/usb.ids\nfrom usb.ids).",
)

_README = REPO / "README.md"

_BOOT = (
    "BINDING AT BOOT",
    "A pci mapping added with\n.B \\-\\-vfio=boot\n"
    "(the store\\(aqs\n.BR vfio=\\(aqboot\\(aq )\n"
    "is bound to vfio\\-pci with the rest of its IOMMU group at every boot by\n"
    ".BR hostdev\\-resolver\\-bind.service ,\n"
    "ordered before udev\\(aqs coldplug loads drivers, wherever the device is found "
    "that boot: at its recorded address, or moved, when its serial, slot or port path "
    "tells it apart (the shift is logged). A device that is missing, ambiguous or only "
    "looks alike is refused and logged; so is a group whose other devices a host "
    "driver uses. Its output is in the journal\n"
    '.RB ( "journalctl \\-b \\-u hostdev\\-resolver\\-bind" ).\n'
    ".B hostdev\\-resolver bind\n"
    ".I NAME\n"
    "does the same by hand,\n.B \\-\\-dry\\-run\nprints the sysfs writes, and\n"
    ".B hostdev\\-resolver unbind\n"
    ".I NAME\n"
    "gives back the drivers recorded. A driver built into the kernel or loaded in the "
    "initramfs binds before the unit runs; the unit then unbinds it, which fails for a "
    "GPU in use. See\n.IR /usr/share/doc/hostdev\\-resolver/docs/boot\\-binding.md .",
)


def _readme_section(title: str) -> str:
    """The markdown of one ``## title`` section of the README."""
    text = _README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise SystemExit(f"{_README}: no '## {title}' section for the man page")
    return match.group(1)


def _inline(text: str) -> str:
    """Markdown inline markup as roff: `code` and **strong** bold, [text](link) as text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    out = []
    for i, part in enumerate(re.split(r"(`[^`]+`|\*\*[^*]+\*\*)", text)):
        if i % 2:
            out.append(_bold(part.strip("`*")))
        else:
            out.append(escape(part))
    return "".join(out)


def markdown(text: str) -> str:
    """The markdown the README uses (paragraphs and fenced code blocks) as roff."""
    out: list[str] = []
    for i, block in enumerate(re.split(r"^```[a-z]*\n", text, flags=re.M)):
        if i % 2:
            code = block.rstrip("\n")
            out.append(".PP\n.RS 4\n.nf\n" + escape(code) + "\n.fi\n.RE")
            continue
        for para in re.split(r"\n\s*\n", block.strip()):
            if para.strip():
                out.append(".PP\n" + _inline(" ".join(para.split())))
    return "\n".join(out)


def _examples() -> tuple[str, str]:
    return ("EXAMPLES", markdown(_readme_section("A worked example")))


PAGES = (
    Page(
        name="hostdev-resolver",
        module="hostdev_resolver.doors.cli.main",
        summary="name libvirt host devices by stable identity",
        sections=(
            _DOMAIN_XML,
            _BOOT,
            _examples(),
            _EXIT_STATUS,
            ("ENVIRONMENT", _STORE_ENV + "\n" + _IDS_ENV),
            _FILES,
            (
                "SEE ALSO",
                ".BR hostdev\\-virsh (8),\n.BR hostdev\\-resolver\\-hook (8),\n"
                ".BR virsh (1),\n.BR libvirtd (8)",
            ),
        ),
    ),
    Page(
        name="hostdev-virsh",
        module="hostdev_resolver.doors.wrapper",
        summary="virsh that resolves hostdev-resolver device names first",
        sections=(
            _EXIT_STATUS,
            ("ENVIRONMENT", _STORE_ENV),
            ("FILES", f".TP\n.I {escape_uri(STORE_PATH)}\nthe mapping store."),
            (
                "SEE ALSO",
                ".BR hostdev\\-resolver (8),\n.BR hostdev\\-resolver\\-hook (8),\n.BR virsh (1)",
            ),
        ),
    ),
)


_HOOK_TOML = Path(__file__).resolve().parent / "hook.toml"


@dataclass(frozen=True)
class ConfigKey:
    """One key of hook.toml as the installed file documents it."""

    name: str
    default: str
    text: str


def hook_config(text: str) -> tuple[list[str], list[ConfigKey]]:
    """packaging/hook.toml read as documentation: the header's paragraphs (its title
    line left out) and, for every commented-out ``#key = default`` line, the comment
    paragraph just above it."""
    header: list[str] = []
    keys: list[ConfigKey] = []
    comment: list[str] = []
    in_header = True
    for line in [*text.splitlines(), ""]:
        key = re.fullmatch(r"#([a-z_]+) = (.*)", line)
        if key:
            keys.append(ConfigKey(key.group(1), key.group(2), " ".join(comment)))
            comment, in_header = [], False
        elif line.startswith("#") and line[1:].strip():
            comment.append(line[1:].strip())
        elif comment:
            if in_header:
                header.append(" ".join(comment))
            comment = []
    return header[1:], keys


def _hook_page(version: str, date: str) -> str:
    header, keys = hook_config(_HOOK_TOML.read_text(encoding="utf-8"))
    config = [
        "The hook reads\n.I /etc/hostdev\\-resolver/hook.toml\n"
        "(or the file named by\n.BR HOSTDEV_RESOLVER_CONFIG )\n"
        "on every call. It is TOML; a missing file means all defaults. The package "
        "installs it with every key commented out, as below.",
        *(".PP\n" + _inline(paragraph) for paragraph in header),
    ]
    for key in keys:
        config.append(
            f".TP\n\\fB{escape(key.name)} = {escape(key.default)}\\fR\n{_inline(key.text)}"
        )
    sections = [
        (
            "DESCRIPTION",
            "libvirt runs every executable in\n.I /etc/libvirt/hooks/qemu.d/\n"
            "(libvirt 6.5 and later; before, only\n.IR /etc/libvirt/hooks/qemu )\n"
            "as\n.I qemu DOMAIN OP SUBOP EXTRA\n"
            "with the domain XML on standard input, and waits for it. The hostdev\\-resolver "
            "hook verifies, when a guest starts, that every device the domain was resolved "
            "to (see\n.BR hostdev\\-resolver (8))\n"
            "is still the same device at the same address, binds PCI devices and their "
            "IOMMU group to vfio\\-pci, gives them back when the guest stops, and "
            "re\\-resolves the XML when a guest migrates to or is restored on this node. "
            "It never calls the libvirt API (libvirt waits for the hook: that would "
            "deadlock). A domain without an\n.B hr:resolution\n"
            "record is passed at once, whatever the state of the store or the host.",
        ),
        (
            "OPERATIONS",
            ".TP\n.B prepare begin\n"
            "verify every recorded device on this node (present, same identity, not "
            "shifted, allowed for this domain); then bind to vfio\\-pci where needed, all "
            "or nothing. Any problem: one line per problem on standard error and a non\\-zero "
            "exit; libvirt refuses the start and shows the line.\n"
            ".TP\n.B release end\n"
            "give back every device the hook bound. Never fails; problems are logged.\n"
            ".TP\n\\fBmigrate begin\\fR, \\fBrestore begin\\fR\n"
            "re\\-resolve for this node and print the rewritten XML on standard output "
            "(libvirt\\(aqs filter contract); fails when this node has no entry.\n"
            ".TP\n.B reconnect begin\n"
            "verify and log; always exit 0 (a running guest is never stopped over a store "
            "problem).\n"
            ".TP\n.B any other\nexit 0.",
        ),
        ("CONFIGURATION", "\n".join(config)),
        (
            "INSTALLATION",
            "The package ships the hook as\n.I /usr/libexec/hostdev\\-resolver/qemu\\-hook\n"
            "and links\n.I /etc/libvirt/hooks/qemu.d/50\\-hostdev\\-resolver\n"
            "to it. Nothing but that symlink may be in\n.IR qemu.d/ :\n"
            "libvirt runs every executable there, whatever its name, backups included.\n"
            ".B hostdev\\-resolver hook install\n"
            "makes the same link (to a launcher for its own Python when not run from the "
            "package). Restart libvirtd once after the first install: it reads the list of "
            "hooks when it starts.",
        ),
        (
            "EXIT STATUS",
            ".TP\n.B 0\nthe operation may go on (or was not ours).\n"
            ".TP\n.B 1\nrefused: a device is missing, mismatched, shifted or not allowed.\n"
            ".TP\n.B 2\nmalformed input: the domain XML, the store or hook.toml.\n"
            ".TP\n.B 3\nenvironment: the store or config is not trusted, or a sysfs write "
            "failed (the writes already made are undone).",
        ),
        (
            "ENVIRONMENT",
            ".TP\n.B HOSTDEV_RESOLVER_CONFIG\n"
            "the configuration file to read instead of\n"
            ".IR /etc/hostdev\\-resolver/hook.toml .\n"
            "libvirtd runs hooks with a scrubbed environment, so this is for running the "
            "hook by hand and for tests; a launcher made with\n"
            ".B hostdev\\-resolver hook install \\-\\-config\n"
            "sets it itself.",
        ),
        (
            "FILES",
            ".TP\n.I /etc/hostdev\\-resolver/hook.toml\nthe configuration.\n"
            ".TP\n.I /usr/share/hostdev\\-resolver/hook.toml\n"
            "the default configuration the package copies when the first is missing.\n"
            ".TP\n.I /usr/libexec/hostdev\\-resolver/qemu\\-hook\nthe hook.\n"
            ".TP\n.I /etc/libvirt/hooks/qemu.d/50\\-hostdev\\-resolver\n"
            "the symlink libvirt runs.\n"
            ".TP\n.I /run/hostdev\\-resolver/DOMAIN.json\n"
            "the drivers the hook changed for a running guest (state_dir).\n"
            ".TP\n.I /var/log/hostdev\\-resolver/hook.log\n"
            "the hook\\(aqs decisions when there is no syslog socket\n.RI ( /dev/log );\n"
            "one line each, naming the domain and the operation (log_file; rotated by\n"
            ".IR /etc/logrotate.d/hostdev\\-resolver ).\n"
            f".TP\n.I {escape_uri(STORE_PATH)}\nthe mapping store.",
        ),
        (
            "EXAMPLES",
            "Run the start check by hand, as libvirt would, against a test configuration:\n"
            ".PP\n.RS 4\n.nf\n"
            "# HOSTDEV_RESOLVER_CONFIG=/root/hook.toml \\e\n"
            "    /usr/libexec/hostdev\\-resolver/qemu\\-hook ml\\-train prepare begin \\- \\e\n"
            "    < /etc/libvirt/qemu/ml\\-train.xml\n"
            ".fi\n.RE\n.PP\n"
            "The same check without binding anything, and the sysfs writes it would make:\n"
            ".PP\n.RS 4\n.nf\n"
            "# hostdev\\-resolver verify /etc/libvirt/qemu/ml\\-train.xml \\-\\-dry\\-run\n"
            ".fi\n.RE\n.PP\n"
            "A hook.toml for a node whose store is kept elsewhere:\n"
            ".PP\n.RS 4\n.nf\n"
            'store = "/srv/hostdev\\-resolver/mappings.xml"\n'
            'node = "hv1"\n'
            ".fi\n.RE",
        ),
        (
            "SEE ALSO",
            ".BR hostdev\\-resolver (8),\n.BR hostdev\\-virsh (8),\n.BR libvirtd (8),\n"
            ".I /usr/share/doc/hostdev\\-resolver/docs/hook.md",
        ),
    ]
    out = [
        '.\\" Generated by packaging/manpage.py from packaging/hook.toml; do not edit.',
        f'.TH HOSTDEV\\-RESOLVER\\-HOOK 8 "{date}" "hostdev\\-resolver {escape(version)}"'
        ' "System Administration"',
        ".SH NAME",
        "hostdev\\-resolver\\-hook \\- the libvirt qemu hook of hostdev\\-resolver",
        ".ad l",
        ".nh",
        ".SH SYNOPSIS",
        ".B /etc/libvirt/hooks/qemu.d/50\\-hostdev\\-resolver\n"
        ".I DOMAIN OP SUBOP EXTRA\n.B <\n.I DOMAIN.xml",
    ]
    for title, body in sections:
        out += [f".SH {title}", body]
    return "\n".join(out) + "\n"


HOOK_PAGE = "hostdev-resolver-hook"


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
    (args.outdir / f"{HOOK_PAGE}.8").write_text(_hook_page(version, date), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
