"""Generate bash completion for hostdev-resolver and hostdev-virsh from their argparse parsers.

The package build runs this next to manpage.py
(``PYTHONPATH=src python3 packaging/completion.py --outdir DIR``): the sub-commands, options
and choices offered are read from the same ``build_parser()`` as ``--help``, so completion
cannot drift from the commands. hostdev-virsh takes virsh's command line, so once its
COMMAND starts, completion is virsh's own (``virsh complete``, which libvirt's completion
uses too).

The generated script needs bash >= 4 and nothing from the bash-completion package: it
splits ``COMP_LINE`` itself, so that ``qemu:///system`` stays one word.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from manpage import PAGES, STORE_PATH, Page, build_parser

# virsh's global options (virsh(1)), which hostdev-virsh passes on before COMMAND; its
# parser leaves them to virsh, so completion must know which ones take a value.
VIRSH_VALUE_OPTIONS = ("-c", "--connect", "-d", "--debug", "-e", "--escape", "-k")
VIRSH_VALUE_OPTIONS += ("--keepalive-interval", "-K", "--keepalive-count", "-l", "--log")
VIRSH_FLAGS = ("-q", "--quiet", "-r", "--readonly", "-t", "--timing", "-v", "-V", "--version")

ROOT = "@"
"""The key of the top level in the generated tables (bash forbids empty keys)."""

# Values read at completion time, by the argument's dest: mapping names and node names
# from the store (--store, $HOSTDEV_RESOLVER_STORE or the default), PCI addresses from
# sysfs (--sysfs or /sys), domain names from `virsh list --all --name` (as virsh's own
# completion lists them).
DYNAMIC = {
    "name": "mappings",
    "names": "mappings",  # bind/unbind NAME...
    "node": "nodes",
    "address": "pci",
    "allow": "domains",
}


@dataclass
class Node:
    """What can follow one command path (``()`` is the program itself)."""

    path: tuple[str, ...]
    subcommands: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    value_options: list[str] = field(default_factory=list)
    option_choices: dict[str, list[str]] = field(default_factory=dict)
    positional_choices: dict[int, list[str]] = field(default_factory=dict)
    option_dynamic: dict[str, str] = field(default_factory=dict)
    positional_dynamic: dict[int, str] = field(default_factory=dict)
    passthrough: bool = False
    """The first positional takes the rest of the line (hostdev-virsh's virsh COMMAND)."""


def _choices(action: argparse.Action) -> list[str] | None:
    if action.choices is None or isinstance(action, argparse._SubParsersAction):
        return None
    return [str(choice) for choice in action.choices]


def command_tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Node]:
    """Every command path of the parser with its words, depth first."""
    node = Node(path)
    children: list[tuple[str, argparse.ArgumentParser]] = []
    position = 0
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            hidden = {c.dest for c in action._choices_actions if c.help == argparse.SUPPRESS}
            for name, sub in action.choices.items():
                if name not in hidden:
                    node.subcommands.append(name)
                    children.append((name, sub))
            continue
        choices = _choices(action)
        dynamic = DYNAMIC.get(action.dest)
        if action.option_strings:
            node.options += action.option_strings
            if action.nargs != 0:
                node.value_options += action.option_strings
                if choices:
                    for option in action.option_strings:
                        node.option_choices[option] = choices
                elif dynamic:
                    for option in action.option_strings:
                        node.option_dynamic[option] = dynamic
            continue
        position += 1
        if choices:
            node.positional_choices[position] = choices
        elif dynamic:
            node.positional_dynamic[position] = dynamic
        if position == 1 and action.nargs in (argparse.REMAINDER, argparse.PARSER):
            node.passthrough = True
        if position == 2 and action.nargs == argparse.REMAINDER and not node.positional_choices:
            # COMMAND then ARGS...: the command word and its arguments are virsh's.
            node.passthrough = True
    if node.passthrough:
        node.value_options += [o for o in VIRSH_VALUE_OPTIONS if o not in node.options]
        node.options += [o for o in VIRSH_VALUE_OPTIONS + VIRSH_FLAGS if o not in node.options]
    yield node
    for name, sub in children:
        yield from command_tree(sub, (*path, name))


def _key(path: tuple[str, ...]) -> str:
    return " ".join((ROOT, *path))


def _table(name: str, entries: dict[str, str]) -> str:
    lines = [f"declare -gA {name}=("]
    lines += [f"    [{shlex.quote(k)}]={shlex.quote(v)}" for k, v in sorted(entries.items())]
    lines.append(")")
    return "\n".join(lines)


