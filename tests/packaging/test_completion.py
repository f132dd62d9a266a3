"""packaging/completion.py: bash completes exactly the commands, options and choices the
parsers accept (checked against the parsers, so the two cannot drift)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import completion
import manpage
import pytest

PAGES = {page.name: page for page in manpage.PAGES}


def _complete(
    script: Path, function: str, lines: list[str], env: dict[str, str] | None = None
) -> list[list[str]]:
    """COMPREPLY for each command line (cursor at its end), from one bash process."""
    body = [f"source {shlex.quote(str(script))}"]
    for line in lines:
        body += [
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()",
            f'{function}; printf "%s\\n" "${{COMPREPLY[*]}}"',
        ]
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "\n".join(body)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=None if env is None else {**os.environ, **env},
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    out = proc.stdout.split("\n")[: len(lines)]
    return [reply.split() for reply in out]


@pytest.fixture(scope="module", params=sorted(PAGES))
def generated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[manpage.Page, argparse.ArgumentParser, Path]:
    page = PAGES[request.param]
    parser = manpage.build_parser(page)
    path = tmp_path_factory.mktemp("completion") / page.name
    path.write_text(completion.render(page, parser))
    return page, parser, path


def test_completion_offers_what_the_parser_accepts(
    generated: tuple[manpage.Page, argparse.ArgumentParser, Path],
) -> None:
    page, parser, script = generated
    function = "_" + page.name.replace("-", "_")
    lines: list[str] = []
    expected: list[list[str]] = []
    for node in completion.command_tree(parser):
        prefix = " ".join((page.name, *node.path))
        lines.append(prefix + " -")
        expected.append(node.options)
        if not node.passthrough:
            lines.append(prefix + " ")
            expected.append(node.subcommands or node.positional_choices.get(1, []))
        for option, choices in node.option_choices.items():
            lines.append(f"{prefix} {option} ")
            expected.append(choices)
        free = [o for o in node.value_options if o not in node.option_choices and o[1] == "-"]
        if free and node.subcommands:
            # An option's value is not taken for a command name.
            lines.append(f"{prefix} {free[0]} x ")
            expected.append(node.subcommands)
    assert lines
    replies = _complete(script, function, lines)
    for line, reply, wanted in zip(lines, replies, expected, strict=True):
        assert sorted(reply) == sorted(wanted), f"{line!r}"


def test_tree_matches_the_parsers() -> None:
    parser = manpage.build_parser(PAGES["hostdev-resolver"])
    nodes = {node.path: node for node in completion.command_tree(parser)}
    for command in manpage.commands(parser):
        node = nodes[command.words]
        options = [
            option
            for action in command.parser._actions
            if action.help != argparse.SUPPRESS
            for option in action.option_strings
        ]
        assert node.options == options


@pytest.mark.skipif(shutil.which("virsh") is None, reason="virsh (libvirt-clients) not installed")
def test_hostdev_virsh_completes_virsh_commands(tmp_path: Path) -> None:
    page = PAGES["hostdev-virsh"]
    script = tmp_path / page.name
    script.write_text(completion.render(page, manpage.build_parser(page)))
    replies = _complete(
        script,
        "_hostdev_virsh",
        [
            "hostdev-virsh def",
            "hostdev-virsh --store /tmp/s -c test:///default --policy tuned define --",
            "hostdev-virsh -c test:///default ",
            "hostdev-virsh -c test:///default dominfo --domain ",
        ],
        # `virsh complete` connects even to list its own commands; without -c that is the
        # default URI, and no libvirtd need run on the host (the real-daemon tests keep
        # theirs in a private namespace and stop it).
        env={"LIBVIRT_DEFAULT_URI": "test:///default"},
    )
    assert "define" in replies[0]
    assert "--file" in replies[1]
    assert {"define", "start", "attach-device"} <= set(replies[2])
    # virsh itself lists the domains of the connection given before the command.
    assert "test" in replies[3]


STORE_XML = """<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>
  <pci name='gpu0' description='A100'>
    <node name='hv1' address='0000:41:00.0' vendor='10de' device='20b5'/>
    <node name="hv2" address='0000:c1:00.0' vendor='10de' device='20b5'/>
  </pci>
  <usb name='yubikey'><node name='hv1' vendor='1050' product='0407'/></usb>
  <lun name='db-lun' wwn='0x600a098038303053'/>
</mappings>
"""


def test_values_come_from_the_store_sysfs_and_virsh(tmp_path: Path) -> None:
    page = PAGES["hostdev-resolver"]
    script = tmp_path / page.name
    script.write_text(completion.render(page, manpage.build_parser(page)))
    store = tmp_path / "mappings.xml"
    store.write_text(STORE_XML)
    sysfs = tmp_path / "sys"
    for address in ("0000:41:00.0", "0000:41:00.1", "0000:42:00.0"):
        (sysfs / "bus" / "pci" / "devices" / address).mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    virsh = bindir / "virsh"
    virsh.write_text('#!/bin/sh\n[ "$*" = "list --all --name" ] && printf "ml-train\\nweb-1\\n"\n')
    virsh.chmod(0o755)
    host = subprocess.run(["uname", "-n"], capture_output=True, text=True, check=True)
    this_node = host.stdout.strip().split(".")[0]
    s = f"--store {store}"
    cases = {
        f"hostdev-resolver map show {s} ": ["gpu0", "yubikey", "db-lun"],
        f"hostdev-resolver map remove --store={store} y": ["yubikey"],
        f"hostdev-resolver map add pci gpu0 {s} --node ": ["hv1", "hv2", this_node],
        f"hostdev-resolver map add pci gpu0 --sysfs {sysfs} --address ": [
            "0000:41:00.0", "0000:41:00.1", "0000:42:00.0",
        ],
        # bash replaces only what follows the word's last ':'
        f"hostdev-resolver map add pci gpu0 --sysfs {sysfs} --address 0000:41:": ["00.0", "00.1"],
        "hostdev-resolver map add pci gpu0 --allow ": ["ml-train", "web-1"],
        # each kind offers its own options only
        "hostdev-resolver map add pci gpu0 --v": ["--vfio"],
        "hostdev-resolver map add pci gpu0 --vfio ": ["start", "boot"],
        f"hostdev-resolver bind {s} g": ["gpu0"],
        f"hostdev-resolver unbind {s} ": ["gpu0", "yubikey", "db-lun"],
        "hostdev-resolver bind --b": ["--boot"],
        "hostdev-resolver map add pci gpu0 --w": [],
        "hostdev-resolver map add lun db --w": ["--wwn"],
        "hostdev-resolver map add usb key --p": ["--product", "--port", "--pool"],
        "hostdev-resolver map add ": ["pci", "usb", "vf", "mdev", "lun", "scsi", "vhba"],
    }  # fmt: skip
    body = [f"source {shlex.quote(str(script))}"]
    for line in cases:
        body += [
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()",
            '_hostdev_resolver; printf "%s\\n" "${COMPREPLY[*]}"',
        ]
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "\n".join(body)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={
            "PATH": f"{bindir}:/usr/bin:/bin",
            "COMP_WORDBREAKS": "\"'><=;|&(:",
            "HOSTDEV_RESOLVER_CACHE": os.environ["HOSTDEV_RESOLVER_CACHE"],
        },
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    replies = proc.stdout.split("\n")[: len(cases)]
    for (line, wanted), reply in zip(cases.items(), replies, strict=True):
        assert sorted(reply.split()) == sorted(wanted), line
