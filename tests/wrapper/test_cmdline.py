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
