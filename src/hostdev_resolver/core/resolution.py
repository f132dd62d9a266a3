"""Resolving `hr:map` references in a domain to concrete host devices (SPEC §3).

Pure: takes the parsed domain, the store, a host inventory and the node name, and
returns the new document bytes. Only the referencing elements and the
`hr:resolution` record change; every other byte is kept. Resolving a resolved
domain again re-resolves it from its record, so the operation is idempotent and
is also how a domain is rewritten for another node (migration, restore).
"""

from __future__ import annotations

from ..model.errors import (
    AccessDeniedError,
    AmbiguousError,
    ConflictError,
    Location,
    RefusedError,
    UnresolvableError,
)
from ..model.pciaddress import PciAddress
from ..model.records import field, frozen, mutable
from ..xml.domain import (
    devices_of,
    domain_name,
    is_pci_source_element,
    pci_source_address,
    usb_source,
)
from ..xml.store import (
    MdevMapping,
    PciEntry,
    PciMapping,
    Store,
    UsbEntry,
    UsbMapping,
    VfEntry,
    VfMapping,
)
from ..xml.xmldoc import Document, Element, Node, Splicer
from .locate import (
    PciExpectation,
    Status,
    UsbExpectation,
    describe_pci,
    describe_usb,
    locate_pci,
    locate_usb,
    lookalike_fix,
)
from .mdev import MdevRecord
from .metadata import (
    HR_MAP,
    HR_WWN,
    PciRecord,
    Resolution,
    UsbRecord,
    find_resolution_element,
    read_resolution,
)

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..model.inventory import HostInventory
    from ..model.scsi import ScsiInventory
    from ..xml.store import Mapping
    from .metadata import Record
    from .scsiresolve import ScsiRecord, ScsiReference
    from .sriov import VfRecord

# Elements that conventionally open a domain; <metadata> goes after them.
_HEAD = ("name", "uuid", "genid", "title", "description")


@frozen
class Resolved:
    data: bytes
    resolution: Resolution | None
    warnings: tuple[str, ...] = ()


@mutable
class _Context:
    doc: Document
    store: Store
    inventory: HostInventory
    node: str
    domain: str
    claimed: set[object] = field(default_factory=set)
    owner: dict[object, Element] = field(default_factory=dict)  # claimed by this domain
    warnings: list[str] = field(default_factory=list)


def needs_store(doc: Document) -> bool:
    """Does resolving or verifying this domain need the mapping store?

    Only `hr:map` references and the records made from them name mappings. An `hr:wwn`
    reference, and its record, describe the LUN themselves: a domain with nothing else
    is resolved and verified without a store (none may exist on the host).
    """
    if any(HR_MAP in el.attrs for el in devices_of(doc)):
        return True
    # The record elements themselves, not read_resolution(): a malformed record is
    # reported by resolve/verify, not hidden behind a missing store.
    record = find_resolution_element(doc)
    return record is not None and any(
        child.tag in ("pci", "usb") or "map" in child.attrs for child in record.children
    )


def without_store(path: str) -> Store:
    """The store of a domain that needs none (see `needs_store`): no mappings."""
    return Store(path, {})


def element_of_record(doc: Document, record: Record) -> Element | None:
    """The device element a record describes, found by its concrete source."""
    if not isinstance(record, PciRecord | UsbRecord):
        return next((el for el in devices_of(doc) if record.matches_element(doc, el)), None)
    for el in devices_of(doc):
        if isinstance(record, PciRecord):
            if not is_pci_source_element(el):
                continue
        elif el.tag != "hostdev" or el.get("type") != record.kind:
            continue
        if isinstance(record, PciRecord):
            if pci_source_address(doc, el) == record.address:
                return el
        else:
            src = usb_source(doc, el)
            if (
                src is not None
                and src[:2] == (record.identity.vendor, record.identity.product)
                and (record.bus is None or src[2:] in ((None, None), (record.bus, record.device)))
            ):
                return el
    return None


# -- resolution ----------------------------------------------------------------

_MAP_ADD_FORMS = {
    "pci": "--address BDF",
    "usb": "--vendor V --product P [--serial S]",
    "vf": "--pf BDF --index N",
    "mdev": "--parent BDF --type TYPE",
}
# Which mapping kinds each referencing element takes.
_ACCEPTED = {"pci": ("pci", "vf"), "usb": ("usb",), "mdev": ("mdev",)}


