"""Resolving LUN disks and SCSI hostdevs in whole domains; every output passes domain.rng."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.core.metadata import read_resolution
from hostdev_resolver.core.resolution import resolve_domain
from hostdev_resolver.core.scsiresolve import ScsiRecord, vhba_nodedev_xml
from hostdev_resolver.host.snapshot import HostSnapshot
from hostdev_resolver.model.errors import (
    AmbiguousError,
    InputError,
    RefusedError,
    UnresolvableError,
)
from hostdev_resolver.model.scsi import ScsiInventory
from hostdev_resolver.xml.rng import domain_rng_errors
from hostdev_resolver.xml.store import VhbaMapping, parse_store
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.scsi import hosts

NS = "http://hostdev-resolver.org/xmlns/store/1"
STORE = f"""<mappings xmlns='{NS}'>
  <lun name='db-lun' wwn='0x{hosts.FC_LUN}'/>
  <lun name='iscsi-lun' wwn='0x{hosts.ISCSI_LUN}'/>
  <lun name='stick' t10-id='KingstonDataTraveler 3.0 60A44C413E4EF0A0B9B4'/>
  <scsi name='tape0' wwn='0x{hosts.SAS_LUN}'/>
  <scsi name='path-b' initiator='{hosts.HBA_B[1]}' target='{hosts.TARGET_B}' lun='1'/>
  <vhba name='vh0' wwnn='{hosts.VPORT[0]}' wwpn='{hosts.VPORT[1]}'
        parent-wwnn='{hosts.HBA_A[0]}' parent-wwpn='{hosts.HBA_A[1]}'/>
  <lun name='web-only' wwn='0x{hosts.SAS_LUN}'><allow domain='web-*'/></lun>
  <pci name='gpu0'/>
</mappings>
"""
NO_PCI = HostSnapshot(node="hv1")


def domain(devices: str, name: str = "scsi-guest") -> bytes:
    return f"""<domain type='qemu' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>{name}</name>
  <memory unit='KiB'>131072</memory>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <devices>
    <!-- the LUNs -->
{devices}
  </devices>
