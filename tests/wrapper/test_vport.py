"""NPIV: the wrapper creates a missing vport through libvirt's node-device API.

libvirt's test driver (test:///default) really creates the vHBA node device; the
kernel's side (a new scsi_hostN with the LUNs masked to the vport's WWPN) is played
by adding that host to the fake sysfs tree when libvirt is asked to create it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest

from hostdev_resolver.doors.wrapper import Session, resolve_for_node
from hostdev_resolver.model.errors import UnresolvableError
from tests.support.scsitree import ScsiTree, naa, page83

# scsi_host1 of libvirt's test:///default: an FC HBA that can create vports.
PARENT = ("0x2000000012341234", "0x1000000012341234")
FABRIC = "0x2000000043214321"
VPORT = ("0x2001001b32a9da4e", "0x2101001b32a9da4e")
LUN = "600a0980383030534f2b4a6c61357a99"
HR = "http://hostdev-resolver.org/xmlns/domain/1"

DOMAIN = f"""<domain type='qemu' xmlns:hr='{HR}'>
  <name>wrap-npiv</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <hostdev mode='subsystem' type='scsi' hr:map='vhba0'>
      <source><address bus='0' target='0' unit='2'/></source>
    </hostdev>
  </devices>
</domain>
"""


class Kernel:
    """A libvirt connection whose vport creation the fake sysfs tree follows (or not)."""

    def __init__(self, tree: ScsiTree, *, reacts: bool) -> None:
        self.conn = libvirt.open("test:///default")
        self.tree = tree
        self.reacts = reacts
        self.created: list[str] = []

    def nodeDeviceCreateXML(self, xml: str, flags: int) -> Any:
        device = self.conn.nodeDeviceCreateXML(xml, flags)
        self.created.append(xml)
        if self.reacts:
            host = int(device.name().removeprefix("scsi_host"))
            self.tree.add_vport(host, 1, wwnn=VPORT[0], wwpn=VPORT[1], fabric=FABRIC)
            self.tree.add_fc_target(host, 0, 0, wwpn="0x500a098188b4c3e2")
            self.tree.add_device(f"{host}:0:0:2", pg83=page83(naa(LUN)), block="sdf", sg="sg6")
        return device


def _setup(tmp_path: Path, *, reacts: bool) -> tuple[Session, Kernel]:
    tree = ScsiTree(tmp_path / "sys", tmp_path / "dev")
    tree.add_hba(1, wwnn=PARENT[0], wwpn=PARENT[1], fabric=FABRIC)
    store = tmp_path / "mappings.xml"
    store.write_text(
        "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>\n"
        f"  <vhba name='vhba0' wwnn='{VPORT[0]}' wwpn='{VPORT[1]}' "
        f"parent-wwnn='{PARENT[0]}' parent-wwpn='{PARENT[1]}'/>\n"
        "</mappings>\n"
    )
    kernel = Kernel(tree, reacts=reacts)
    ours: dict[str, str | bool] = {
        "--store": str(store),
        "--node": "hv1",
        "--sysfs": str(tmp_path / "sys"),
    }
    return Session(kernel, "test:///default", ours, False), kernel


def test_missing_vport_is_created_then_resolved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session, kernel = _setup(tmp_path, reacts=True)
    out = resolve_for_node(DOMAIN.encode(), "npiv.xml", session).decode()
    assert len(kernel.created) == 1
    assert f"<parent wwnn='{PARENT[0][2:]}' wwpn='{PARENT[1][2:]}'/>" in kernel.created[0]
    assert f"<wwpn>{VPORT[1][2:]}</wwpn>" in kernel.created[0]
    said = capsys.readouterr().out
    assert f"Created NPIV vport scsi_host12 (WWPN {VPORT[1]}) for mapping 'vhba0'" in said
    assert "<adapter name='scsi_host12'/>" in out
    assert "<address bus='0' target='0' unit='2'/>" in out
    # Resolving again finds the vport there and creates nothing more.
    again = resolve_for_node(out.encode(), "npiv.xml", session).decode()
    assert again == out and len(kernel.created) == 1


def test_vport_that_never_appears_is_refused_after_the_attempt(tmp_path: Path) -> None:
    session, kernel = _setup(tmp_path, reacts=False)
    with pytest.raises(UnresolvableError) as err:
        resolve_for_node(DOMAIN.encode(), "npiv.xml", session)
    assert len(kernel.created) == 1
    assert f"no NPIV vport with WWNN {VPORT[0]} WWPN {VPORT[1]}" in err.value.message