def _fix_map_add(kind: str, name: str, node: str) -> str:
    return f"run 'hostdev-resolver map add {kind} {name} --node {node} {_MAP_ADD_FORMS[kind]}'"


def _mapping_for(ctx: _Context, el: Element, name: str, kind: str) -> PciMapping | UsbMapping:
    where = ctx.doc.where(el)
    mapping = ctx.store.get(name)
    if mapping is None:
        raise UnresolvableError(
            f"no mapping named {name!r} in {ctx.store.path}",
            where=where,
            fix=_fix_map_add(kind, name, ctx.node),
        )
    if mapping.kind not in _ACCEPTED[kind]:
        raise UnresolvableError(
            f"{name!r} is a {mapping.kind} mapping, but <{el.tag} type='{el.get('type')}'> needs a {' or '.join(_ACCEPTED[kind])} one",
            where=where,
            fix="reference a mapping of the right kind",
        )
    _check_allowed(ctx, mapping, where)
    assert isinstance(mapping, PciMapping | UsbMapping)
    return mapping


def _check_allowed(ctx: _Context, mapping: Mapping, where: Location) -> None:
    """The mapping's <allow> list must admit this domain (none = any domain)."""
    if not mapping.allows(ctx.domain):
        raise AccessDeniedError(
            f"mapping {mapping.name!r} does not allow domain {ctx.domain!r} (allowed: {', '.join(mapping.allow)})",
            where=where,
            fix=f"add <allow domain='{ctx.domain}'/> to the mapping, or use another device",
        )


def pci_expectation(entry: PciEntry) -> PciExpectation:
    """What the store says a PCI device is, and where: what locate compares with."""
    return PciExpectation(
        entry.address, entry.identity, entry.iommu_group, entry.physical_slot, entry.port_path
    )


def _no_entry(ctx: _Context, el: Element, kind: str, name: str) -> UnresolvableError:
    return UnresolvableError(
        f"mapping {name!r} has no entry for node {ctx.node!r}",
        where=ctx.doc.where(el),
        fix=_fix_map_add(kind, name, ctx.node),
    )


def _none_usable(
    ctx: _Context,
    el: Element,
    name: str,
    pooled: bool,
    problems: list[str],
    ambiguous: bool,
    fix: str,
) -> RefusedError:
    """Why no entry of a mapping could be used: one device's problem, or a pool's."""
    where = ctx.doc.where(el)
    if pooled:
        return UnresolvableError(
            f"no free device in pool {name!r} on node {ctx.node}: " + "; ".join(problems),
            where=where,
            fix="free one of the pool's devices or add one with 'hostdev-resolver map add'",
        )
    error = AmbiguousError if ambiguous else UnresolvableError
    return error(problems[0], where=where, fix=fix)


def _resolve_pci(ctx: _Context, el: Element, mapping: PciMapping) -> tuple[PciRecord, Node]:
    entries = mapping.entries_on(ctx.node)
    if not entries:
        raise _no_entry(ctx, el, "pci", mapping.name)
    problems: list[str] = []
    ambiguous = False
    fix = _fix_map_add("pci", mapping.name, ctx.node)
    for entry in entries:
        loc = locate_pci(pci_expectation(entry), ctx.inventory)
        device = loc.device
        if device is None:
            problems.append(describe_pci(mapping.name, ctx.node, loc))
            ambiguous = loc.status == Status.AMBIGUOUS
            fix = lookalike_fix(mapping.name, ctx.node, loc) or fix
            continue
        if device.address in ctx.claimed:
            _check_conflict(ctx, el, device.address, mapping.name, len(entries))
            problems.append(f"{mapping.name}: {device.address} is already in use")
            continue
        if device.address != entry.address:
            ctx.warnings.append(
                f"{describe_pci(mapping.name, ctx.node, loc)}; using it — refresh the store with "
                f"'hostdev-resolver map add pci {mapping.name} --node {ctx.node} --address {device.address}'"
            )
        ctx.claimed.add(device.address)
        ctx.owner[device.address] = el
        record = PciRecord(
            map=mapping.name,
            address=device.address,
            identity=entry.identity,
            iommu_group=device.iommu_group,
            numa_node=device.numa_node,
            physical_slot=entry.physical_slot,
            port_path=entry.port_path,
            vfio=mapping.vfio,
        )
        return record, Node("source", children=[Node("address", device.address.xml_attributes())])
    raise _none_usable(ctx, el, mapping.name, len(entries) > 1, problems, ambiguous, fix)


