"""Host inventory through libvirt node devices (`--connect URI`, `hostdev-virsh -c URI`).

A remote node is inspected through its libvirtd (`qemu+ssh://hv2/system`) without a
login on it: `virConnectListAllNodeDevices` + `virNodeDeviceGetXMLDesc`. The XML is
parsed here into the same `PciDevice` / `UsbDevice` records the sysfs source makes,
so a store captured on one source is checked on the other.

What libvirt's node-device XML does not carry (checked against libvirt 9.0,
src/conf/node_device_conf.c, `virNodeDeviceCapPCIDefFormat`):

- PCI subsystem vendor/device IDs: not formatted at all;
- the PCIe Device Serial Number (our `PciIdentity.serial`): not formatted; the VPD
  serial number libvirt shows (`<capability type='vpd'>`, libvirt >= 7.9) is a
  different number (the board's, from VPD, not the DSN from config space), kept
  apart in `vpd_serial()` and never compared with a DSN;
- the physical slot name (`/sys/bus/pci/slots`);
- the USB serial string;
- the bound driver, under the test driver (it fills `<driver>` from sysfs only).

The port path (`pci0000:40/01.1/00.0`, USB `1-4`) comes from `<path>`, the device's
sysfs path, which libvirt always writes for real devices.

A field the source cannot see is *not observed*: `unobserved_pci` / `unobserved_usb`
name them, and `observable_pci` / `observable_usb` project an expectation onto what
the source can show before comparing. A field the source can see but which is
absent still counts as a difference, so nothing matches by accident. The full
identity is verified on the node itself, from its sysfs, by the hook at every start.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..model.errors import HostAccessError, InputError, Location
from ..model.identity import PciIdentity, UsbIdentity, parse_class, parse_id16
from ..model.inventory import IndexedInventory, PciDevice, UsbDevice
from ..model.pciaddress import PciAddress, decimal_digits, parse_xml_uint
from ..model.records import field, frozen
from .sysfs import port_path_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..model.scsi import FcHost
    from ..xml.xmldoc import Document

# Fields of PciExpectation/PciIdentity (and UsbExpectation/UsbIdentity) libvirt never shows.
PCI_NOT_IN_NODEDEV = frozenset({"subsystem", "serial", "physical_slot"})
USB_NOT_IN_NODEDEV = frozenset({"serial"})


@frozen
class PcieLink:
    """`<pci-express><link validity='cap'|'sta' speed= width=/>`: what the slot can and does run."""

    max_speed: str | None = None  # GT/s as libvirt writes it: "2.5", "5", "8", "16", "32"
    max_width: int | None = None
    speed: str | None = None
    width: int | None = None


@frozen
class NodedevInventory(IndexedInventory):
    """One libvirt connection's node devices, read once: the inventory value
    (`IndexedInventory`, its IOMMU groups as libvirt lists them), and what else libvirt
    shows of the devices (FC hosts, VPD serial numbers, PCIe links)."""

    unobserved_pci: frozenset[str] = PCI_NOT_IN_NODEDEV
    unobserved_usb: frozenset[str] = USB_NOT_IN_NODEDEV
    uri: str = ""
    fc_hosts: tuple[FcHost, ...] = ()
    vpd_serials: dict[PciAddress, str] = field(default_factory=dict, compare=False)
    links: dict[PciAddress, PcieLink] = field(default_factory=dict, compare=False)

    def vpd_serial(self, address: PciAddress) -> str | None:
        """The board serial number from PCI VPD, where the device has VPD (not the DSN)."""
        return self.vpd_serials.get(address)

    def pcie_link(self, address: PciAddress) -> PcieLink | None:
        return self.links.get(address)


# -- parsing node-device XML (pure) -----------------------------------------------------


@frozen
class _Parsed:
    pci: PciDevice | None = None
    group: tuple[int, tuple[PciAddress, ...]] | None = None
    vpd_serial: str | None = None
    link: PcieLink | None = None
    usb: UsbDevice | None = None
    usb_has_path: bool = True
    fc_host: FcHost | None = None


def _text(el: Any, path: str) -> str | None:
    found = el.find(path)
    if found is None or found.text is None:
        return None
    text = str(found.text).strip()
    return text or None


def _int(el: Any, path: str, what: str, where: Location) -> int | None:
    text = _text(el, path)
    return None if text is None else parse_xml_uint(text, what, where)


def _address(el: Any, where: Location) -> PciAddress:
    return PciAddress.from_xml({k: str(v) for k, v in el.attrib.items()}, where)


def _parse_pci(dev: Any, cap: Any, where: Location) -> _Parsed:
    vendor = cap.find("vendor")
    product = cap.find("product")
    if vendor is None or product is None:
        raise InputError("PCI node device has no <vendor>/<product>", where=where)
    numbers = [_int(cap, tag, tag, where) for tag in ("domain", "bus", "slot", "function")]
    if any(n is None for n in numbers):
        raise InputError("PCI node device has no complete domain/bus/slot/function", where=where)
    address = PciAddress(*(n for n in numbers if n is not None))
    klass = _text(cap, "class")
    identity = PciIdentity(
        vendor=parse_id16(vendor.get("id", ""), "vendor id", where),
        device=parse_id16(product.get("id", ""), "product id", where),
        class_code=parse_class(klass, where) if klass else None,
    )
    physfn: PciAddress | None = None
    virtfns: list[PciAddress] = []
    vpd_serial: str | None = None
    for sub in cap.findall("capability"):
        kind = sub.get("type")
        if kind == "phys_function":
            first = sub.find("address")
            physfn = _address(first, where) if first is not None else None
        elif kind == "virt_functions":
            virtfns.extend(_address(a, where) for a in sub.findall("address"))
        elif kind == "vpd":
            vpd_serial = _text(sub, "fields[@access='readonly']/serial_number")
    group_el = cap.find("iommuGroup")
    group: tuple[int, tuple[PciAddress, ...]] | None = None
    if group_el is not None:
        number = parse_xml_uint(group_el.get("number", ""), "iommuGroup number", where)
        group = (number, tuple(sorted(_address(a, where) for a in group_el.findall("address"))))
    numa_el = cap.find("numa")
    numa: int | None = None
    if numa_el is not None:
        raw = numa_el.get("node", "")
        # The kernel's numa_node is -1 on non-NUMA hosts; libvirt passes it through.
        numa = int(raw) if decimal_digits(raw.removeprefix("-")) and int(raw) >= 0 else None
    path = _text(dev, "path")
    device = PciDevice(
        address=address,
        identity=identity,
        iommu_group=group[0] if group else None,
        numa_node=numa,
        driver=_text(dev, "driver/name"),
        physical_slot=None,
        port_path=port_path_of(path) if path else None,
        physfn=physfn,
        virtfns=tuple(sorted(virtfns)),
    )
    return _Parsed(pci=device, group=group, vpd_serial=vpd_serial, link=_link(cap, where))


def _link(cap: Any, where: Location) -> PcieLink | None:
    express = cap.find("pci-express")
    if express is None:
        return None
    values: dict[str, Any] = {}
    for link in express.findall("link"):
        width = link.get("width")
        prefix = "max_" if link.get("validity") == "cap" else ""
        values[prefix + "speed"] = link.get("speed")
        values[prefix + "width"] = parse_xml_uint(width, "link width", where) if width else None
    return PcieLink(**values) if values else None


def _parse_usb(dev: Any, cap: Any, name: str, where: Location) -> _Parsed:
    vendor = cap.find("vendor")
    product = cap.find("product")
    bus = _int(cap, "bus", "bus", where)
    number = _int(cap, "device", "device", where)
    if vendor is None or product is None or bus is None or number is None:
        raise InputError("USB node device has no bus/device/vendor/product", where=where)
    path = _text(dev, "path")
    device = UsbDevice(
        bus=bus,
        device=number,
        identity=UsbIdentity(
            parse_id16(vendor.get("id", ""), "vendor id", where),
            parse_id16(product.get("id", ""), "product id", where),
            None,
        ),
        # sysfs names a USB device by its port chain (1-4.2) or root hub (usb1): the
        # last component of libvirt's <path>.
        port_path=os.path.basename(path) if path else name,
        manufacturer=_text(cap, "vendor"),
        product_name=_text(cap, "product"),
        driver=_text(dev, "driver/name"),
    )
    return _Parsed(usb=device, usb_has_path=path is not None)


def _parse_scsi_host(dev: Any, cap: Any, where: Location) -> _Parsed:
    from ..model.scsi import FcHost
    from ..model.wwn import Wwn

    host = _int(cap, "host", "host", where)
    fc = next((c for c in cap.findall("capability") if c.get("type") == "fc_host"), None)
    if host is None or fc is None:
        return _Parsed()
    wwnn = _text(fc, "wwnn")
    wwpn = _text(fc, "wwpn")
    if wwnn is None or wwpn is None:
        return _Parsed()
    fabric = _text(fc, "fabric_wwn")
    parent_name = _text(dev, "parent") or ""
    parent = (
        int(parent_name.removeprefix("scsi_host"))
        if parent_name.startswith("scsi_host") and decimal_digits(parent_name[9:])
        else None
    )
    vport = any(c.get("type") == "vport_ops" for c in cap.findall("capability"))
    return _Parsed(
        fc_host=FcHost(
            host=host,
            wwnn=Wwn.parse(wwnn, name="wwnn", where=where),
            wwpn=Wwn.parse(wwpn, name="wwpn", where=where),
            port_state=None,
            fabric=Wwn.parse(fabric, name="fabric_wwn", where=where) if fabric else None,
            parent=parent,
            npiv_capable=vport,
        )
    )


def parse_node_device(xml: str, where: Location) -> _Parsed:
    """One `virNodeDeviceGetXMLDesc` document; devices of other kinds give an empty result."""
    # lxml loads here, not at import: a local connection's wrapper never parses
    # node devices, and lxml.etree alone costs more than the interpreter's start-up.
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    try:
        dev = etree.fromstring(xml.encode(), parser)
    except etree.XMLSyntaxError as exc:
        raise InputError(f"node-device XML is not well-formed: {exc.msg}", where=where) from None
    name = _text(dev, "name") or ""
    for cap in dev.findall("capability"):
        kind = cap.get("type")
        if kind == "pci":
            return _parse_pci(dev, cap, where)
        if kind == "usb_device":
            return _parse_usb(dev, cap, name, where)
        if kind == "scsi_host":
            return _parse_scsi_host(dev, cap, where)
    return _Parsed()


def inventory_from_xml(uri: str, documents: Iterable[tuple[str, str]]) -> NodedevInventory:
    """A `NodedevInventory` from (node-device name, XML) pairs. Pure."""
    pci: list[PciDevice] = []
    usb: list[UsbDevice] = []
    fc: list[FcHost] = []
    groups: dict[int, set[PciAddress]] = {}
    vpd: dict[PciAddress, str] = {}
    links: dict[PciAddress, PcieLink] = {}
    pci_paths = usb_paths = True
    for name, xml in documents:
        parsed = parse_node_device(xml, Location(f"{uri} node device {name}"))
        if parsed.pci is not None:
            dev = parsed.pci
            pci.append(dev)
            pci_paths = pci_paths and dev.port_path is not None
            if parsed.group is not None:
                members = groups.setdefault(parsed.group[0], set())
                members.update(parsed.group[1])
                members.add(dev.address)
            if parsed.vpd_serial is not None:
                vpd[dev.address] = parsed.vpd_serial
            if parsed.link is not None:
                links[dev.address] = parsed.link
        if parsed.usb is not None:
            usb.append(parsed.usb)
            usb_paths = usb_paths and parsed.usb_has_path
        if parsed.fc_host is not None:
            fc.append(parsed.fc_host)
    return NodedevInventory(
        uri=uri,
        pci=tuple(sorted(pci, key=lambda d: d.address)),
        usb=tuple(sorted(usb, key=lambda d: (d.bus, d.device))),
        fc_hosts=tuple(sorted(fc, key=lambda h: h.host)),
        groups={g: tuple(sorted(m)) for g, m in groups.items()},
        vpd_serials=vpd,
        links=links,
        # Without <path> (hand-written test-driver devices) the port path is unknown too.
        unobserved_pci=PCI_NOT_IN_NODEDEV | ({"port_path"} if not pci_paths else set()),
        unobserved_usb=USB_NOT_IN_NODEDEV | ({"port_path"} if not usb_paths else set()),
    )


# -- the libvirt connection (I/O) -------------------------------------------------------


def libvirt_failure(exc: Exception, uri: str, doing: str) -> HostAccessError:
    """A libvirt error in libvirt's own words, as an environment error (exit 3)."""
    text = str(exc).strip() or type(exc).__name__
    return HostAccessError(
        f"{doing} {uri}: {text}",
        fix="check the URI and that libvirtd runs there (virsh -c URI version)",
    )


