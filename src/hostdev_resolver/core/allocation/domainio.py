"""Domain XML in and out of allocation: the only module here that sees XML.

Reading reduces a domain to `DomainDevices`; writing splices the allocation
back into the original bytes (xmldoc's Splicer), so comments, quoting and
order of everything untouched survive byte for byte. Addresses are written the
way libvirt writes them (`<address type='pci' domain='0x0000' bus='0x01' ...>`).
"""

from __future__ import annotations

import re

from ...model.errors import InputError, Location
from ...model.pciaddress import PciAddress, parse_xml_uint
from ...model.records import frozen, replace
from ...xml import xmldoc
from .model import (
    Allocation,
    Device,
    DeviceKind,
    DomainDevices,
    MachineType,
    PciControllerOptions,
    UnmodeledMachineError,
)

_KINDS = {k.value: k for k in DeviceKind if k is not DeviceKind.OTHER}
_STEP = "  "
_DISK_BUS_BY_PREFIX = (
    ("vd", "virtio"),
    ("sd", "scsi"),
    ("hd", "ide"),
    ("fd", "fdc"),
    ("xvd", "xen"),
)


@frozen
class DomainFile:
    """A parsed domain document and the element behind each device's `ref`."""

    doc: xmldoc.Document
    domain: DomainDevices
    elements: tuple[xmldoc.Element, ...]
    devices_element: xmldoc.Element | None  # None: the domain has no <devices> yet


def _uint(el: xmldoc.Element, name: str, doc: xmldoc.Document) -> int | None:
    raw = el.get(name)
    if raw is None:
        return None
    return parse_xml_uint(raw, f"<{el.tag} {name}>", doc.where(el))


def _switch(el: xmldoc.Element | None, name: str) -> bool | None:
    if el is None:
        return None
    value = el.get(name)
    return None if value is None else value == "on"


def _nodeset(text: str, where: Location) -> frozenset[int]:
    """virBitmapParse(): 'N', 'N-M' and '^N' (exclusion), comma-separated, in order."""
    nodes: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\^)?\s*(\d+)(?:\s*-\s*(\d+))?", part)
        if match is None:
            raise InputError(
                f"nodeset {text!r} is not a list of NUMA nodes",
                where=where,
                fix="write e.g. 0-1,3 or 1-7,^6",
            )
        low = int(match.group(2))
        high = int(match.group(3) or low)
        if high < low:
            raise InputError(
                f"nodeset {text!r}: range {part!r} runs backwards",
                where=where,
                fix="write LOW-HIGH",
            )
        if match.group(1):
            nodes.difference_update(range(low, high + 1))
        else:
            nodes.update(range(low, high + 1))
    return frozenset(nodes)


def _pci_options(el: xmldoc.Element, doc: xmldoc.Document) -> PciControllerOptions:
    model = el.find("model")
    target = el.find("target")
    node: int | None = None
    if target is not None:
        node_el = target.find("node")
        if node_el is not None:
            node = parse_xml_uint(node_el.text.strip(), "<node>", doc.where(node_el))
    return PciControllerOptions(
        model_name=model.get("name") if model is not None else None,
        chassis_nr=_uint(target, "chassisNr", doc) if target is not None else None,
        chassis=_uint(target, "chassis", doc) if target is not None else None,
        port=_uint(target, "port", doc) if target is not None else None,
        bus_nr=_uint(target, "busNr", doc) if target is not None else None,
        node=node,
        hotplug=_switch(target, "hotplug"),
    )