def _resolve_usb(ctx: _Context, el: Element, mapping: UsbMapping) -> tuple[UsbRecord, Node]:
    entries = mapping.entries_on(ctx.node)
    if not entries:
        raise _no_entry(ctx, el, "usb", mapping.name)
    problems: list[str] = []
    ambiguous = False
    for entry in entries:
        loc = locate_usb(_usb_expectation(entry), ctx.inventory)
        if loc.found is None:
            problems.append(describe_usb(mapping.name, ctx.node, loc))
            ambiguous = loc.status == Status.AMBIGUOUS
            continue
        dev = loc.found
        key = ("usb", dev.bus, dev.device)
        if key in ctx.claimed:
            _check_conflict(ctx, el, key, mapping.name, len(entries))
            problems.append(f"{mapping.name}: bus {dev.bus} device {dev.device} is already in use")
            continue
        ctx.claimed.add(key)
        ctx.owner[key] = el
        children = [
            Node("vendor", {"id": f"0x{dev.identity.vendor:04x}"}),
            Node("product", {"id": f"0x{dev.identity.product:04x}"}),
        ]
        # libvirt picks a USB device by vendor/product alone when that is unique, and then
        # finds it again after a replug; bus/device (which change on replug) are written
        # only when another device has the same IDs.
        pinned = not loc.unique_model
        if pinned:
            children.append(Node("address", {"bus": str(dev.bus), "device": str(dev.device)}))
        record = UsbRecord(
            map=mapping.name,
            identity=entry.identity,
            bus=dev.bus if pinned else None,
            device=dev.device if pinned else None,
            port_path=entry.port_path,
        )
        return record, Node("source", children=children)
    fix = "plug the device in, or re-map it with 'hostdev-resolver map add usb'"
    raise _none_usable(ctx, el, mapping.name, len(entries) > 1, problems, ambiguous, fix)


def _check_conflict(ctx: _Context, el: Element, key: object, name: str, entries: int) -> None:
    first = ctx.owner.get(key)
    if first is not None and entries == 1:
        raise ConflictError(
            f"{name}: the same host device is already given to the <{first.tag}> on line {first.line}",
            where=ctx.doc.where(el),
            fix="give each host device to one device element only",
        )


def _usb_expectation(entry: UsbEntry) -> UsbExpectation:
    return UsbExpectation(entry.identity, port_path=entry.port_path)


def _resolve_vf(ctx: _Context, el: Element, mapping: VfMapping) -> tuple[VfRecord, Node]:
    """VF `index` of the PF the store names, wherever the PF is now (sriov.py)."""
    from .sriov import VfRecord, describe_vf, locate_vf, vf_fix

    entries = mapping.entries_on(ctx.node)
    if not entries:
        raise _no_entry(ctx, el, "vf", mapping.name)
    problems: list[str] = []
    ambiguous = False
    fix = _fix_map_add("vf", mapping.name, ctx.node)
    for entry in entries:
        assert isinstance(entry, VfEntry)
        loc = locate_vf(entry, ctx.inventory)
        vf = loc.vf
        pf = loc.pf.device
        if vf is None or pf is None or loc.status not in (Status.OK, Status.SHIFTED):
            problems.append(describe_vf(mapping.name, ctx.node, loc))
            ambiguous = loc.pf.status == Status.AMBIGUOUS
            fix = vf_fix(mapping.name, ctx.node, loc)
            continue
        if vf.address in ctx.claimed:
            _check_conflict(ctx, el, vf.address, mapping.name, len(entries))
            problems.append(f"{mapping.name}: {vf.address} is already in use")
            continue
        if loc.status == Status.SHIFTED:
            ctx.warnings.append(
                f"{describe_vf(mapping.name, ctx.node, loc)}; using it — refresh the store with "
                f"'hostdev-resolver map add vf {mapping.name} --node {ctx.node} --pf {pf.address} --index {entry.index}'"
            )
        ctx.claimed.add(vf.address)
        ctx.owner[vf.address] = el
        record = VfRecord(
            map=mapping.name,
            address=vf.address,
            identity=entry.identity,
            iommu_group=vf.iommu_group,
            numa_node=vf.numa_node,
            physical_slot=entry.physical_slot,
            port_path=entry.port_path,
            vfio=mapping.vfio,
            pf_address=pf.address,
            index=entry.index,
            vf_vendor=entry.vf_vendor,
            vf_device=entry.vf_device,
        )
        return record, _pci_source(el, vf.address)
    raise _none_usable(ctx, el, mapping.name, len(entries) > 1, problems, ambiguous, fix)


