"""Resolution (SPEC §3): the output carries no reference, reads back as the record
says, and resolving it again changes nothing, whatever the document looks like
around the references (comments, quoting, prefixes, CRLF, existing <source>s)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hostdev_resolver.core.metadata import HR_MAP, HR_NS, PciRecord, UsbRecord, read_resolution
from hostdev_resolver.core.resolution import resolve_domain
from hostdev_resolver.host.snapshot import HostSnapshot
from hostdev_resolver.model.identity import PciIdentity, UsbIdentity, format_dsn
from hostdev_resolver.model.inventory import PciDevice, UsbDevice
from hostdev_resolver.model.pciaddress import PciAddress
from hostdev_resolver.xml.store import PciEntry, PciMapping, Store, UsbEntry, UsbMapping
from hostdev_resolver.xml.xmldoc import escape_attr, escape_text, parse_bytes

from .test_values import addresses
from .xmlgen import xml_text

NODE = "hv1"


@st.composite
def hosts(draw: st.DrawFn) -> tuple[HostSnapshot, Store]:
    """A host and a store naming some of its devices. Every PCI device has a serial, so
    an entry whose address is stale is followed to the device (with a warning)."""
    n_pci = draw(st.integers(0, 3))
    pci_addrs = draw(st.lists(addresses, min_size=n_pci, max_size=n_pci, unique=True))
    serials = draw(st.lists(st.integers(0, 2**64 - 1), min_size=n_pci, max_size=n_pci, unique=True))
    pci = []
    for address, serial in zip(pci_addrs, serials, strict=True):
        ident = PciIdentity(
            draw(st.integers(0, 0xFFFF)),
            draw(st.integers(0, 0xFFFF)),
            class_code=draw(st.sampled_from([0x030000, 0x020000, 0x010802])),
            serial=format_dsn(serial),
        )
        pci.append(PciDevice(address, ident, iommu_group=draw(st.integers(0, 99)), numa_node=0))
    n_usb = draw(st.integers(0, 3))
    usb = []
    for i in range(n_usb):
        # Often two keys of one model: then the source pins bus/device.
        vendor, product = draw(st.sampled_from([(0x1050, 0x0407), (0x0781, 0x5581)]))
        usb.append(
            UsbDevice(1, i + 2, UsbIdentity(vendor, product, f"S{i}"), port_path=f"1-{i + 1}")
        )
    names = draw(st.lists(xml_text, min_size=n_pci + n_usb, max_size=n_pci + n_usb, unique=True))
    mappings: dict[str, PciMapping | UsbMapping] = {}
    for name, dev in zip(names, pci, strict=False):
        stale = draw(st.booleans())
        address = PciAddress(0x7777, 0, 0, 0) if stale else dev.address
        entry = PciEntry(NODE, address, dev.identity, dev.iommu_group, dev.numa_node)
        mappings[name] = PciMapping(name, None, (), None, (entry,), draw(st.booleans()))
    for name, udev in zip(names[n_pci:], usb, strict=True):
        mappings[name] = UsbMapping(name, None, (), None, (UsbEntry(NODE, udev.identity),))
    return HostSnapshot(NODE, tuple(pci), tuple(usb)), Store("mappings.xml", dict(mappings))


_FILLER = [
    "<!-- a comment -->",
    "<interface type='network'>\n  <source network='default'/>\n</interface>",
    '<disk type="file" device="disk"><source file="/a.img"/><target dev="vda"/></disk>',
    "<controller type='usb' index='0'/>",
]


@st.composite
def domains(draw: st.DrawFn, store: Store) -> bytes:
    prefix = draw(st.sampled_from(["hr", "r", "hostdev"]))
    q = draw(st.sampled_from(["'", '"']))
    items = []
    for name, mapping in store.mappings.items():
        value = escape_attr(name)
        if q == '"':
            value = value.replace('"', "&quot;")
        ref = f"{prefix}:map={q}{value}{q}"
        kind = "pci" if isinstance(mapping, PciMapping) else "usb"
        inner = draw(
            st.sampled_from(
                ["", "<rom bar='off'/>", "<boot order='2'/>", "<alias name='ua-x'/>"]
                if kind == "pci"
                else ["", "<boot order='3'/>"]
            )
        )
        managed = draw(st.sampled_from(["", " managed='yes'"]))
        open_tag = f"<hostdev mode='subsystem' type='{kind}'{managed} {ref}"
        items.append(f"{open_tag}/>" if not inner else f"{open_tag}>\n  {inner}\n</hostdev>")
    items += draw(st.lists(st.sampled_from(_FILLER), max_size=2))
    items = draw(st.permutations(items))
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    indent = draw(st.sampled_from(["  ", "    ", "\t"]))
    devices = "".join(f"{nl}{indent}{indent}{i.replace(chr(10), nl + indent * 2)}" for i in items)
    head = draw(
        st.sampled_from(
            [
                "",
                f"{nl}{indent}<metadata/>",
                f"{nl}{indent}<metadata>{nl}{indent}{indent}<x:y xmlns:x='urn:x'/>{nl}{indent}</metadata>",
            ]
        )
    )
    title = escape_text(draw(xml_text).replace("\r", "").replace("\n", " "))
    text = (
        f"<domain type='kvm' xmlns:{prefix}='{HR_NS}'>{nl}{indent}<name>guest</name>"
        f"{nl}{indent}<title>{title}</title>{head}{nl}{indent}<memory>1024</memory>"
        f"{nl}{indent}<devices>{devices}{nl}{indent}</devices>{nl}</domain>{nl}"
    )
    return text.encode()


@given(st.data())
def test_resolving_twice_changes_nothing(data: st.DataObject) -> None:
    inventory, store = data.draw(hosts())
    raw = data.draw(domains(store))
    doc = parse_bytes(raw, "domain.xml")
    first = resolve_domain(doc, store, inventory, NODE)
    out = parse_bytes(first.data, "out.xml")
    assert not any(HR_MAP in el.attrs for el in out.root.iter())
    resolution = read_resolution(out)
    if not store.mappings:
        assert first.data == raw and resolution is None
        return
    assert resolution == first.resolution and resolution is not None
    assert sorted(r.map for r in resolution.records) == sorted(store.mappings)
    for record in resolution.records:
        assert isinstance(record, PciRecord | UsbRecord)
        if isinstance(record, PciRecord):
            assert inventory.pci_device(record.address) is not None
    if b"\r\n" in raw:
        assert b"\n" not in first.data.replace(b"\r\n", b"")
    again = resolve_domain(out, store, inventory, NODE)
    assert again.data == first.data
    assert again.resolution == first.resolution
