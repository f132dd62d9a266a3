from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostdev_resolver.host.scsisysfs import (
    lun_identity_from_udev,
    read_scsi_inventory,
    udev_by_id_links,
)
from hostdev_resolver.model.errors import InputError
from hostdev_resolver.model.scsi import LunIdentity, ScsiAddress
from hostdev_resolver.model.wwn import Wwn
from tests.scsi import hosts
from tests.support.scsitree import ScsiTree, naa, page83


def test_two_fc_hbas_see_one_lun_through_two_paths(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.fc_tree(tmp_path))
    lun = LunIdentity(wwn=Wwn.parse(hosts.FC_LUN))
    paths = inv.find(lun)
    assert [(str(p.address), p.block, p.generic) for p in paths] == [
        ("2:0:0:1", "sdb", "sg1"),
        ("3:0:0:1", "sdc", "sg2"),
    ]
    assert [(h.host, str(h.wwpn), h.npiv_capable, h.parent) for h in inv.fc_hosts] == [
        (2, hosts.HBA_A[1], True, None),
        (3, hosts.HBA_B[1], True, None),
    ]
    assert inv.fc_hosts[0].fabric == Wwn.parse(hosts.FABRIC)
    assert inv.fc_target(3, 0, 0) is not None
    assert str(inv.fc_targets_by_wwpn(3, Wwn.parse(hosts.TARGET_B))[0].wwpn) == hosts.TARGET_B
    assert inv.multipath_of(paths) is None
    assert inv.link_target(f"wwn-0x{hosts.FC_LUN}") == "sdb"


def test_multipath_map_is_found_from_its_slaves(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.fc_tree(tmp_path, multipath=True))
    paths = inv.find(LunIdentity(wwn=Wwn.parse(hosts.FC_LUN)))
    mp = inv.multipath_of(paths[1:])
    assert mp is not None
    assert (mp.dm, mp.name, mp.slaves) == ("dm-0", "mpatha", ("sdb", "sdc"))
    assert mp.by_id_name == f"dm-uuid-mpath-3{hosts.FC_LUN}"
    assert inv.link_target(mp.by_id_name) == "dm-0"


def test_non_multipath_device_mapper_maps_are_not_paths(tmp_path: Path) -> None:
    tree = hosts.fc_tree(tmp_path)
    tree.add_multipath("dm-1", "LVM-abcdef", "vg-lv", ["sdb"])
    assert hosts.inventory(tree).multipaths == ()


def test_npiv_vport_knows_its_parent_by_the_sysfs_path(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.fc_tree(tmp_path, npiv=True))
    vport = inv.fc_host_by_wwpn(Wwn.parse(hosts.VPORT[1]))
    assert vport is not None
    assert (vport.host, vport.parent, vport.npiv_capable) == (9, 2, False)
    assert inv.device(ScsiAddress(9, 0, 0, 2)) is not None


def test_sas_usb_and_a_broken_page_in_one_host(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.mixed_tree(tmp_path))
    sas = inv.device(ScsiAddress(0, 0, 0, 0))
    assert sas is not None and sas.identity is not None
    # the SAS target port's NAA (association 1) is not the disk's WWN
    assert sas.identity.wwn == Wwn.parse(hosts.SAS_LUN)
    assert (sas.identity.vendor, sas.identity.model) == ("SEAGATE", "ST4000NM0025")
    usb = inv.device(ScsiAddress(6, 0, 0, 0))
    assert usb is not None and usb.identity is not None
    assert usb.identity.wwn is None
    assert usb.identity.t10_id == "KingstonDataTraveler 3.0 60A44C413E4EF0A0B9B4"
    assert usb.identity.serial == hosts.USB_SERIAL
    broken = inv.device(ScsiAddress(5, 0, 0, 0))
    assert broken is not None
    assert broken.identity is None
    assert broken.problem is not None and "truncated" in broken.problem
    assert broken.block == "sdh"
    assert inv.links_to("sde") == [hosts.USB_LINK]


def test_old_kernels_without_vpd_attributes_fall_back_to_wwid(tmp_path: Path) -> None:
    tree = ScsiTree(tmp_path / "sys", tmp_path / "dev")
    tree.add_host(1)
    tree.add_device("1:0:0:0", wwid="naa.5000c500a1b2c3d4", block="sda")
    tree.add_device("1:0:0:1", wwid="naa.4000c500a1b2c3d4", block="sdb")
    tree.add_device("1:0:0:2", block="sdc")
    inv = read_scsi_inventory(tree.sysfs, None)
    ok, bad_naa, nothing = inv.devices
    assert ok.identity is not None and ok.identity.wwn == Wwn.parse(hosts.SAS_LUN)
    assert bad_naa.identity is None and "NAA type 4" in (bad_naa.problem or "")
    assert nothing.identity is None and "no WWN" in (nothing.problem or "")
    assert inv.links is None