def _pci_source(el: Element, address: PciAddress) -> Node:
    attrs = address.xml_attributes()
    if el.tag == "interface":  # domain.rng: an interface's hostdev address says its type
        attrs = {"type": "pci", **attrs}
    return Node("source", children=[Node("address", attrs)])


def _resolve_mdev(ctx: _Context, el: Element, mapping: MdevMapping) -> tuple[MdevRecord, Node]:
    """The mapping's mdev on the parent that has it, or one with room (mdev.py)."""
    from .mdev import place_mdev

    entries = mapping.entries_on(ctx.node)
    if not entries:
        raise _no_entry(ctx, el, "mdev", mapping.name)
    key = ("mdev", mapping.uuid)
    if key in ctx.claimed:
        _check_conflict(ctx, el, key, mapping.name, 1)
        raise UnresolvableError(
            f"{mapping.name}: mdev {mapping.uuid} is already in use",
            where=ctx.doc.where(el),
            fix="give each guest its own mdev mapping (each has its own UUID)",
        )
    choice = place_mdev(mapping.name, mapping.uuid, mapping.mdev_type, entries, ctx.inventory)
    placement = choice.placement
    if placement is None:
        error = AmbiguousError if choice.status == Status.AMBIGUOUS else UnresolvableError
        raise error(
            "; ".join(choice.problems),
            where=ctx.doc.where(el),
            fix=(
                "free an instance (remove an unused mdev) or add a parent with "
                f"'hostdev-resolver map add mdev {mapping.name} --node {ctx.node} --parent BDF "
                f"--type {mapping.mdev_type} --uuid {mapping.uuid}'"
            ),
        )
    if placement.location.status == Status.SHIFTED:
        ctx.warnings.append(
            f"{describe_pci(mapping.name, ctx.node, placement.location)}; the mdev goes there — "
            f"refresh the store with 'hostdev-resolver map add mdev {mapping.name} --node {ctx.node} "
            f"--parent {placement.parent.address} --type {mapping.mdev_type} --uuid {mapping.uuid}'"
        )
    ctx.claimed.add(key)
    ctx.owner[key] = el
    record = MdevRecord(
        map=mapping.name,
        uuid=mapping.uuid,
        mdev_type=mapping.mdev_type,
        parent=placement.parent.address,
        identity=placement.entry.identity,
        physical_slot=placement.entry.physical_slot,
        port_path=placement.entry.port_path,
    )
    return record, Node("source", children=[Node("address", {"uuid": mapping.uuid})])


def _same_source(ctx: _Context, el: Element, record: Record) -> bool:
    if not isinstance(record, PciRecord | UsbRecord):
        return record.matches_element(ctx.doc, el)
    if isinstance(record, PciRecord):
        return pci_source_address(ctx.doc, el) == record.address
    src = usb_source(ctx.doc, el)
    return src == (record.identity.vendor, record.identity.product, record.bus, record.device)


def _references(ctx: _Context, previous: Resolution | None) -> list[tuple[Element, str]]:
    refs: list[tuple[Element, str]] = []
    seen: set[int] = set()
    for el in devices_of(ctx.doc):
        if _scsi_candidate(el):
            from .scsiresolve import scsi_reference

            if scsi_reference(ctx.doc, el) is not None:
                continue  # <disk>/<hostdev type='scsi'>: _scsi_references
        if HR_WWN in el.attrs and HR_MAP not in el.attrs:
            raise UnresolvableError(
                f"hr:wwn references on <{el.tag}> are not supported by this build",
                where=ctx.doc.where(el),
                fix="name the LUN through a store mapping",
            )
        if HR_MAP in el.attrs:
            refs.append((el, el.attrs[HR_MAP]))
            seen.add(id(el))
    for record in previous.records if previous else ():
        if not isinstance(record, PciRecord | UsbRecord | MdevRecord):
            continue
        found = element_of_record(ctx.doc, record)
        if found is None:
            ctx.warnings.append(
                f"{record.map}: the device it was resolved to is no longer in the domain; record dropped"
            )
            continue
        if id(found) not in seen:
            refs.append((found, record.map))
            seen.add(id(found))
    return refs


