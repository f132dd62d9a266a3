"""The start-time check of LUN disks and SCSI hostdevs (hook `prepare begin`)."""

from __future__ import annotations

import os
from pathlib import Path

from hostdev_resolver.core.metadata import read_resolution
from hostdev_resolver.core.scsiresolve import ScsiRecord, verify_scsi
from hostdev_resolver.core.verification import verify_domain
from hostdev_resolver.model.scsi import LunIdentity, ScsiAddress, ScsiInventory
from hostdev_resolver.model.wwn import Wwn
from hostdev_resolver.xml.store import parse_store
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.scsi import hosts
from tests.scsi.test_resolve import HOSTDEV, LUN_DISK, NO_PCI, STORE, domain, resolve
from tests.support.scsitree import naa, page83

ISCSI = LunIdentity(wwn=Wwn.parse(hosts.ISCSI_LUN))
ISCSI_DEV = f"/dev/disk/by-id/wwn-0x{hosts.ISCSI_LUN}"


def disk_record(dev: str = ISCSI_DEV, identity: LunIdentity = ISCSI) -> ScsiRecord:
    return ScsiRecord("lun", "iscsi-lun", identity, dev=dev)


def test_disk_whose_link_leads_to_the_lun_passes(tmp_path: Path) -> None:
    assert verify_scsi(disk_record(), hosts.inventory(hosts.iscsi_tree(tmp_path, 4))) == []


def test_iscsi_relogin_does_not_matter_to_a_disk_by_wwn(tmp_path: Path) -> None:
    assert verify_scsi(disk_record(), hosts.inventory(hosts.iscsi_tree(tmp_path, 7, "sdk"))) == []


def test_missing_link_with_the_lun_present_says_run_udev(tmp_path: Path) -> None:
    tree = hosts.iscsi_tree(tmp_path, 4)
    os.unlink(tree.dev / "disk" / "by-id" / f"wwn-0x{hosts.ISCSI_LUN}")
    [finding] = verify_scsi(disk_record(), hosts.inventory(tree))
    assert finding.status == "missing"
    assert "is present (scsi_host4:0:0:0 (sdd))" in finding.what
    assert "udevadm trigger" in finding.fix


def test_missing_lun_says_check_the_fabric(tmp_path: Path) -> None:
    [finding] = verify_scsi(disk_record(), hosts.inventory(hosts.mixed_tree(tmp_path)))
    assert finding.status == "missing"
    assert "no LUN with WWN 0x6001405a" in finding.what
    assert "could not read 5:0:0:0" in finding.what
    assert "iSCSI login" in finding.fix


def test_link_to_another_disk_is_a_mismatch(tmp_path: Path) -> None:
    tree = hosts.mixed_tree(tmp_path)
    tree.add_link(f"wwn-0x{hosts.ISCSI_LUN}", "sda")  # a stale udev database, or a forged link
    [finding] = verify_scsi(disk_record(), hosts.inventory(tree))
    assert finding.status == "mismatch"
    assert f"leads to sda with WWN 0x{hosts.SAS_LUN} (expected WWN 0x{hosts.ISCSI_LUN})" in (
        finding.what
    )


def test_link_to_an_unreadable_disk_refuses(tmp_path: Path) -> None:
    tree = hosts.mixed_tree(tmp_path)
    tree.add_link(f"wwn-0x{hosts.ISCSI_LUN}", "sdh")
    [finding] = verify_scsi(disk_record(), hosts.inventory(tree))
    assert finding.status == "unreadable"
    assert "truncated" in finding.what


def test_multipath_disk_checks_every_path(tmp_path: Path) -> None:
    fc = LunIdentity(wwn=Wwn.parse(hosts.FC_LUN))
    record = ScsiRecord(
        "lun",
        "db-lun",
        fc,
        dev=f"/dev/disk/by-id/dm-uuid-mpath-3{hosts.FC_LUN}",
        multipath=f"mpath-3{hosts.FC_LUN}",
    )
    tree = hosts.fc_tree(tmp_path / "ok", multipath=True)
    assert verify_scsi(record, hosts.inventory(tree)) == []
    # one path of the map now answers with another LUN's WWN (a re-zoned target)
    bad = hosts.fc_tree(tmp_path / "bad", multipath=True)
    (bad.sysfs / "class" / "scsi_device" / "3:0:0:1" / "device" / "vpd_pg83").write_bytes(
        page83(naa(hosts.SAS_LUN))
    )
    [finding] = verify_scsi(record, hosts.inventory(bad))
    assert finding.status == "mismatch"
    assert "path sdc of mpatha is with WWN 0x5000c500a1b2c3d4" in finding.what


def test_without_dev_root_a_disk_is_unchecked_never_ok(tmp_path: Path) -> None:
    from hostdev_resolver.host.scsisysfs import read_scsi_inventory

    tree = hosts.iscsi_tree(tmp_path, 4)
    [finding] = verify_scsi(disk_record(), read_scsi_inventory(tree.sysfs, None))
    assert finding.status == "unchecked"