def _guest_address(
    el: xmldoc.Element, doc: xmldoc.Document
) -> tuple[PciAddress | None, bool | None, str | None, int | None]:
    """The device's own `<address>`: (PCI address, multifunction, the type of a non-PCI
    address, the controller a drive or virtio-serial address names)."""
    address_el = el.find("address")
    if address_el is None:
        return None, None, None, None
    atype = address_el.get("type")
    if atype is None:
        raise InputError(
            f"<{el.tag}> has an <address> without a type",
            where=doc.where(address_el),
            fix="add type='pci'",
        )
    if atype != "pci":
        attach = (
            _uint(address_el, "controller", doc) if atype in ("drive", "virtio-serial") else None
        )
        return None, None, atype, attach
    address: PciAddress | None = None
    if any(address_el.get(k) is not None for k in ("bus", "slot", "function")):
        attrs = {
            k: v for k, v in address_el.attrs.items() if k in ("domain", "bus", "slot", "function")
        }
        attrs.setdefault("bus", "0")
        attrs.setdefault("slot", "0")
        attrs.setdefault("function", "0")
        address = PciAddress.from_xml(attrs, doc.where(address_el))
        if address == PciAddress(0, 0, 0, 0):
            address = None  # libvirt treats an all-zero PCI address as "assign one"
    return address, _switch(address_el, "multifunction"), None, None


# One reader per device element: what each kind's element says about its PCI needs
# (the model, bus or type libvirt's connect flags look at), on top of `base`, which
# holds what every device has (its kind, its own address, its line).


