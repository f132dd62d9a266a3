"""schemas/domain.xsd describes every hr:resolution record the resolver writes.

The records come from the resolver itself (the golden resolve cases, and LUN, SCSI,
FC-path and vHBA resolutions on simulated SCSI hosts), so the schema the package ships
cannot drift from what is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from hostdev_resolver.core.metadata import HR_NS
from tests.scsi import hosts
from tests.scsi.test_resolve import HOSTDEV, LUN_DISK, domain, resolve

REPO = Path(__file__).resolve().parents[1]
SCHEMA = xmlschema.XMLSchema(REPO / "schemas" / "domain.xsd")
GOLDEN = sorted(
    p
    for p in (REPO / "tests" / "golden").glob("*/expected.out")
    if b"hr:resolution" in p.read_bytes()
)


def _resolutions(data: bytes) -> list[etree._Element]:
    found = etree.fromstring(data).findall(f"metadata/{{{HR_NS}}}resolution")
    assert len(found) == 1
    return found


def test_the_schema_names_the_namespace() -> None:
    assert SCHEMA.target_namespace == HR_NS


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.parent.name)
def test_golden_resolutions_validate(path: Path) -> None:
    assert len(GOLDEN) >= 5
    for record in _resolutions(path.read_bytes()):
        SCHEMA.validate(record)


def test_scsi_resolutions_validate(tmp_path: Path) -> None:
    fc = hosts.inventory(hosts.fc_tree(tmp_path / "fc", npiv=True))
    iscsi = hosts.inventory(hosts.iscsi_tree(tmp_path / "iscsi", 4))
    vhba = (
        "    <hostdev mode='subsystem' type='scsi' hr:map='vh0'>\n"
        "      <source>\n        <address bus='0' target='0' unit='2'/>\n      </source>\n"
        "    </hostdev>"
    )
    cases = [
        (LUN_DISK.format("iscsi-lun"), iscsi),
        ("    <hostdev mode='subsystem' type='scsi' hr:map='iscsi-lun'/>", iscsi),
        (HOSTDEV.format("path-b"), fc),
        (vhba, fc),
    ]
    kinds = set()
    for devices, inventory in cases:
        out, _ = resolve(domain(devices), inventory)
        for resolution in _resolutions(out):
            SCHEMA.validate(resolution)
            kinds |= {etree.QName(child).localname for child in resolution}
    assert kinds == {"lun", "scsi"}


def test_a_bad_record_is_refused() -> None:
    good = next(iter(_resolutions(GOLDEN[0].read_bytes())))
    record = good[0]
    record.set("address" if record.get("address") else "vendor", "zz")
    assert not SCHEMA.is_valid(good)
