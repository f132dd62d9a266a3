"""The device kinds behind one interface (core/kinds): the registry reads every record
through its kind, and asks the kinds what they need."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.core import kinds
from hostdev_resolver.core.metadata import read_resolution
from hostdev_resolver.core.resolution import wants_scsi
from hostdev_resolver.model.errors import InputError
from hostdev_resolver.xml.xmldoc import parse_bytes

GOLDEN = Path(__file__).parent / "golden"
HR = "http://hostdev-resolver.org/xmlns/domain/1"


def _domain(records: str) -> bytes:
    return (
        f"<domain><name>g</name><metadata><hr:resolution xmlns:hr='{HR}' node='n'>"
        f"{records}</hr:resolution></metadata><devices/></domain>"
    ).encode()


def test_every_record_is_read_by_its_kind() -> None:
    doc = parse_bytes((GOLDEN / "verify-vf-and-mdev-ok" / "domain.xml").read_bytes(), "d")
    resolution = read_resolution(doc)
    assert resolution is not None
    assert [r.kind for r in resolution.records] == ["vf", "vf", "mdev", "mdev"]
    assert [kinds.of_record(r).name for r in resolution.records] == ["vf", "vf", "mdev", "mdev"]


def test_a_mapping_kind_that_is_no_record_is_an_unknown_record() -> None:
    """`vhba` names the SCSI kind as a store mapping, never as a record."""
    assert kinds.kind("vhba").name == "scsi"
    doc = parse_bytes(_domain("<hr:vhba map='v'/>"), "d")
    with pytest.raises(InputError, match="unknown record hr:vhba in hr:resolution"):
        read_resolution(doc)


def test_an_mdev_guest_needs_no_scsi_inventory() -> None:
    """Only LUN/SCSI records make resolve and validate scan the node's SCSI devices (the
    hook already read them for LUN records only); an mdev record used to count too."""
    doc = parse_bytes((GOLDEN / "verify-vf-and-mdev-ok" / "domain.xml").read_bytes(), "d")
    assert not wants_scsi(doc)
    lun = "<hr:lun map='l' wwn='0x5000c500a1b2c3d4' dev='/dev/disk/by-id/wwn-0x5000c500a1b2c3d4'/>"
    assert wants_scsi(parse_bytes(_domain(lun), "d"))