def test_broken_fc_host_names_are_reported_and_skipped(tmp_path: Path) -> None:
    tree = hosts.fc_tree(tmp_path)
    (tree.sysfs / "class" / "fc_host" / "host3" / "port_name").write_text("0xnot-a-wwn\n")
    inv = hosts.inventory(tree)
    assert [h.host for h in inv.fc_hosts] == [2]
    assert len(inv.unreadable) == 1
    assert "0xnot-a-wwn" in inv.unreadable[0].problem


def test_a_missing_sysfs_root_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_scsi_inventory(tmp_path / "nope", None)


def test_device_at_unparseable_class_name_is_ignored(tmp_path: Path) -> None:
    tree = ScsiTree(tmp_path / "sys", tmp_path / "dev")
    tree.add_host(1)
    tree.add_device("1:0:0:0", pg83=page83(naa(hosts.SAS_LUN)), block="sda")
    (tree.sysfs / "class" / "scsi_device" / "garbage").mkdir()
    assert [str(d.address) for d in hosts.inventory(tree).devices] == ["1:0:0:0"]


@dataclass(frozen=True)
class FakeUdevDevice:
    """The pyudev.Device property lun_identity_from_udev reads (umockdev: test_umockdev)."""

    properties: Mapping[str, str]


def test_udev_identity_prefers_the_wwn_with_extension() -> None:
    dev = FakeUdevDevice(
        {
            "ID_WWN": "0x600a098038303053",
            "ID_WWN_WITH_EXTENSION": "0x600a0980383030534f2b4a6c61357a41",
            "ID_SCSI_SERIAL": "80D4s+Jla5zA",
            "ID_VENDOR": "NETAPP",
            "ID_MODEL": "LUN_C-Mode",
            "DEVLINKS": "/dev/disk/by-id/wwn-0x600a0980383030534f2b4a6c61357a41 "
            "/dev/disk/by-path/pci-0000:41:00.0-fc-0x500a098188b4c3e2-lun-1 "
            "/dev/disk/by-id/scsi-3600a0980383030534f2b4a6c61357a41",
        }
    )
    ident = lun_identity_from_udev(dev)
    assert ident == LunIdentity(
        Wwn.parse(hosts.FC_LUN), None, "80D4s+Jla5zA", "NETAPP", "LUN_C-Mode"
    )
    assert udev_by_id_links(dev) == (
        "scsi-3600a0980383030534f2b4a6c61357a41",
        "wwn-0x600a0980383030534f2b4a6c61357a41",
    )


def test_udev_without_identity_and_with_a_bad_wwn() -> None:
    assert lun_identity_from_udev(FakeUdevDevice({"ID_VENDOR": "x"})) is None
    with pytest.raises(InputError, match="ID_WWN"):
        lun_identity_from_udev(FakeUdevDevice({"ID_WWN": "0x4000c500a1b2c3d4"}))


def test_inventory_output_lists_what_map_add_can_use(tmp_path: Path) -> None:
    import json

    from hostdev_resolver.model.scsi import describe_scsi, scsi_to_json

    inv = hosts.inventory(hosts.fc_tree(tmp_path, multipath=True, npiv=True))
    lines = describe_scsi(inv)
    assert f"scsi 2:0:0:1 disk sdb sg1 WWN 0x{hosts.FC_LUN}" in lines
    assert (
        f"fc scsi_host9 wwnn {hosts.VPORT[0]} wwpn {hosts.VPORT[1]} Online "
        f"fabric {hosts.FABRIC} vport of scsi_host2"
    ) in lines
    assert f"multipath mpatha mpath-3{hosts.FC_LUN} paths sdb sdc" in lines
    data = json.loads(json.dumps(scsi_to_json(inv)))
    assert data["devices"][0]["identity"]["wwn"] == f"0x{hosts.FC_LUN}"
    assert data["devices"][0]["by_id"] == [
        f"scsi-3{hosts.FC_LUN}",
        f"wwn-0x{hosts.FC_LUN}",
    ]
    assert data["fc_hosts"][2]["parent"] == "scsi_host2"
    broken = describe_scsi(hosts.inventory(hosts.mixed_tree(tmp_path / "m")))
    assert any(line.startswith("scsi 5:0:0:0 disk sdh sg7 UNREADABLE: VPD page") for line in broken)