def _scsi_candidate(el: Element) -> bool:
    """A <disk> or SCSI <hostdev> carrying a reference. Only then are the SCSI modules
    imported: PCI/USB domains (the hook's common case) do not pay for them."""
    return (HR_MAP in el.attrs or HR_WWN in el.attrs) and (
        el.tag == "disk" or (el.tag == "hostdev" and el.get("type") == "scsi")
    )


def wants_scsi(doc: Document) -> bool:
    """Does resolving or verifying `doc` need the node's SCSI inventory? Only LUN disks
    and SCSI hostdevs do; reading it scans every SCSI device of the host."""
    if any(_scsi_candidate(el) for el in devices_of(doc)):
        return True
    previous = read_resolution(doc)
    return previous is not None and any(
        not isinstance(r, PciRecord | UsbRecord) for r in previous.records
    )


def _scsi_references(
    ctx: _Context, previous: Resolution | None
) -> list[tuple[Element, ScsiReference]]:
    """LUN disks and SCSI hostdevs: new hr:map/hr:wwn references, then recorded ones."""
    refs: list[tuple[Element, ScsiReference]] = []
    seen: set[int] = set()
    for el in devices_of(ctx.doc):
        if not _scsi_candidate(el):
            continue
        from .scsiresolve import scsi_reference

        ref = scsi_reference(ctx.doc, el)
        if ref is not None:
            refs.append((el, ref))
            seen.add(id(el))
    for record in previous.records if previous else ():
        if isinstance(record, PciRecord | UsbRecord | MdevRecord):
            continue
        found = element_of_record(ctx.doc, record)
        if found is None:
            ctx.warnings.append(
                f"{record.label}: the device it was resolved to is no longer in the domain; record dropped"
            )
            continue
        if id(found) not in seen:
            refs.append((found, record.reference(ctx.doc.where(found))))
            seen.add(id(found))
    return refs


def _resolve_scsi_element(
    ctx: _Context, splicer: Splicer, el: Element, ref: ScsiReference, scsi: ScsiInventory | None
) -> ScsiRecord:
    where = ctx.doc.where(el)
    if scsi is None:
        raise UnresolvableError(
            f"{ref.label}: no SCSI inventory for node {ctx.node} from this host source",
            where=where,
            fix="resolve on the node itself, or give --sysfs ROOT",
        )
    mapping = None
    if ref.map_name is not None:
        mapping = ctx.store.get(ref.map_name)
        if mapping is None:
            raise UnresolvableError(
                f"no mapping named {ref.map_name!r} in {ctx.store.path}",
                where=where,
                fix=f"run 'hostdev-resolver map add {ref.element} {ref.map_name} --wwn WWN'",
            )
        _check_allowed(ctx, mapping, where)
    from .scsiresolve import resolve_scsi

    result = resolve_scsi(ref, mapping, scsi)
    ctx.warnings.extend(result.warnings)
    record = result.record
    key = ("scsi", record.dev or str(record.address))
    if key in ctx.owner:
        _check_conflict(ctx, el, key, ref.label, 1)
    ctx.owner[key] = el
    for attr in (HR_MAP, HR_WWN):
        if attr in el.attrs:
            splicer.remove_attribute(el, el.qnames[attr])
    if not record.matches_element(ctx.doc, el):
        old = el.find("source")
        if old is None:
            _insert_source(splicer, el, result.source)
        elif record.dev is not None:
            # a LUN disk's <source> may hold <reservations>, <seclabel>: change dev only
            splicer.set_attribute(old, "dev", record.dev)
        else:
            # written whole: an old protocol='iscsi' name=… source is replaced by the
            # adapter form, and must not lend it its attributes
            splicer.replace_element(old, result.source)
    return record