def quiet_libvirt() -> None:
    """Stop libvirt printing every error to stderr itself; we report them once, our way."""
    import libvirt

    def _ignore(_ctx: object, _err: object) -> None:
        return None

    libvirt.registerErrorHandler(_ignore, None)


def node_name(conn: Any) -> str:
    """The remote host's short name, as the store names nodes."""
    return str(conn.getHostname()).split(".")[0]


def read_inventory(conn: Any, uri: str) -> NodedevInventory:
    import libvirt

    try:
        documents = [(dev.name(), dev.XMLDesc(0)) for dev in conn.listAllDevices(0)]
    except libvirt.libvirtError as exc:
        raise libvirt_failure(exc, uri, "cannot list node devices on") from None
    return inventory_from_xml(uri, documents)


def open_libvirt_inventory(uri: str) -> tuple[NodedevInventory, str]:
    """The node devices behind `uri` and that node's name (its short host name)."""
    import libvirt

    quiet_libvirt()
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise libvirt_failure(exc, uri, "cannot connect to") from None
    try:
        try:
            name = node_name(conn)
        except libvirt.libvirtError as exc:
            raise libvirt_failure(exc, uri, "cannot get the host name of") from None
        return read_inventory(conn, uri), name
    finally:
        conn.close()


def open_running_guests(uri: str, node: str | None = None) -> tuple[str, list[Document]]:
    """The XML of every guest running behind `uri` (as libvirt shows a running guest:
    its live sources and records), and that node's name: `node` if given, else its
    short host name. Read-only: listing guests needs no write access."""
    import libvirt

    from ..xml.xmldoc import parse_bytes

    quiet_libvirt()
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise libvirt_failure(exc, uri, "cannot connect to") from None
    try:
        try:
            name = node or node_name(conn)
            domains = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        except libvirt.libvirtError as exc:
            raise libvirt_failure(exc, uri, "cannot list the running guests on") from None
        running = []
        for dom in domains:
            try:
                xml = dom.XMLDesc(0)
            except libvirt.libvirtError:
                continue  # stopped while we looked: it holds nothing any more
            running.append(parse_bytes(xml.encode(), f"{uri} domain {dom.name()}"))
        return name, running
    finally:
        conn.close()