def hostdev_record(host: int) -> ScsiRecord:
    return ScsiRecord("scsi", "iscsi-lun", ISCSI, address=ScsiAddress(host, 0, 0, 0))


def test_hostdev_at_its_recorded_numbers_passes(tmp_path: Path) -> None:
    assert verify_scsi(hostdev_record(4), hosts.inventory(hosts.iscsi_tree(tmp_path, 4))) == []


def test_hostdev_after_iscsi_relogin_is_refused_with_the_new_numbers(tmp_path: Path) -> None:
    after = hosts.inventory(hosts.iscsi_tree(tmp_path, 7, "sdk"))
    [finding] = verify_scsi(hostdev_record(4), after)
    assert finding.status == "shifted"
    assert finding.what == (
        "iscsi-lun: scsi_host4 bus 0 target 0 unit 0 is empty; the LUN with WWN "
        f"0x{hosts.ISCSI_LUN} is now at scsi_host7 bus 0 target 0 unit 0 "
        "(host numbers change on rescan, reboot or iSCSI re-login)"
    )
    assert "hostdev-virsh define" in finding.fix
    assert "hostdev-resolver resolve" in finding.fix


def test_hostdev_whose_numbers_now_hold_another_lun(tmp_path: Path) -> None:
    tree = hosts.mixed_tree(tmp_path)
    record = ScsiRecord("scsi", "tape0", ISCSI, address=ScsiAddress(0, 0, 0, 0))
    [finding] = verify_scsi(record, hosts.inventory(tree))
    assert finding.status == "mismatch"
    assert f"holds WWN 0x{hosts.SAS_LUN}" in finding.what


def test_hostdev_at_an_unreadable_device(tmp_path: Path) -> None:
    record = ScsiRecord("scsi", "x", ISCSI, address=ScsiAddress(5, 0, 0, 0))
    [finding] = verify_scsi(record, hosts.inventory(hosts.mixed_tree(tmp_path)))
    assert finding.status == "unreadable"


def _verify(data: bytes, scsi: ScsiInventory | None, store: str = STORE) -> list[str]:
    doc = parse_bytes(data, "guest.xml")
    found = verify_domain(
        doc, parse_store(parse_bytes(store.encode(), "m.xml")), NO_PCI, "hv1", scsi=scsi
    )
    return [f"{f.status}: {f}" for f in found]


def test_verify_domain_after_rescan_refuses_and_after_re_resolve_passes(tmp_path: Path) -> None:
    before = hosts.inventory(hosts.iscsi_tree(tmp_path / "a", 4))
    after = hosts.inventory(hosts.iscsi_tree(tmp_path / "b", 7, "sdk"))
    devices = LUN_DISK.format("iscsi-lun") + "\n" + HOSTDEV.format("iscsi-lun")
    devices = devices.replace("<target dev='sda'", "<target dev='sdb'")
    resolved, _ = resolve(domain(devices), before)
    record = read_resolution(parse_bytes(resolved, "x"))
    assert record is not None and [type(r) for r in record.records] == [ScsiRecord] * 2
    assert [s.split(":")[0] for s in _verify(resolved, before)] == ["ok", "ok"]
    disk, hostdev = _verify(resolved, after)
    assert disk.startswith("ok")
    assert hostdev.startswith("shifted: guest.xml:")
    assert "now at scsi_host7 bus 0 target 0 unit 0" in hostdev
    again, _ = resolve(resolved, after)
    assert [s.split(":")[0] for s in _verify(again, after)] == ["ok", "ok"]


def test_verify_domain_checks_the_store_and_needs_an_inventory(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.iscsi_tree(tmp_path, 4))
    resolved, _ = resolve(domain(HOSTDEV.format("iscsi-lun")), scsi)
    [unchecked] = _verify(resolved, None)
    assert unchecked.startswith("missing:") and "no SCSI inventory" in unchecked
    other = STORE.replace(f"wwn='0x{hosts.ISCSI_LUN}'", f"wwn='0x{hosts.SAS_LUN}'")
    [stale] = _verify(resolved, scsi, other)
    assert stale.startswith("stale:") and "no longer names the LUN" in stale
    denied = STORE.replace(
        f"<lun name='iscsi-lun' wwn='0x{hosts.ISCSI_LUN}'/>",
        f"<lun name='iscsi-lun' wwn='0x{hosts.ISCSI_LUN}'><allow domain='db'/></lun>",
    )
    [refused] = _verify(resolved, scsi, denied)
    assert refused.startswith("denied:")
    gone = STORE.replace(f"<lun name='iscsi-lun' wwn='0x{hosts.ISCSI_LUN}'/>", "")
    [unmapped] = _verify(resolved, scsi, gone)
    assert unmapped.startswith("unmapped:")
