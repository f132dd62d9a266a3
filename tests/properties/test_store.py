"""The mapping store: what the editor writes, the parser reads back unchanged; removing
a mapping keeps every other byte; any document raises only InputError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostdev_resolver.model.errors import InputError
from hostdev_resolver.model.identity import PciIdentity, UsbIdentity, format_dsn
from hostdev_resolver.model.scsi import FcLunPath
from hostdev_resolver.xml.store import (
    EMPTY,
    NS,
    Mapping,
    PciEntry,
    PciMapping,
    UsbEntry,
    UsbMapping,
    VhbaMapping,
    WwnMapping,
    parse_store,
)
from hostdev_resolver.xml.storeedit import StoreEditor
from hostdev_resolver.xml.xmldoc import parse_bytes

from .test_values import addresses, wwns
from .xmlgen import documents, xml_text

names = xml_text
some_text = st.one_of(st.none(), xml_text)
id16 = st.integers(0, 0xFFFF)

pci_identities = st.builds(
    lambda v, d, sub, klass, serial: PciIdentity(
        v, d, sub[0] if sub else None, sub[1] if sub else None, klass, serial
    ),
    id16,
    id16,
    st.one_of(st.none(), st.tuples(id16, id16)),
    st.one_of(st.none(), st.integers(0, 0xFFFFFF)),
    st.one_of(st.none(), st.integers(0, 2**64 - 1).map(format_dsn)),
)
usb_identities = st.builds(UsbIdentity, id16, id16, some_text)


def _pci_entries(node: str) -> st.SearchStrategy[PciEntry]:
    return st.builds(
        PciEntry,
        node=st.just(node),
        address=addresses,
        identity=pci_identities,
        iommu_group=st.one_of(st.none(), st.integers(0, 10**6)),
        numa_node=st.one_of(st.none(), st.integers(0, 64)),
        physical_slot=some_text,
        port_path=some_text,
    )


_nodes = st.lists(names, min_size=1, max_size=3, unique=True)


@st.composite
def pci_mappings(draw: st.DrawFn, name: str) -> PciMapping:
    entries = [draw(_pci_entries(n)) for n in draw(_nodes)]
    # One entry per (node, address): a second one would replace the first (map add).
    return PciMapping(
        name,
        draw(st.one_of(st.none(), xml_text.filter(bool))),
        tuple(draw(st.lists(xml_text, max_size=2, unique=True))),
        None,
        tuple(entries),
        vfio := draw(st.sampled_from(("no", "yes", "boot"))) != "no",
        vfio_boot=vfio and draw(st.booleans()),
    )


@st.composite
def usb_mappings(draw: st.DrawFn, name: str) -> UsbMapping:
    entries = [UsbEntry(n, draw(usb_identities), draw(some_text)) for n in draw(_nodes)]
    return UsbMapping(
        name,
        draw(st.one_of(st.none(), xml_text.filter(bool))),
        tuple(draw(st.lists(xml_text, max_size=2, unique=True))),
        None,
        tuple(entries),
    )


@st.composite
def wwn_mappings(draw: st.DrawFn, name: str) -> WwnMapping:
    kind = draw(st.sampled_from(["lun", "scsi"]))
    fc = None
    if kind == "scsi" and draw(st.booleans()):
        fc = FcLunPath(draw(wwns), draw(wwns), draw(st.integers(0, 2**14)))
    wwn = draw(st.one_of(st.none(), wwns))
    t10 = draw(some_text)
    serial = draw(some_text)
    if fc is None and wwn is None and t10 is None and serial is None:
        wwn = draw(wwns)
    return WwnMapping(
        name,
        draw(st.one_of(st.none(), xml_text.filter(bool))),
        (),
        None,
        wwn,
        kind,
        t10,
        serial,
        draw(some_text),
        draw(some_text),
        fc,
    )


@st.composite
def vhba_mappings(draw: st.DrawFn, name: str) -> VhbaMapping:
    by_port = draw(st.booleans())
    return VhbaMapping(
        name,
        draw(st.one_of(st.none(), xml_text.filter(bool))),
        (),
        None,
        draw(wwns),
        draw(wwns),
        draw(wwns) if by_port else None,
        draw(wwns) if by_port else None,
        None if by_port else draw(wwns),
    )


@st.composite
def stores(draw: st.DrawFn) -> dict[str, Mapping]:
    out: dict[str, Mapping] = {}
    for name in draw(st.lists(names, max_size=4, unique=True)):
        kind = draw(st.sampled_from([pci_mappings, usb_mappings, wwn_mappings, vhba_mappings]))
        out[name] = draw(kind(name))
    return out


def _editor(data: bytes) -> StoreEditor:
    return StoreEditor(parse_bytes(data, "mappings.xml"))


def _write(mappings: dict[str, Mapping], crlf: bool) -> bytes:
    """The store `map add` makes, one command (parse, edit, write) per entry."""
    data = EMPTY.replace(b"\n", b"\r\n") if crlf else EMPTY
    for m in mappings.values():
        if isinstance(m, PciMapping | UsbMapping):
            extra = None
            if isinstance(m, PciMapping) and m.vfio:
                extra = {"vfio": "boot" if m.vfio_boot else "yes"}
            for i, entry in enumerate(m.entries):
                editor = _editor(data)
                editor.add_entry(
                    m.kind,
                    m.name,
                    entry,
                    description=m.description if i == 0 else None,
                    allow=m.allow if i == 0 else (),
                    extra=extra,
                )
                data = editor.result()
        else:
            editor = _editor(data)
            editor.add_entry(
                m.kind, m.name, None, description=m.description, extra=m.store_attributes()
            )
            data = editor.result()
    return data


@given(stores(), st.booleans())
def test_what_is_written_reads_back(mappings: dict[str, Mapping], crlf: bool) -> None:
    data = _write(mappings, crlf)
    assert parse_store(parse_bytes(data, "mappings.xml")).mappings == mappings
    if crlf:
        assert b"\n" not in data.replace(b"\r\n", b"")


@given(stores(), st.data())
def test_remove_keeps_every_other_mapping_and_byte(
    mappings: dict[str, Mapping], data: st.DataObject
) -> None:
    if not mappings:
        return
    raw = _write(mappings, data.draw(st.booleans()))
    name = data.draw(st.sampled_from(sorted(mappings)))
    doc = parse_bytes(raw, "mappings.xml")
    el = next(e for e in doc.root.children if e.get("name") == name)
    editor = _editor(raw)
    assert editor.remove(name) == 1
    out = editor.result()
    # Only the element and the blank run before it on its line go.
    line_start = raw.rfind(b"\n", 0, el.start)
    assert out == raw[:line_start] + raw[el.end :] or out == raw[: el.start] + raw[el.end :]
    left = parse_store(parse_bytes(out, "mappings.xml")).mappings
    assert left == {k: v for k, v in mappings.items() if k != name}


# -- malformed stores ------------------------------------------------------------

_values = st.one_of(
    xml_text,
    st.sampled_from(
        [
            "0000:03:00.0",
            "10de",
            "0x10de",
            "030000",
            "yes",
            "no",
            "0x5000c500a1b2c3d4",
            "eui.0123456789abcdef",
            "12",
            "-1",
            "0x1f",
            "00-11-22-ff-ff-33-44-55",
            "",
        ]
    ),
)
_attr_names = st.sampled_from(
    [
        "name",
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
        "slot",
        "port-path",
        "vfio",
        "wwn",
        "t10-id",
        "initiator",
        "target",
        "lun",
        "wwnn",
        "wwpn",
        "parent-wwnn",
        "parent-wwpn",
        "parent-fabric",
        "domain",
        "description",
    ]
)


def _q(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


@st.composite
def _store_element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(["pci", "usb", "lun", "scsi", "vhba", "node", "allow", "other"]))
    attrs = draw(st.dictionaries(_attr_names, _values, max_size=6))
    text = "".join(f" {k}='{_q(v)}'" for k, v in attrs.items())
    prefix = draw(st.sampled_from(["", "", "", "o:"]))
    children = draw(st.lists(_store_element(depth + 1), max_size=3)) if depth < 2 else []
    if not children:
        return f"<{prefix}{tag}{text}/>"
    return f"<{prefix}{tag}{text}>{''.join(children)}</{prefix}{tag}>"


@st.composite
def store_texts(draw: st.DrawFn) -> bytes:
    root_ns = draw(st.sampled_from([NS, NS, "urn:other"]))
    children = "".join(draw(st.lists(_store_element(), max_size=4)))
    return f"<mappings xmlns='{root_ns}' xmlns:o='urn:o'>{children}</mappings>".encode()


@given(st.one_of(store_texts(), documents().map(lambda c: c[0])))
def test_parser_raises_only_input_error(data: bytes) -> None:
    try:
        store = parse_store(parse_bytes(data, "mappings.xml"))
    except InputError as exc:
        assert exc.where.source == "mappings.xml"
        return
    for mapping in store.mappings.values():
        mapping.allows("some-domain")


@given(st.sampled_from(["iommu-group", "numa-node"]), st.integers(4301, 6000))
def test_a_huge_number_is_an_input_error(attribute: str, digits: int) -> None:
    """Document.uint on thousands of digits (the resolution record's bug, in the store)."""
    data = (
        f"<mappings xmlns='{NS}'><pci name='g'><node name='hv1' address='0000:03:00.0' "
        f"vendor='10de' device='20b5' {attribute}='{'9' * digits}'/></pci></mappings>"
    ).encode()
    with pytest.raises(InputError):
        parse_store(parse_bytes(data, "mappings.xml"))
