"""hostdev-virsh's command line is read as virsh's getopt_long reads it (no daemon needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hostdev_resolver.doors.wrapper import split_command_line
from hostdev_resolver.model.errors import UsageError

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("argv", "uri", "quiet", "readonly", "command"),
    [
        (["-qc", "test:///default", "define", "f.xml"], "test:///default", True, False, "define"),
        (["-rq", "-cu", "start", "d"], "u", True, True, "start"),
        (
            ["--conn", "test:///default", "define", "f.xml"],
            "test:///default",
            False,
            False,
            "define",
        ),
        (["--conn=u", "--read", "list"], "u", False, True, "list"),
        (["-c", "u", "--", "define", "f.xml"], "u", False, False, "define"),
    ],
)
def test_bundled_and_abbreviated_globals(
    argv: list[str], uri: str, quiet: bool, readonly: bool, command: str
) -> None:
    inv = split_command_line([*argv, "--store", "s.xml"])
    assert (inv.uri, inv.quiet, inv.readonly, inv.command) == (uri, quiet, readonly, command)
    if command in ("define", "start"):
        assert inv.ours == {"--store": "s.xml"}  # taken out before anything reaches virsh
    assert list(inv.virsh_globals) == argv[: len(inv.virsh_globals)]


@pytest.mark.parametrize("argv", [["-x", "list"], ["--nope", "list"], ["--k", "3"], ["-c"]])
def test_options_virsh_would_refuse_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        split_command_line(argv)


def test_a_domain_without_references_needs_no_store(tmp_path: Path) -> None:
    """A drop-in for virsh must not block guests that have nothing to do with it."""
    plain = tmp_path / "plain.xml"
    plain.write_text(
        "<domain type='test'><name>wrap-plain</name><memory>65536</memory>"
        "<os><type>hvm</type></os></domain>\n"
    )
    env = {"HOSTDEV_RESOLVER_STORE": str(tmp_path / "missing.xml"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [str(BIN / "hostdev-virsh"), "-qc", "test:///default", "define", str(plain)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_help_shows_our_options_then_virshs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "hostdev-virsh"), "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    ours = proc.stdout.index("--store PATH")
    theirs = proc.stdout.index("virsh [options]")
    assert ours < theirs


def test_our_options_without_a_command_are_refused() -> None:
    proc = subprocess.run(
        [str(BIN / "hostdev-virsh"), "--policy", "tuned"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("hostdev-virsh: --policy: only with a command")
    assert proc.stderr.count("\n") == 1


def test_edit_with_an_unreadable_editor_is_one_line_and_leaves_no_file(tmp_path: Path) -> None:
    env = {
        "EDITOR": '"unterminated',
        "PATH": "/usr/bin:/bin",
        "TMPDIR": str(tmp_path),
        "HOSTDEV_RESOLVER_STORE": str(tmp_path / "m.xml"),
    }
    proc = subprocess.run(
        [str(BIN / "hostdev-virsh"), "-c", "test:///default", "edit", "test"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hostdev-virsh: $EDITOR '\"unterminated' cannot be read")
    assert list(tmp_path.iterdir()) == []


# What the hand-written reader emulates of getopt_long("+:c:d:e:hk:K:l:qrtvV", longs),
# one behaviour each (doors/wrapper.py says why it is not the getopt module).
@pytest.mark.parametrize(
    ("argv", "virsh_globals", "uri", "command", "args", "ours"),
    [
        # a long option by any unique prefix, its value next or after "="
        (["--conn", "u", "--q", "list"], ("--conn", "u", "--q"), "u", "list", (), {}),
        (["--read", "--con=u", "list"], ("--read", "--con=u"), "u", "list", (), {}),
        # ours with "=" too, and taken out of what virsh is given
        (
            ["--store=s.xml", "--connect=u", "--node", "n", "define", "f.xml"],
            ("--connect=u",),
            "u",
            "define",
            ("f.xml",),
            {"--store": "s.xml", "--node": "n"},
        ),
        # "--" ends the options: what follows is the command, even if it looks like one
        (["-q", "--", "define", "f.xml"], ("-q", "--"), None, "define", ("f.xml",), {}),
        # bundled short options, the last one's value attached or next
        (["-qrcu", "list"], ("-qrcu",), "u", "list", (), {}),
        (["-qrc", "u", "list"], ("-qrc", "u"), "u", "list", (), {}),
        # options after the command: ours are taken out for a command we handle …
        (
            ["define", "f.xml", "--validate", "--node=n", "--policy", "tuned"],
            (),
            None,
            "define",
            ("f.xml", "--validate"),
            {"--node": "n", "--policy": "tuned"},
        ),
        # … and a command virsh runs alone gets every option after it untouched, ours
        # and ones nobody knows alike
        (
            ["-c", "u", "list", "--all", "--node", "n", "--bogus", "-x"],
            ("-c", "u"),
            "u",
            "list",
            ("--all", "--node", "n", "--bogus", "-x"),
            {},
        ),
    ],
)
def test_the_command_line_is_read_as_getopt_long_reads_it(
    argv: list[str],
    virsh_globals: tuple[str, ...],
    uri: str | None,
    command: str,
    args: tuple[str, ...],
    ours: dict[str, str],
) -> None:
    inv = split_command_line(argv)
    assert inv.virsh_globals == virsh_globals
    assert (inv.uri, inv.command, inv.args, inv.ours) == (uri, command, args, ours)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--k", "3", "list"], "ambiguous option --k"),  # keepalive-interval or -count
        (["--bogus", "list"], "unknown option --bogus"),
        (["-x", "list"], "unknown option -x"),
        (["--connect"], "--connect needs a value"),
        (["-qc"], "-c needs a value"),
        (["define", "f.xml", "--store"], "--store needs a value"),
    ],
)
def test_what_getopt_long_refuses_is_refused_in_one_line(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as refused:
        split_command_line(argv)
    assert refused.value.message.startswith(message)
    assert "\n" not in refused.value.message
