"""packaging/hostdev-resolver-bind.service: ordered early, runs `bind --boot`, shipped enabled
by the .deb (never started by an install), checked by systemd-analyze where it is present."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli.bind import cmd_bind
from hostdev_resolver.doors.cli.main import build_parser
from tests.packaging import apt

UNIT = apt.PACKAGING / "hostdev-resolver-bind.service"


def unit_entries(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as systemd reads it: a key may repeat, list values split on spaces."""
    out: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return unit_entries(UNIT.read_text())


def _words(values: list[str]) -> list[str]:
    return [w for v in values for w in v.split()]


def test_ordered_before_udev_coldplug_and_display_managers(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    u = unit["Unit"]
    assert u["DefaultDependencies"] == ["no"]
    before = _words(u["Before"])
    for target in (
        "systemd-udev-trigger.service",  # coldplug loads the drivers of unclaimed devices
        "systemd-modules-load.service",
        "sysinit.target",
        "display-manager.service",
        "libvirtd.service",
        "virtqemud.service",
        "shutdown.target",
    ):
        assert target in before, target
    assert "modprobe@vfio_pci.service" in _words(u["Wants"])
    after = _words(u["After"])
    assert "modprobe@vfio_pci.service" in after
    # Nothing that waits for mounts or the network: that would order it after coldplug.
    assert not set(after) & {"local-fs.target", "network.target", "basic.target"}
    assert "RequiresMountsFor" not in u


def test_runs_bind_boot_once_and_stays_active(unit: dict[str, dict[str, list[str]]]) -> None:
    s = unit["Service"]
    assert s["Type"] == ["oneshot"] and s["RemainAfterExit"] == ["yes"]
    assert "ExecStop" not in s  # stopping gives nothing back: 'unbind' does, by name
    (command,) = s["ExecStart"]
    program, *argv = command.split()
    assert program == "/usr/bin/hostdev-resolver"
    args = build_parser(argv[0]).parse_args(argv)
    assert args.handler is cmd_bind and args.boot and not args.names and not args.dry_run
    assert unit["Install"]["WantedBy"] == ["sysinit.target"]


def test_the_deb_enables_it_and_never_starts_it_and_the_rpm_ships_it() -> None:
    rules = (apt.PACKAGING / "debian" / "rules").read_text()
    assert "packaging/hostdev-resolver-bind.service $(PKG)/lib/systemd/system/" in rules
    calls = re.findall(r"^\tdh_installsystemd (.*)$", rules, re.M)
    assert "--no-start hostdev-resolver-bind.service" in calls
    assert "--no-enable --no-start hostdev-resolver-agent.service" in calls
    spec = (apt.PACKAGING / "rpm" / "hostdev-resolver.spec").read_text()
    assert "%{_unitdir}/hostdev-resolver-bind.service\n" in spec


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_it(tmp_path: Path) -> None:
    # The installed unit runs /usr/bin/hostdev-resolver; here the venv's stands in for it.
    program = Path(sys.executable).with_name("hostdev-resolver")
    text = UNIT.read_text().replace("/usr/bin/hostdev-resolver", str(program))
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