</domain>
""".encode()


def resolve(data: bytes, scsi: ScsiInventory, store: str = STORE) -> tuple[bytes, list[str]]:
    doc = parse_bytes(data, "guest.xml")
    result = resolve_domain(
        doc, parse_store(parse_bytes(store.encode(), "m.xml")), NO_PCI, "hv1", scsi=scsi
    )
    assert domain_rng_errors(result.data, "out.xml") == []
    return result.data, list(result.warnings)


LUN_DISK = """    <disk type='block' device='lun' hr:map='{0}'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='scsi'/>
    </disk>"""


def test_lun_disk_resolves_to_the_wwn_link_and_records_it(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.mixed_tree(tmp_path))
    store = STORE.replace(
        "<lun name='db-lun'", f"<lun name='sas' wwn='0x{hosts.SAS_LUN}'/>\n  <lun name='db-lun'"
    )
    out, warnings = resolve(domain(LUN_DISK.format("sas")), scsi, store)
    text = out.decode()
    assert f"<source dev='/dev/disk/by-id/wwn-0x{hosts.SAS_LUN}'/>" in text
    assert "hr:map=" not in text.split("<metadata>")[0]
    assert "<!-- the LUNs -->" in text
    assert (
        f"<hr:lun map='sas' wwn='0x{hosts.SAS_LUN}' dev='/dev/disk/by-id/wwn-0x{hosts.SAS_LUN}'/>"
        in text
    )
    assert warnings == []
    # idempotent: resolving the resolved document changes nothing
    again, _ = resolve(out, scsi, store)
    assert again == out


def test_hr_wwn_in_any_spelling_resolves_without_a_store_entry(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.mixed_tree(tmp_path))
    disk = (
        "    <disk type='block' device='lun' hr:wwn='NAA.5000C500A1B2C3D4'>\n"
        "      <source dev='/dev/sda'>\n        <reservations managed='yes'/>\n      </source>\n"
        "      <target dev='sda' bus='scsi'/>\n    </disk>"
    )
    out, _ = resolve(domain(disk), scsi)
    text = out.decode()
    # only dev changes: <reservations> (persistent reservations) stays in <source>
    assert (
        f"<source dev='/dev/disk/by-id/wwn-0x{hosts.SAS_LUN}'>\n        <reservations managed='yes'/>"
        in text
    )
    assert f"<hr:lun wwn='0x{hosts.SAS_LUN}'" in text
    record = read_resolution(parse_bytes(out, "out"))
    assert record is not None and isinstance(record.records[0], ScsiRecord)
    assert record.records[0].map is None
    assert resolve(out, scsi)[0] == out


def test_lun_without_wwn_falls_back_to_its_by_id_link_and_says_so(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.mixed_tree(tmp_path))
    out, warnings = resolve(domain(LUN_DISK.format("stick")), scsi)
    assert f"<source dev='/dev/disk/by-id/{hosts.USB_LINK}'/>" in out.decode()
    assert len(warnings) == 1 and "has no NAA WWN" in warnings[0]


def test_two_paths_without_multipath_are_ambiguous_and_listed(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.fc_tree(tmp_path))
    with pytest.raises(AmbiguousError) as caught:
        resolve(domain(LUN_DISK.format("db-lun")), scsi)
    message = caught.value.message
    assert "guest.xml:9" in message
    assert "scsi_host2:0:0:1 (sdb), scsi_host3:0:0:1 (sdc)" in message
    assert "multipathd" in message


def test_two_paths_with_multipath_resolve_to_the_map(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.fc_tree(tmp_path, multipath=True))
    out, _ = resolve(domain(LUN_DISK.format("db-lun")), scsi)
    text = out.decode()
    assert f"<source dev='/dev/disk/by-id/dm-uuid-mpath-3{hosts.FC_LUN}'/>" in text
    assert f"multipath='mpath-3{hosts.FC_LUN}'" in text


def test_short_udev_wwn_resolves_to_the_full_link(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.iscsi_tree(tmp_path, 4))
    disk = LUN_DISK.replace("hr:map='{0}'", f"hr:wwn='0x{hosts.ISCSI_LUN[:16]}'")
    out, _ = resolve(domain(disk), scsi)
    assert f"/dev/disk/by-id/wwn-0x{hosts.ISCSI_LUN}'" in out.decode()


HOSTDEV = "    <hostdev mode='subsystem' type='scsi' hr:map='{0}'/>"


def test_scsi_hostdev_gets_the_host_numbers_of_now(tmp_path: Path) -> None:
    before = hosts.inventory(hosts.iscsi_tree(tmp_path / "a", 4))
    after = hosts.inventory(hosts.iscsi_tree(tmp_path / "b", 7, block="sdk"))
    dev = "    <hostdev mode='subsystem' type='scsi' hr:map='iscsi-lun'/>"
    first, _ = resolve(domain(dev), before)
    assert (
        "<hostdev mode='subsystem' type='scsi'>\n      <source>\n"
        "        <adapter name='scsi_host4'/>\n"
        "        <address bus='0' target='0' unit='0'/>\n      </source>\n    </hostdev>"
    ) in first.decode()
    assert "address='4:0:0:0'" in first.decode()
    # after the iSCSI re-login the same document resolves to the new host number
    second, _ = resolve(first, after)
    assert "<adapter name='scsi_host7'/>" in second.decode()
    assert "address='7:0:0:0'" in second.decode()


def test_fc_path_mapping_pins_one_path(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.fc_tree(tmp_path))
    out, _ = resolve(domain(HOSTDEV.format("path-b")), scsi)
    text = out.decode()
    assert "<adapter name='scsi_host3'/>" in text
    assert f"initiator='{hosts.HBA_B[1]}' target='{hosts.TARGET_B}' lun='1'" in text
    with pytest.raises(AmbiguousError, match="pin one path"):
        resolve(domain(HOSTDEV.format("db-lun")), scsi)


def test_npiv_vhba_resolves_to_the_vport_host(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.fc_tree(tmp_path, npiv=True))
    dev = (
        "    <hostdev mode='subsystem' type='scsi' hr:map='vh0'>\n"
        "      <source>\n        <address bus='0' target='0' unit='2'/>\n      </source>\n"
        "    </hostdev>"
    )
    out, _ = resolve(domain(dev), scsi)
    text = out.decode()
    assert "<adapter name='scsi_host9'/>" in text
    assert f"vhba='{hosts.VPORT[1]}'" in text
    assert f"wwn='0x{hosts.NPIV_LUN}'" in text
    assert resolve(out, scsi)[0] == out
    wrong_parent = STORE.replace(
        f"parent-wwpn='{hosts.HBA_A[1]}'", f"parent-wwpn='{hosts.HBA_B[1]}'"
    )
    wrong_parent = wrong_parent.replace(
        f"parent-wwnn='{hosts.HBA_A[0]}'", f"parent-wwnn='{hosts.HBA_B[0]}'"
    )
    with pytest.raises(RefusedError, match="hangs off scsi_host2"):
        resolve(domain(dev), scsi, wrong_parent)
    with pytest.raises(InputError, match="position on the vHBA"):
        resolve(domain(HOSTDEV.format("vh0")), scsi)


def test_vhba_nodedev_xml_names_the_parent_by_wwn() -> None:
    store = parse_store(parse_bytes(STORE.encode(), "m.xml"))
    mapping = store.get("vh0")
    assert isinstance(mapping, VhbaMapping)
    xml = vhba_nodedev_xml(mapping)
    assert f"<parent wwnn='{hosts.HBA_A[0][2:]}' wwpn='{hosts.HBA_A[1][2:]}'/>" in xml
    assert f"<wwpn>{hosts.VPORT[1][2:]}</wwpn>" in xml


@pytest.mark.parametrize(
    ("devices", "error", "why"),
    [
        (LUN_DISK.format("nope"), UnresolvableError, "no mapping named 'nope'"),
        (LUN_DISK.format("web-only"), RefusedError, "does not allow domain 'scsi-guest'"),
        (LUN_DISK.format("gpu0"), UnresolvableError, "is a pci mapping"),
        (LUN_DISK.format("vh0"), UnresolvableError, "goes on <hostdev type='scsi'>"),
        (LUN_DISK.replace("hr:map='{0}'", "hr:wwn='0x4000c500a1b2c3d4'"), InputError, "NAA type 4"),
        (
            LUN_DISK.replace("hr:map='{0}'", "hr:wwn='0x5000c500ffffffff'"),
            UnresolvableError,
            "no LUN with WWN 0x5000c500ffffffff on this host; could not read 5:0:0:0",
        ),
        (
            LUN_DISK.format("tape0") + "\n" + LUN_DISK.format("tape0"),
            RefusedError,
            "already given to the <disk> on line 9",
        ),
        ("    <disk type='file' device='lun' hr:map='tape0'/>", InputError, "must be type='block'"),
    ],
)
def test_refusals_name_the_element(
    tmp_path: Path, devices: str, error: type[Exception], why: str
) -> None:
    scsi = hosts.inventory(hosts.mixed_tree(tmp_path))
    with pytest.raises(error) as caught:
        resolve(domain(devices), scsi)
    assert why in str(caught.value)
    assert "guest.xml:" in str(caught.value)


def test_without_a_scsi_inventory_lun_references_are_unresolvable() -> None:
    doc = parse_bytes(domain(LUN_DISK.format("db-lun")), "guest.xml")
    store = parse_store(parse_bytes(STORE.encode(), "m.xml"))
    with pytest.raises(UnresolvableError, match="no SCSI inventory"):
        resolve_domain(doc, store, NO_PCI, "hv1")


def test_an_iscsi_protocol_source_is_replaced_by_the_adapter_form(tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.iscsi_tree(tmp_path, 4))
    dev = (
        "    <hostdev mode='subsystem' type='scsi' hr:map='iscsi-lun'>\n"
        "      <source protocol='iscsi' name='iqn.2003-01.org.linux-iscsi.t:sn/0'>\n"
        "        <host name='192.0.2.10' port='3260'/>\n      </source>\n    </hostdev>"
    )
    out, _ = resolve(domain(dev), scsi)
    text = out.decode()
    assert "protocol='iscsi'" not in text and "<host name=" not in text
    assert "<adapter name='scsi_host4'/>" in text
