"""lun, scsi and vhba mappings: reading, schema, refusals, capture from the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.core.kinds.scsi import capture_lun, capture_vhba
from hostdev_resolver.host.storefile import StoreFile
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.model.errors import AmbiguousError, InputError, UnresolvableError
from hostdev_resolver.model.scsi import FcLunPath
from hostdev_resolver.model.wwn import Wwn
from hostdev_resolver.xml.store import VhbaMapping, WwnMapping
from tests.scsi import hosts
from tests.support.scsitree import naa, page83

NS = "http://hostdev-resolver.org/xmlns/store/1"


def _store(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mappings.xml"
    path.write_text(f"<mappings xmlns='{NS}'>\n{body}\n</mappings>\n")
    return path


def test_every_reference_form_reads_and_validates(tmp_path: Path) -> None:
    path = _store(
        tmp_path,
        f"""  <lun name='db-lun' wwn='0x{hosts.FC_LUN}' description='Oracle data'>
    <allow domain='db-*'/>
  </lun>
  <lun name='stick' t10-id='KingstonDataTraveler 3.0 60A44C413E4EF0A0B9B4'/>
  <lun name='old-disk' serial='ZC1ABCDE' vendor='SEAGATE' model='ST4000NM0025'/>
  <lun name='nvme-ish' wwn='eui.0123456789abcdef'/>
  <scsi name='tape0' wwn='0x{hosts.SAS_LUN}'/>
  <scsi name='fc-path' initiator='{hosts.HBA_A[1]}' target='{hosts.TARGET_A}' lun='1'/>
  <vhba name='vh0' wwnn='{hosts.VPORT[0]}' wwpn='{hosts.VPORT[1]}'
        parent-wwnn='{hosts.HBA_A[0]}' parent-wwpn='{hosts.HBA_A[1]}'/>
  <vhba name='vh1' wwnn='{hosts.VPORT[0]}' wwpn='{hosts.VPORT[1]}' parent-fabric='{hosts.FABRIC}'/>""",
    )
    store = load_store(str(path))
    db = store.get("db-lun")
    assert isinstance(db, WwnMapping) and db.kind == "lun"
    assert db.wwn == Wwn.parse(hosts.FC_LUN) and db.allows("db-1") and not db.allows("web")
    stick = store.get("stick")
    assert isinstance(stick, WwnMapping) and stick.identity is not None
    assert stick.identity.describe() == "T10 ID 'KingstonDataTraveler 3.0 60A44C413E4EF0A0B9B4'"
    fc = store.get("fc-path")
    assert isinstance(fc, WwnMapping) and fc.identity is None
    assert fc.fc_path == FcLunPath(Wwn.parse(hosts.HBA_A[1]), Wwn.parse(hosts.TARGET_A), 1)
    vh1 = store.get("vh1")
    assert isinstance(vh1, VhbaMapping) and vh1.kind == "vhba"
    assert vh1.parent_fabric == Wwn.parse(hosts.FABRIC) and vh1.parent_wwpn is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("<lun name='a' wwn='0x4000c500a1b2c3d4'/>", "NAA type 4"),
        ("<lun name='a'/>", "names no LUN"),
        (
            "<lun name='a' initiator='0x2100000000000001' target='0x5000000000000001' lun='1'/>",
            "on <scsi> only",
        ),
        ("<scsi name='a' initiator='0x2100000000000001' lun='1'/>", "go together"),
        (
            "<vhba name='v' wwnn='0x2000000000000001' wwpn='0x2100000000000001'/>",
            "needs its parent",
        ),
        (
            "<vhba name='v' wwnn='0x2000000000000001' wwpn='0x2100000000000001' "
            "parent-wwnn='0x2000000000000002'/>",
            "needs its parent",
        ),
        (
            "<vhba name='v' wwnn='0x2000000000000001' wwpn='0x2100000000000001' "
            "parent-wwnn='0x2000000000000002' parent-wwpn='0x2100000000000002' "
            "parent-fabric='0x1000000000000003'/>",
            "needs its parent",
        ),
    ],
)
def test_bad_mappings_are_refused_naming_the_element(tmp_path: Path, body: str, why: str) -> None:
    with pytest.raises(InputError) as caught:
        load_store(str(_store(tmp_path, "  " + body)), schema=False)
    assert why in caught.value.message
    assert "mappings.xml:2" in caught.value.message


def test_schema_refuses_a_non_canonical_wwn(tmp_path: Path) -> None:
    # the reader accepts any spelling from users; the file keeps the canonical one
    path = _store(tmp_path, "  <lun name='a' wwn='naa.5000c500a1b2c3d4'/>")
    with pytest.raises(InputError, match=r"mappings.xml:2: store does not match schemas/store.xsd"):
        load_store(str(path))


def test_capture_stores_the_full_wwn_from_the_host(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.fc_tree(tmp_path))
    mapping = capture_lun(inv, "lun", "db-lun", wwn="0x600a0980383030534f2b4a6c61357a41")
    assert mapping.wwn == Wwn.parse(hosts.FC_LUN)
    assert mapping.store_attributes() == {"wwn": f"0x{hosts.FC_LUN}"}
    by_device = capture_lun(inv, "lun", "db-lun", device="/dev/sdc")
    assert by_device.wwn == mapping.wwn


def test_capture_of_a_lun_without_wwn_keeps_its_t10_id(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.mixed_tree(tmp_path))
    mapping = capture_lun(inv, "lun", "stick", device="6:0:0:0")
    assert mapping.store_attributes() == {"t10-id": "KingstonDataTraveler 3.0 60A44C413E4EF0A0B9B4"}


def test_capture_of_an_fc_path_keeps_path_and_wwn(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.fc_tree(tmp_path))
    mapping = capture_lun(
        inv, "scsi", "fc0", initiator=hosts.HBA_B[1], target=hosts.TARGET_B, lun=1
    )
    assert mapping.store_attributes() == {
        "wwn": f"0x{hosts.FC_LUN}",
        "initiator": hosts.HBA_B[1],
        "target": hosts.TARGET_B,
        "lun": "1",
    }


def test_capture_refusals(tmp_path: Path) -> None:
    tree = hosts.fc_tree(tmp_path)
    tree.add_host(8)
    other = "600a0980383030534f2b4a6c61357a42"
    tree.add_device("8:0:0:0", pg83=page83(naa(other)), block="sdx")
    inv = hosts.inventory(tree)
    with pytest.raises(InputError, match="exactly one of"):
        capture_lun(inv, "lun", "x", wwn=hosts.SAS_LUN, device="sdb")
    with pytest.raises(InputError, match="exactly one of"):
        capture_lun(inv, "scsi", "x", initiator=hosts.HBA_A[1])
    with pytest.raises(InputError, match="NAA type 4"):
        capture_lun(inv, "lun", "x", wwn="0x4000c500a1b2c3d4")
    with pytest.raises(UnresolvableError, match="no LUN with WWN 0x5000c500a1b2c3d4"):
        capture_lun(inv, "lun", "x", wwn=hosts.SAS_LUN)
    with pytest.raises(AmbiguousError, match="fits 2 LUNs"):
        capture_lun(inv, "lun", "x", wwn="0x600a098038303053")
    with pytest.raises(UnresolvableError, match="not visible from scsi_host2"):
        capture_lun(inv, "scsi", "x", initiator=hosts.HBA_A[1], target=hosts.TARGET_B, lun=1)
    with pytest.raises(UnresolvableError, match="no SCSI device 'sdz'"):
        capture_lun(inv, "lun", "x", device="sdz")


def test_capture_vhba_reads_the_parent_from_the_host(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.fc_tree(tmp_path, npiv=True))
    mapping = capture_vhba(inv, "vh0", wwnn=hosts.VPORT[0], wwpn=hosts.VPORT[1])
    assert mapping.store_attributes() == {
        "wwnn": hosts.VPORT[0],
        "wwpn": hosts.VPORT[1],
        "parent-wwnn": hosts.HBA_A[0],
        "parent-wwpn": hosts.HBA_A[1],
    }
    absent = "0x2101001b32a9da4f"
    with pytest.raises(UnresolvableError, match="--parent-fabric"):
        capture_vhba(inv, "vh1", wwnn=hosts.VPORT[0], wwpn=absent)
    made = capture_vhba(inv, "vh1", wwnn=hosts.VPORT[0], wwpn=absent, parent_fabric=hosts.FABRIC)
    assert made.parent_fabric == Wwn.parse(hosts.FABRIC)
    with pytest.raises(InputError, match="--parent-wwnn and --parent-wwpn"):
        capture_vhba(inv, "v", wwnn=hosts.VPORT[0], wwpn=absent, parent_wwnn=hosts.HBA_A[0])


def test_map_add_writes_captured_mappings_that_read_back(tmp_path: Path) -> None:
    inv = hosts.inventory(hosts.fc_tree(tmp_path / "h", npiv=True))
    path = tmp_path / "store" / "mappings.xml"
    captured = [
        capture_lun(inv, "lun", "db-lun", wwn=hosts.FC_LUN, description="data"),
        capture_lun(inv, "scsi", "fc0", initiator=hosts.HBA_A[1], target=hosts.TARGET_A, lun=1),
        capture_vhba(inv, "vh0", wwnn=hosts.VPORT[0], wwpn=hosts.VPORT[1], allow=("db-*",)),
    ]
    for mapping in captured:
        with StoreFile(str(path)).edit() as editor:
            editor.add_entry(
                mapping.kind,
                mapping.name,
                None,
                description=mapping.description,
                allow=mapping.allow,
                extra=mapping.store_attributes(),
            )
    store = load_store(str(path))
    assert [store.get(m.name) for m in captured] == captured