def _controller(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    ctype = el.get("type")
    if ctype is None:
        raise InputError(
            "<controller> has no type",
            where=doc.where(el),
            fix="add type='pci' (or usb, scsi, ...)",
        )
    index = _uint(el, "index", doc)
    pci = _pci_options(el, doc) if ctype == "pci" else None
    return replace(base, model=el.get("model") or "", type=ctype, index=index, pci=pci)


def _disk(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    target_el = el.find("target")
    target = target_el.get("dev") if target_el is not None else None
    bus = target_el.get("bus") if target_el is not None else None
    if bus is None and target is not None:
        bus = next((b for p, b in _DISK_BUS_BY_PREFIX if target.startswith(p)), "")
    return replace(base, model=bus or "", type=el.get("model") or "", disk_target=target)


def _interface(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    if el.get("type") == "hostdev":
        # libvirt addresses it through its hostdev part, ahead of the plain <hostdev>s
        source = el.find("source")
        host = source.find("address") if source is not None else None
        host_address = (
            PciAddress.from_xml(host.attrs, doc.where(host)) if host is not None else None
        )
        return replace(
            base,
            kind=DeviceKind.HOSTDEV,
            model="interface",
            type="pci",
            host_address=host_address,
        )
    model_el = el.find("model")
    model = model_el.get("type") if model_el is not None else None
    return replace(base, model=model or "", type=el.get("type") or "")


def _hostdev(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    htype = el.get("type") or ""
    host_address = None
    if htype == "pci":
        source = el.find("source")
        host = source.find("address") if source is not None else None
        if host is not None:
            host_address = PciAddress.from_xml(host.attrs, doc.where(host))
    return replace(base, model=el.get("model") or "", type=htype, host_address=host_address)


def _video(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    model_el = el.find("model")
    model = model_el.get("type") if model_el is not None else None
    primary = model_el is not None and model_el.get("primary") == "yes"
    return replace(base, model=model or "", primary=primary)


def _input(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    return replace(base, model=el.get("bus") or "", type=el.get("model") or "")


def _filesystem(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    driver = el.find("driver")
    dtype = driver.get("type") if driver is not None else None
    return replace(base, model=el.get("model") or "", type=dtype or "")


def _serial(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    target_el = el.find("target")
    ttype = target_el.get("type") if target_el is not None else None
    return replace(base, model=ttype or "")


def _character(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    """<channel> and <console>: their target type (virtio ones need a virtio-serial)."""
    target_el = el.find("target")
    ttype = target_el.get("type") if target_el is not None else None
    return replace(base, type=ttype or "")


def _other(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    return replace(base, model=el.tag)


def _plain(el: xmldoc.Element, base: Device, doc: xmldoc.Document) -> Device:
    return replace(base, model=el.get("model") or "", type=el.get("type") or "")


_READERS = {
    DeviceKind.CONTROLLER: _controller,
    DeviceKind.DISK: _disk,
    DeviceKind.INTERFACE: _interface,
    DeviceKind.HOSTDEV: _hostdev,
    DeviceKind.VIDEO: _video,
    DeviceKind.INPUT: _input,
    DeviceKind.FILESYSTEM: _filesystem,
    DeviceKind.SERIAL: _serial,
    DeviceKind.CHANNEL: _character,
    DeviceKind.CONSOLE: _character,
    DeviceKind.OTHER: _other,
}


def _device(el: xmldoc.Element, ref: int, doc: xmldoc.Document) -> Device | None:
    kind = _KINDS.get(el.tag, DeviceKind.OTHER) if el.ns is None else DeviceKind.OTHER
    address, multifunction, other_address, attach = _guest_address(el, doc)
    base = Device(
        kind,
        address=address,
        multifunction=multifunction,
        other_address=other_address,
        attach_controller=attach,
        ref=ref,
        line=el.line,
    )
    return _READERS.get(kind, _plain)(el, base, doc)


def _fill_controller_indexes(devices: list[Device]) -> list[Device]:
    """libvirt gives an index-less controller the lowest index unused by its type."""
    used: dict[str, set[int]] = {}
    for d in devices:
        if d.kind is DeviceKind.CONTROLLER and d.index is not None:
            used.setdefault(d.type, set()).add(d.index)
    out = []
    for d in devices:
        if d.kind is DeviceKind.CONTROLLER and d.index is None:
            taken = used.setdefault(d.type, set())
            idx = next(i for i in range(len(taken) + 1) if i not in taken)
            taken.add(idx)
            d = replace(d, index=idx)
        out.append(d)
    return out


def read_domain(data: bytes, source: str, doc: xmldoc.Document | None = None) -> DomainFile:
    """Parse domain XML bytes; InputError (with file:line) when malformed. `doc`: the
    same bytes already parsed (by a caller that read them too), not parsed again."""
    doc = xmldoc.parse_bytes(data, source) if doc is None else doc
    root = doc.root
    if root.tag != "domain" or root.ns is not None:
        raise InputError(
            f"the root element is <{root.tag}>, not <domain>",
            where=doc.where(root),
            fix="give a libvirt domain XML file",
        )
    os_el = root.find("os")
    type_el = os_el.find("type") if os_el is not None else None
    machine = type_el.get("machine") if type_el is not None else None
    arch = type_el.get("arch") if type_el is not None else None
    line = next(e for e in (type_el, os_el, root) if e is not None).line
    if arch not in (None, "x86_64", "i686"):
        raise UnmodeledMachineError(
            f"architecture {arch!r} is not modelled: the allocator knows libvirt 9.0's PCI "
            "layout of x86_64/i686 pc and q35 machines only",
            source,
            line,
            fix=_UNMODELLED_FIX.get(arch or "", _UNMODELLED_FIX[""]),
        )
    family = MachineType.from_machine(machine)
    if family is None:
        raise UnmodeledMachineError(
            f"machine type {machine!r} is not modelled: the allocator knows libvirt 9.0's PCI "
            "layout of pc (i440fx) and q35 machines only",
            source,
            line,
            fix="let libvirt assign the addresses (virsh define), or use a pc or q35 machine",
        )
    devices_el = root.find("devices")
    features = root.find("features")
    acpi = features is not None and features.find("acpi") is not None
    elements: list[xmldoc.Element] = []
    devices: list[Device] = []
    # A domain without <devices> is valid: libvirt adds the implicit ones.
    for el in devices_el.children if devices_el is not None else ():
        dev = _device(el, len(elements), doc)
        if dev is None:
            continue
        elements.append(el)
        devices.append(dev)
    cells: list[int] = []
    cpu = root.find("cpu")
    numa = cpu.find("numa") if cpu is not None else None
    if numa is not None:
        for i, cell in enumerate(numa.findall("cell")):
            cid = _uint(cell, "id", doc)
            cells.append(i if cid is None else cid)
    cell_nodes: list[tuple[int, frozenset[int]]] = []
    numatune = root.find("numatune")
    if numatune is not None:
        for memnode in numatune.findall("memnode"):
            cellid = _uint(memnode, "cellid", doc)
            nodeset = memnode.get("nodeset")
            if cellid is not None and nodeset:
                cell_nodes.append((cellid, _nodeset(nodeset, doc.where(memnode))))
    domain = DomainDevices(
        machine=family,
        devices=tuple(_fill_controller_indexes(devices)),
        numa_cells=tuple(cells),
        cell_host_nodes=tuple(cell_nodes),
        source=source,
        acpi=acpi,
        line=(devices_el if devices_el is not None else root).line,
    )
    return DomainFile(doc, domain, tuple(elements), devices_el)


# What modelling another architecture would take (the libvirt 9.0 code to follow).
_UNMODELLED_FIX = {
    "aarch64": "aarch64 'virt' needs its pcie-root with virtio-mmio fallback "
    "(qemuDomainPrimeVirtioDeviceAddresses) and no PIIX3/ICH9 reservations; "
    "until then let libvirt assign the addresses (virsh define)",
    "ppc64": "pSeries needs spapr-pci-host-bridge PHBs, spapr-vio addresses and "
    "targetIndex defaults; until then let libvirt assign the addresses (virsh define)",
    "ppc64le": "pSeries needs spapr-pci-host-bridge PHBs, spapr-vio addresses and "
    "targetIndex defaults; until then let libvirt assign the addresses (virsh define)",
    "s390x": "s390x needs CCW addresses and zPCI uid/fid extensions; "
    "until then let libvirt assign the addresses (virsh define)",
    "": "let libvirt assign the addresses (virsh define); modelling this architecture "
    "needs its root bus, chipset reservations and virtio transport rules from "
    "libvirt's qemu_domain_address.c",
}


# -- writing ---------------------------------------------------------------------


def address_node(address: PciAddress, multifunction: bool | None) -> xmldoc.Node:
    attrs = {"type": "pci", **address.xml_attributes()}
    if multifunction is not None:
        attrs["multifunction"] = "on" if multifunction else "off"
    return xmldoc.Node("address", attrs)


def _target_attrs(opts: PciControllerOptions) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if opts.chassis_nr is not None:
        attrs["chassisNr"] = str(opts.chassis_nr)
    if opts.chassis is not None:
        attrs["chassis"] = str(opts.chassis)
    if opts.port is not None:
        attrs["port"] = f"0x{opts.port:x}"
    if opts.bus_nr is not None:
        attrs["busNr"] = str(opts.bus_nr)
    if opts.hotplug is not None:
        attrs["hotplug"] = "on" if opts.hotplug else "off"
    return attrs


def _target_node(opts: PciControllerOptions) -> xmldoc.Node | None:
    attrs = _target_attrs(opts)
    children = [xmldoc.Node("node", text=str(opts.node))] if opts.node is not None else []
    if not attrs and not children:
        return None
    return xmldoc.Node("target", attrs, children)


def device_node(dev: Device) -> xmldoc.Node:
    """A new element for a device the allocation added."""
    children: list[xmldoc.Node] = []
    if dev.kind is DeviceKind.CONTROLLER:
        attrs = {"type": dev.type, "index": str(dev.index or 0)}
        if dev.model and not (dev.type == "sata" and dev.model == ""):
            attrs["model"] = dev.model
        if dev.pci is not None:
            if dev.pci.model_name is not None:
                children.append(xmldoc.Node("model", {"name": dev.pci.model_name}))
            target = _target_node(dev.pci)
            if target is not None:
                children.append(target)
        node = xmldoc.Node("controller", attrs, children)
    elif dev.kind is DeviceKind.VIDEO:
        children.append(xmldoc.Node("model", {"type": dev.model}))
        node = xmldoc.Node("video", {}, children)
    else:
        node = xmldoc.Node(dev.kind.value, {"model": dev.model} if dev.model else {}, children)
    if dev.address is not None:
        node.children.append(address_node(dev.address, dev.multifunction))
    return node


def _add_children(
    splicer: xmldoc.Splicer, doc: xmldoc.Document, parent: xmldoc.Element, nodes: list[xmldoc.Node]
) -> None:
    """Append children to `parent` in one edit, indented one step inside it."""
    if not nodes:
        return
    outer = doc.indent_of(parent)
    indent = doc.indent_of(parent.children[0]) if parent.children else ""
    if not indent:
        indent = outer + _STEP
    rendered = [n.render(indent, _STEP) for n in nodes]
    if parent.self_closing:
        close = parent.start_end - 2
        while close > parent.start and doc.data[close - 1 : close].isspace():
            close -= 1
        inner = "".join(f"\n{indent}{r}" for r in rendered)
        qname = doc.start_tag(parent)[1:].split()[0].rstrip(b"/>").decode()
        splicer.replace(close, parent.end, f">{inner}\n{outer}</{qname}>")
        return
    close = doc.data.rfind(b"</", parent.start_end, parent.end)
    line_start = doc.data.rfind(b"\n", 0, close) + 1
    if doc.data[line_start:close].strip() == b"":
        splicer.insert(line_start, "".join(f"{indent}{r}\n" for r in rendered))
    else:
        splicer.insert(close, "".join(f"\n{indent}{r}" for r in rendered) + f"\n{outer}")


def _edit_controller_options(
    splicer: xmldoc.Splicer,
    doc: xmldoc.Document,
    el: xmldoc.Element,
    old: PciControllerOptions | None,
    new: PciControllerOptions,
) -> list[xmldoc.Node]:
    """Edit <model>/<target> in place; returns new child nodes still to be added."""
    pending: list[xmldoc.Node] = []
    if new.model_name is not None and (old is None or old.model_name is None):
        model_el = el.find("model")
        if model_el is None:
            pending.append(xmldoc.Node("model", {"name": new.model_name}))
        else:
            splicer.set_attribute(model_el, "name", new.model_name)
    target_el = el.find("target")
    if target_el is None:
        target = _target_node(new)
        if target is not None:
            pending.append(target)
        return pending
    old_attrs = _target_attrs(old or PciControllerOptions())
    for name, value in _target_attrs(new).items():
        if name not in old_attrs:
            splicer.set_attribute(target_el, name, value)
    if new.node is not None and (old is None or old.node is None):
        _add_children(splicer, doc, target_el, [xmldoc.Node("node", text=str(new.node))])
    return pending


def write_allocation(domain_file: DomainFile, allocation: Allocation) -> bytes:
    """The domain's bytes with `allocation` spliced in; untouched bytes stay identical."""
    doc = domain_file.doc
    splicer = xmldoc.Splicer(doc)
    originals = domain_file.domain.devices
    for dev in allocation.devices:
        if dev.ref is None:
            continue
        old = originals[dev.ref]
        el = domain_file.elements[dev.ref]
        pending: list[xmldoc.Node] = []
        if dev.pci is not None and dev.pci != old.pci:
            pending.extend(_edit_controller_options(splicer, doc, el, old.pci, dev.pci))
        if dev.address is not None and (
            dev.address != old.address or dev.multifunction != old.multifunction
        ):
            address_el = el.find("address")
            node = address_node(dev.address, dev.multifunction)
            if address_el is not None:
                splicer.replace_element(address_el, node)
            else:
                pending.append(node)
        _add_children(splicer, doc, el, pending)
    devices_el = domain_file.devices_element
    if devices_el is None:
        added = [device_node(dev) for dev in allocation.added]
        if added:
            _add_children(splicer, doc, doc.root, [xmldoc.Node("devices", {}, added)])
        return splicer.apply()
    controllers = devices_el.findall("controller")
    tail: list[xmldoc.Node] = []
    for dev in allocation.added:
        node = device_node(dev)
        if dev.kind is DeviceKind.CONTROLLER and controllers:
            splicer.insert_after(controllers[-1], node)
        else:
            tail.append(node)
    _add_children(splicer, doc, devices_el, tail)
    return splicer.apply()