_FUNCTION = r"""
{fn}() {{
    local line=${{COMP_LINE:0:COMP_POINT}} words cur path={root} npos=0 skip=0 i w
    local connect=() n candidates="" dynamic="" store=${{HOSTDEV_RESOLVER_STORE:-{store}}} sysfs=/sys
    read -ra words <<<"$line"
    if [[ ${{#words[@]}} -eq 0 || $line == *[[:space:]] ]]; then words+=(""); fi
    n=$((${{#words[@]}} - 1))
    cur=${{words[n]}}
    COMPREPLY=()
    for ((i = 1; i < n; i++)); do
        w=${{words[i]}}
        if ((skip)); then
            [[ ${{words[i - 1]}} == -c || ${{words[i - 1]}} == --connect ]] && connect=(-c "$w")
            [[ ${{words[i - 1]}} == --store ]] && store=$w
            [[ ${{words[i - 1]}} == --sysfs ]] && sysfs=$w
            skip=0
            continue
        fi
        case $w in
            --store=*) store=${{w#--store=}}; continue ;;
            --sysfs=*) sysfs=${{w#--sysfs=}}; continue ;;
            --connect=*) connect=(-c "${{w#--connect=}}"); continue ;;
            -r | --readonly) connect+=(-r) ;;
        esac
        case $w in
            --*=*) continue ;;
            -*) [[ " ${{{prefix}_valopts[$path]-}} " == *" $w "* ]] && skip=1; continue ;;
        esac
        if [[ " ${{{prefix}_cmds[$path]-}} " == *" $w "* ]]; then
            path="$path $w"
            npos=0
        elif [[ -n ${{{prefix}_passthrough[$path]-}} ]]; then
            {prefix}_virsh "${{connect[@]}}" -- "${{words[@]:i}}"
            return 0
        else
            npos=$((npos + 1))
        fi
    done
    if ((skip)); then
        candidates=${{{prefix}_choices["$path|${{words[n - 1]}}"]-}}
        dynamic=${{{prefix}_dynamic["$path|${{words[n - 1]}}"]-}}
    elif [[ $cur == -* ]]; then
        candidates=${{{prefix}_opts[$path]-}}
    elif [[ -n ${{{prefix}_passthrough[$path]-}} ]]; then
        {prefix}_virsh "${{connect[@]}}" -- "$cur"
        return 0
    else
        candidates="${{{prefix}_cmds[$path]-}} ${{{prefix}_choices["$path|#$((npos + 1))"]-}}"
        dynamic=${{{prefix}_dynamic["$path|#$((npos + 1))"]-}}
    fi
    if [[ -n $dynamic ]]; then
        candidates="$candidates $({prefix}_values "$dynamic" "$store" "$sysfs" | sort -u)"
    fi
    # Empty: complete -o default falls back to file names (FILE, --store PATH, ...).
    COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
    {prefix}_colon "$cur"
}}

# Values known only at completion time: KIND STORE SYSFS.
{prefix}_values() {{
    case $1 in
        mappings)
            [[ -r $2 ]] && grep -oE "<(pci|usb|lun|scsi|vhba)[[:space:]][^>]*name=['\"][^'\"]+" "$2" |
                sed -E "s/.*name=['\"]//" ;;
        nodes)
            [[ -r $2 ]] && grep -oE "<node[[:space:]][^>]*name=['\"][^'\"]+" "$2" |
                sed -E "s/.*name=['\"]//"
            local host
            host=$(uname -n)
            echo "${{host%%.*}}" ;;
        pci)
            [[ -d $3/bus/pci/devices ]] && ls "$3/bus/pci/devices" ;;
        domains)
            virsh list --all --name 2>/dev/null ;;
    esac
}}

# Bash replaces only the part of the word after its last ':' (COMP_WORDBREAKS), so a
# candidate such as 0000:41:00.0 must lose what the word already has up to that ':'.
{prefix}_colon() {{
    local cur=$1 colon j
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        colon=${{cur%"${{cur##*:}}"}}
        for j in "${{!COMPREPLY[@]}}"; do COMPREPLY[j]=${{COMPREPLY[j]#"$colon"}}; done
    fi
}}

# virsh answers for its own command line: `virsh [-c URI] [-r] complete -- WORDS...`.
{prefix}_virsh() {{
    local args=() cur
    while [[ $# -gt 0 && $1 != -- ]]; do args+=("$1"); shift; done
    shift
    cur=${{!#}}
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$(virsh "${{args[@]}}" complete -- "$@" 2>/dev/null)" -- "$cur"))
    # Bash replaces only the part of the word after its last ':' (COMP_WORDBREAKS).
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local colon=${{cur%"${{cur##*:}}"}} j
        for j in "${{!COMPREPLY[@]}}"; do COMPREPLY[j]=${{COMPREPLY[j]#"$colon"}}; done
    fi
}}

complete -o bashdefault -o default -F {fn} {command}
"""


def render(page: Page, parser: argparse.ArgumentParser) -> str:
    """The bash completion script for one command."""
    prefix = "_" + re.sub(r"\W", "_", page.name)
    cmds: dict[str, str] = {}
    opts: dict[str, str] = {}
    valopts: dict[str, str] = {}
    choices: dict[str, str] = {}
    passthrough: dict[str, str] = {}
    dynamic: dict[str, str] = {}
    for node in command_tree(parser):
        key = _key(node.path)
        if node.subcommands:
            cmds[key] = " ".join(node.subcommands)
        opts[key] = " ".join(node.options)
        if node.value_options:
            valopts[key] = " ".join(node.value_options)
        for option, words in node.option_choices.items():
            choices[f"{key}|{option}"] = " ".join(words)
        for position, words in node.positional_choices.items():
            choices[f"{key}|#{position}"] = " ".join(words)
        for option, kind in node.option_dynamic.items():
            dynamic[f"{key}|{option}"] = kind
        for position, kind in node.positional_dynamic.items():
            dynamic[f"{key}|#{position}"] = kind
        if node.passthrough:
            passthrough[key] = "1"
    parts = [
        f"# bash completion for {page.name}(8)",
        f"# Generated by packaging/completion.py from {page.module}.build_parser(); do not edit.",
        "",
        _table(f"{prefix}_cmds", cmds),
        _table(f"{prefix}_opts", opts),
        _table(f"{prefix}_valopts", valopts),
        _table(f"{prefix}_choices", choices),
        _table(f"{prefix}_passthrough", passthrough),
        _table(f"{prefix}_dynamic", dynamic),
        _FUNCTION.format(fn=prefix, prefix=prefix, root=ROOT, command=page.name, store=STORE_PATH),
    ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="completion.py", description=__doc__.split("\n")[0])
    cli.add_argument("--outdir", type=Path, required=True, help="where the scripts are written")
    args = cli.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for page in PAGES:
        (args.outdir / page.name).write_text(render(page, build_parser(page)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