def _kind_of(ctx: _Context, el: Element) -> str:
    kind = el.get("type")
    if (
        el.tag == "hostdev"
        and el.get("mode", "subsystem") == "subsystem"
        and kind in ("pci", "usb", "mdev")
    ):
        return kind
    if el.tag == "interface" and kind == "hostdev":
        return "pci"
    raise UnresolvableError(
        f"hr:map on <{el.tag}{' type=' + repr(kind) if kind else ''}> is not supported",
        where=ctx.doc.where(el),
        fix="use hr:map on <hostdev mode='subsystem' type='pci'|'usb'|'mdev'> or <interface type='hostdev'>",
    )


def resolve_domain(
    doc: Document,
    store: Store,
    inventory: HostInventory,
    node: str,
    *,
    claimed: Iterable[object] = (),
    scsi: ScsiInventory | None = None,
) -> Resolved:
    """Resolve every reference (new `hr:map` attributes and recorded devices) for `node`.

    `claimed` are host devices held by other guests: pools skip them. PCI devices are
    named by their PciAddress, USB devices by ("usb", bus, device). `scsi` is the
    node's SCSI inventory, needed only by LUN disks and SCSI hostdevs.
    """
    ctx = _Context(doc, store, inventory, node, domain_name(doc), set(claimed))
    previous = read_resolution(doc)
    refs = _references(ctx, previous)
    scsi_refs = _scsi_references(ctx, previous)
    if not refs and not scsi_refs and previous is None:
        return Resolved(doc.data, None, ())
    splicer = Splicer(doc)
    records: list[Record] = []
    for scsi_el, scsi_ref in scsi_refs:
        records.append(_resolve_scsi_element(ctx, splicer, scsi_el, scsi_ref, scsi))
    for el, name in refs:
        kind = _kind_of(ctx, el)
        mapping = _mapping_for(ctx, el, name, kind)
        record: Record
        if isinstance(mapping, VfMapping):
            record, source = _resolve_vf(ctx, el, mapping)
        elif isinstance(mapping, MdevMapping):
            record, source = _resolve_mdev(ctx, el, mapping)
        elif isinstance(mapping, PciMapping):
            record, source = _resolve_pci(ctx, el, mapping)
        else:
            record, source = _resolve_usb(ctx, el, mapping)
        records.append(record)
        if HR_MAP in el.attrs:
            splicer.remove_attribute(el, el.qnames[HR_MAP])
        if not _same_source(ctx, el, record):
            old = el.find("source")
            if old is not None:
                source.attrs.update({k: v for k, v in old.attrs.items() if "{" not in k})
                splicer.replace_element(old, source)
            else:
                _insert_source(splicer, el, source)
    resolution = Resolution(node, tuple(records))
    if resolution != previous:
        _write_resolution(doc, splicer, resolution)
    return Resolved(splicer.apply(), resolution, tuple(ctx.warnings))


def _insert_source(splicer: Splicer, el: Element, source: Node) -> None:
    """Add a new <source> where libvirt writes it: after <driver> (and a disk's legacy
    disk-level <auth>, an interface's <mac>), before everything else (virDomainHostdevDefFormat,
    virDomainDiskDefFormat in src/conf/domain_conf.c).

    For a PCI hostdev this is also what makes the result valid: domain.rng nests <driver>,
    <teaming> and <source> in an interleave inside the hostdev's interleave, and libxml2
    (2.9.14 in Debian 12, 2.14 in lxml) accepts that only when the three are adjacent:
    a <source> after the guest <address> or <rom> fails the schema.
    """
    if el.tag == "disk":
        splicer.insert_child(el, source, after=("driver", "auth"))
    elif el.tag == "interface":
        # <interface type='hostdev'>: virDomainNetDefFormat writes <mac> first, then the
        # hostdev's <driver> and <source>, then <vlan>, <virtualport> and the rest.
        splicer.insert_child(el, source, after=("mac", "driver"), before=("teaming",))
    else:
        splicer.insert_child(el, source, after=("driver",), before=("teaming",))


def _write_resolution(doc: Document, splicer: Splicer, resolution: Resolution) -> None:
    existing = find_resolution_element(doc)
    node = resolution.to_node()
    if existing is not None:
        splicer.replace_element(existing, node)
        return
    metadata = doc.root.find("metadata")
    if metadata is not None:
        splicer.append_child(metadata, node)
        return
    wrapper = Node("metadata", children=[node])
    head = [c for c in doc.root.children if c.ns is None and c.tag in _HEAD]
    if head:
        splicer.insert_after(head[-1], wrapper)
    else:
        splicer.insert_first_child(doc.root, wrapper)
