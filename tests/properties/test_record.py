"""The resolution record under <metadata> (metadata.py, scsiresolve.py): what is written
reads back equal; any record raises only InputError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostdev_resolver.core.metadata import HR_NS, PciRecord, Resolution, UsbRecord, read_resolution
from hostdev_resolver.core.scsiresolve import ScsiRecord
from hostdev_resolver.model.errors import InputError
from hostdev_resolver.model.scsi import FcLunPath, LunIdentity, ScsiAddress
from hostdev_resolver.xml.xmldoc import Node, Splicer, parse_bytes

from .test_store import pci_identities, usb_identities
from .test_values import addresses, wwns
from .xmlgen import xml_text

some_text = st.one_of(st.none(), xml_text)
small = st.integers(0, 2**16)

pci_records = st.builds(
    PciRecord,
    map=xml_text,
    address=addresses,
    identity=pci_identities,
    iommu_group=st.one_of(st.none(), small),
    numa_node=st.one_of(st.none(), small),
    physical_slot=some_text,
    port_path=some_text,
    vfio=st.booleans(),
)
usb_records = st.builds(
    lambda m, ident, busdev, port: UsbRecord(
        m, ident, busdev[0] if busdev else None, busdev[1] if busdev else None, port
    ),
    xml_text,
    usb_identities,
    st.one_of(st.none(), st.tuples(small, small)),
    some_text,
)


@st.composite
def lun_identities(draw: st.DrawFn) -> LunIdentity:
    wwn, t10, serial = draw(st.one_of(st.none(), wwns)), draw(some_text), draw(some_text)
    if wwn is None and t10 is None and serial is None:
        wwn = draw(wwns)
    return LunIdentity(wwn, t10, serial, draw(some_text), draw(some_text))


@st.composite
def scsi_records(draw: st.DrawFn) -> ScsiRecord:
    element = draw(st.sampled_from(["lun", "scsi"]))
    vhba = draw(st.one_of(st.none(), wwns))
    identity = draw(lun_identities() if vhba is None else st.one_of(st.none(), lun_identities()))
    return ScsiRecord(
        element,
        draw(some_text),
        identity,
        draw(xml_text) if element == "lun" else draw(some_text),
        draw(some_text),
        draw(st.builds(ScsiAddress, small, small, small, small))
        if element == "scsi"
        else draw(st.one_of(st.none(), st.builds(ScsiAddress, small, small, small, small))),
        draw(st.one_of(st.none(), st.builds(FcLunPath, wwns, wwns, small))),
        vhba,
    )


resolutions = st.builds(
    Resolution,
    xml_text,
    st.lists(st.one_of(pci_records, usb_records, scsi_records()), max_size=4).map(tuple),
)

_DOMAIN = (
    b"<domain type='kvm' xmlns:hr='" + HR_NS.encode() + b"'>\n  <name>g</name>\n"
    b"  <metadata>\n    <other xmlns='urn:x'/>\n  </metadata>\n  <devices/>\n</domain>\n"
)


def _with_record(node: Node, crlf: bool) -> bytes:
    raw = _DOMAIN.replace(b"\n", b"\r\n") if crlf else _DOMAIN
    doc = parse_bytes(raw, "domain.xml")
    metadata = doc.root.find("metadata")
    assert metadata is not None
    splicer = Splicer(doc)
    splicer.append_child(metadata, node)
    return splicer.apply()


@given(resolutions, st.booleans())
def test_a_written_record_reads_back(resolution: Resolution, crlf: bool) -> None:
    data = _with_record(resolution.to_node(), crlf)
    assert read_resolution(parse_bytes(data, "domain.xml")) == resolution


_values = st.one_of(
    xml_text,
    st.sampled_from(
        [
            "0000:03:00.0",
            "10de",
            "030000",
            "yes",
            "12",
            "2:0:1:3",
            "0x5000c500a1b2c3d4",
            "",
            "00-11-22-ff-ff-33-44-55",
            "scsi_host2:0:0:0",
            "-1",
            "1.5",
        ]
    ),
)
_names = st.sampled_from(
    [
        "map",
        "address",
        "vendor",
        "device",
        "product",
        "subsystem-vendor",
        "subsystem-device",
        "class",
        "serial",
        "iommu-group",
        "numa-node",
        "bus",
        "device",
        "vfio",
        "wwn",
        "t10-id",
        "dev",
        "initiator",
        "target",
        "lun",
        "vhba",
        "multipath",
        "node",
    ]
)


@given(
    st.dictionaries(_names, _values, max_size=3),
    st.lists(
        st.tuples(
            st.sampled_from(["pci", "usb", "lun", "scsi", "other"]),
            st.dictionaries(_names, _values, max_size=8),
        ),
        max_size=3,
    ),
)
def test_a_record_raises_only_input_error(
    attrs: dict[str, str], children: list[tuple[str, dict[str, str]]]
) -> None:
    node = Node("hr:resolution", {"xmlns:hr": HR_NS, **attrs})
    node.children = [Node(f"hr:{tag}", child) for tag, child in children]
    data = _with_record(node, crlf=False)
    try:
        resolution = read_resolution(parse_bytes(data, "domain.xml"))
    except InputError as exc:
        assert exc.where.source == "domain.xml"
        return
    assert resolution is not None
    assert read_resolution(parse_bytes(_with_record(resolution.to_node(), False), "d")) == (
        resolution
    )


@given(
    st.sampled_from(
        [
            ("pci", "iommu-group", "{}"),
            ("usb", "bus", "{}"),
            ("scsi", "address", "{}:0:0:0"),
            ("scsi", "lun", "{}"),
        ]
    ),
    st.integers(4301, 6000),
)
def test_a_huge_number_in_a_record_is_an_input_error(
    where: tuple[str, str, str], digits: int
) -> None:
    kind, attribute, form = where
    base = {
        "pci": {"map": "g", "address": "0000:03:00.0", "vendor": "10de", "device": "20b5"},
        "usb": {"map": "k", "vendor": "1050", "product": "0407", "device": "4"},
        "scsi": {
            "address": "2:0:1:3",
            "wwn": "0x5000c500a1b2c3d4",
            "initiator": "0x5000c500a1b2c3d4",
            "target": "0x5000c500a1b2c3d4",
            "lun": "1",
        },
    }[kind]
    child = Node(f"hr:{kind}", {**base, attribute: form.format("9" * digits)})
    data = _with_record(Node("hr:resolution", {"xmlns:hr": HR_NS, "node": "hv1"}, [child]), False)
    with pytest.raises(InputError):
        read_resolution(parse_bytes(data, "domain.xml"))
