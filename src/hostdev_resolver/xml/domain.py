"""Reading a libvirt domain document: its name, its devices, and the host sources
libvirt understands (`<hostdev>`/`<interface type='hostdev'>` PCI addresses, USB
vendor/product/bus/device).

Resolution, verification, the vfio binding plan, claims and the wrapper all read
domains through these, so a device element means the same to each of them.
"""

from __future__ import annotations

from ..model.errors import InputError
from ..model.pciaddress import PciAddress, parse_xml_uint
from .xmldoc import Document, Element


def domain_name(doc: Document) -> str:
    root = doc.root
    if root.ns is not None or root.tag != "domain":
        raise InputError(
            f"not a libvirt domain: root element is <{root.tag}>",
            where=doc.where(root),
            fix="give a domain XML file (virsh dumpxml output or a definition)",
        )
    name_el = root.find("name")
    if name_el is None or not name_el.text.strip():
        raise InputError(
            "the domain has no <name>", where=doc.where(root), fix="add <name>…</name>"
        )
    return name_el.text.strip()


def devices_of(doc: Document) -> list[Element]:
    devices = doc.root.find("devices")
    return devices.children if devices is not None else []


def is_pci_source_element(el: Element) -> bool:
    """A <hostdev type='pci'>, or an <interface type='hostdev'> (a NIC VF given with its
    MAC/VLAN): both name a host PCI function by <source><address/>."""
    if el.tag == "interface":
        return el.get("type") == "hostdev"
    return el.tag == "hostdev" and el.get("type") == "pci"


def pci_source_address(doc: Document, hostdev: Element) -> PciAddress | None:
    source = hostdev.find("source")
    address = source.find("address") if source is not None else None
    if address is None:
        return None
    return PciAddress.from_xml(address.attrs, doc.where(address))


def usb_source(doc: Document, hostdev: Element) -> tuple[int, int, int | None, int | None] | None:
    """(vendor, product, bus, device) of a USB hostdev source, if it names one."""
    source = hostdev.find("source")
    if source is None:
        return None
    vendor = source.find("vendor")
    product = source.find("product")
    address = source.find("address")
    if vendor is None or product is None:
        return None
    where = doc.where(source)
    bus = dev = None
    if address is not None and "bus" in address.attrs and "device" in address.attrs:
        bus = parse_xml_uint(address.attrs["bus"], "bus", where)
        dev = parse_xml_uint(address.attrs["device"], "device", where)
    return (
        parse_xml_uint(vendor.attrs.get("id", ""), "vendor id", where),
        parse_xml_uint(product.attrs.get("id", ""), "product id", where),
        bus,
        dev,
    )
