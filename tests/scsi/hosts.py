"""The hosts the SCSI tests run on, built as kernel-like trees (tests/support/scsitree.py)."""

from __future__ import annotations

from pathlib import Path

from hostdev_resolver.host.scsisysfs import read_scsi_inventory
from hostdev_resolver.model.scsi import ScsiInventory
from tests.support.scsitree import ScsiTree, naa, page80, page83, t10

# One NetApp LUN (NAA type 6) behind two FC HBAs, through two target ports.
FC_LUN = "600a0980383030534f2b4a6c61357a41"
HBA_A = ("0x20000024ff3dc1a2", "0x21000024ff3dc1a2")
HBA_B = ("0x20000024ff3dc1a3", "0x21000024ff3dc1a3")
TARGET_A = "0x500a098188b4c3e2"
TARGET_B = "0x500a098198b4c3e2"
FABRIC = "0x100000051e0f3a01"
# iSCSI (LIO) LUN
ISCSI_LUN = "6001405a1b2c3d4e5f60718293a4b5c6"
# SAS disk: NAA type 5 for the LU, another NAA 5 for its SAS target port
SAS_LUN = "5000c500a1b2c3d4"
SAS_PORT = "5000c500a1b2c3d5"
# USB stick: only a T10 vendor ID designator and a unit serial
USB_T10 = ("Kingston", "DataTraveler 3.0 60A44C413E4EF0A0B9B4")
USB_SERIAL = "60A44C413E4EF0A0B9B4"
USB_LINK = "usb-Kingston_DataTraveler_3.0_60A44C413E4EF0A0B9B4-0:0"
# NPIV vport on HBA A, and the LUN masked to it
VPORT = ("0x2001001b32a9da4e", "0x2101001b32a9da4e")
NPIV_LUN = "600a0980383030534f2b4a6c61357a99"


def udev_links(hex_digits: str) -> list[str]:
    """The links 60-persistent-storage.rules makes for an NAA LUN."""
    return [f"wwn-0x{hex_digits}", f"scsi-3{hex_digits}"]


def fc_tree(root: Path, *, multipath: bool = False, npiv: bool = False) -> ScsiTree:
    tree = ScsiTree(root / "sys", root / "dev")
    tree.add_hba(2, pci="0000:41:00.0", wwnn=HBA_A[0], wwpn=HBA_A[1], fabric=FABRIC)
    tree.add_hba(3, pci="0000:41:00.1", wwnn=HBA_B[0], wwpn=HBA_B[1], fabric=FABRIC)
    tree.add_fc_target(2, 0, 0, wwpn=TARGET_A)
    tree.add_fc_target(3, 0, 0, wwpn=TARGET_B)
    pg = page83(naa(FC_LUN), naa(TARGET_A[2:], association=1))
    tree.add_device(
        "2:0:0:1",
        pg83=pg,
        pg80=page80("80D4s+Jla5zA"),
        block="sdb",
        sg="sg1",
        links=udev_links(FC_LUN),
    )
    tree.add_device("3:0:0:1", pg83=pg, pg80=page80("80D4s+Jla5zA"), block="sdc", sg="sg2")
    if multipath:
        tree.add_multipath("dm-0", f"mpath-3{FC_LUN}", "mpatha", ["sdb", "sdc"])
    if npiv:
        tree.add_vport(9, 2, wwnn=VPORT[0], wwpn=VPORT[1], fabric=FABRIC)
        tree.add_fc_target(9, 0, 0, wwpn=TARGET_A)
        tree.add_device(
            "9:0:0:2", pg83=page83(naa(NPIV_LUN)), block="sdf", sg="sg6", links=udev_links(NPIV_LUN)
        )
    return tree


def iscsi_tree(root: Path, host: int, block: str = "sdd") -> ScsiTree:
    """An iSCSI session's LUN; `host` is whatever number the last login got."""
    tree = ScsiTree(root / "sys", root / "dev")
    tree.add_host(host)  # iSCSI hosts sit at devices/platform/hostN
    tree.add_device(
        f"{host}:0:0:0",
        vendor="LIO-ORG",
        model="block0",
        pg83=page83(naa(ISCSI_LUN)),
        pg80=page80("a1b2c3d4-e5f6"),
        block=block,
        sg=f"sg{host}",
        links=udev_links(ISCSI_LUN),
    )
    return tree


def mixed_tree(root: Path) -> ScsiTree:
    """A SAS disk, a USB stick and a disk whose page 0x83 is truncated."""
    tree = ScsiTree(root / "sys", root / "dev")
    tree.add_host(0, tree.sysfs / "devices" / "pci0000:00" / "0000:00:17.0")
    tree.add_device(
        "0:0:0:0",
        vendor="SEAGATE",
        model="ST4000NM0025",
        pg83=page83(naa(SAS_LUN), naa(SAS_PORT, association=1)),
        pg80=page80("ZC1ABCDE"),
        block="sda",
        sg="sg0",
        links=udev_links(SAS_LUN),
    )
    tree.add_host(6, tree.sysfs / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1" / "1-2")
    tree.add_device(
        "6:0:0:0",
        vendor="Kingston",
        model="DataTraveler 3.0",
        pg83=page83(t10(*USB_T10)),
        pg80=page80(USB_SERIAL),
        block="sde",
        sg="sg5",
        links=[USB_LINK],
    )
    tree.add_host(5)
    broken = page83(naa(SAS_LUN[:-2] + "ff"))[:10]  # cut inside the designator
    tree.add_device("5:0:0:0", pg83=broken, block="sdh", sg="sg7")
    return tree


def inventory(tree: ScsiTree) -> ScsiInventory:
    return read_scsi_inventory(tree.sysfs, tree.dev)
