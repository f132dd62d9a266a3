"""Resolving `hr:map` references in a domain to concrete host devices (SPEC §3).

Pure: takes the parsed domain, the store, a host inventory and the node name, and
returns the new document bytes. Only the referencing elements and the
`hr:resolution` record change; every other byte is kept. Resolving a resolved
domain again re-resolves it from its record, so the operation is idempotent and
is also how a domain is rewritten for another node (migration, restore).

Every device kind does its own part behind one interface (`core.kinds.base`): this
module finds the references (new `hr:map`/`hr:wwn` attributes, then the recorded
devices), asks each reference's kind to resolve and splice it, and writes the record.
"""

from __future__ import annotations

from ..model.errors import UnresolvableError
from ..model.records import frozen
from ..xml.domain import devices_of, domain_name
from ..xml.record import (
    HR_MAP,
    HR_WWN,
    Resolution,
    element_of_record,
    find_resolution_element,
    needs_store,
    without_store,
)
from ..xml.store import Store
from ..xml.xmldoc import Document, Element, Node, Splicer
from . import kinds as registry
from .kinds.base import Context
from .locate import pci_expectation
from .metadata import read_resolution

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..model.inventory import HostInventory
    from ..model.scsi import ScsiInventory
    from ..xml.record import Record
    from ..xml.store import Mapping
    from .kinds.base import Kind

__all__ = [
    "Resolved",
    "element_of_record",
    "needs_store",
    "pci_expectation",
    "resolve_domain",
    "wants_scsi",
    "without_store",
]

# Elements that conventionally open a domain; <metadata> goes after them.
_HEAD = ("name", "uuid", "genid", "title", "description")


@frozen
class Resolved:
    data: bytes
    resolution: Resolution | None
    warnings: tuple[str, ...] = ()


@frozen
class _Reference:
    """A device element to resolve: by its own kind (`kind` set: a LUN reference or a
    recorded device), or by the store mapping `ref` names (`kind` None: `hr:map`)."""

    el: Element
    kind: Kind | None
    ref: object

    @property
    def stage(self) -> int:
        return self.kind.stage if self.kind is not None else 1


# -- resolution ----------------------------------------------------------------


def _element_kind(ctx: Context, el: Element) -> str:
    """Which mapping kinds an element with `hr:map` takes, by the element: pci (also vf),
    usb or mdev."""
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


# Which mapping kinds each referencing element takes.
_ACCEPTED = {"pci": ("pci", "vf"), "usb": ("usb",), "mdev": ("mdev",)}


def _mapped_kind(ctx: Context, el: Element, name: str) -> tuple[Kind, Mapping]:
    """The kind of an `hr:map` reference: the store's mapping says it."""
    kind = _element_kind(ctx, el)
    mapping = ctx.store.get(name)
    if mapping is None:
        raise UnresolvableError(
            f"no mapping named {name!r} in {ctx.store.path}",
            where=ctx.doc.where(el),
            fix=ctx.fix_map_add(kind, name),
        )
    if mapping.kind not in _ACCEPTED[kind]:
        raise UnresolvableError(
            f"{name!r} is a {mapping.kind} mapping, but <{el.tag} type='{el.get('type')}'> needs a {' or '.join(_ACCEPTED[kind])} one",
            where=ctx.doc.where(el),
            fix="reference a mapping of the right kind",
        )
    if not mapping.allows(ctx.domain):  # most mappings allow any domain: no Location made
        ctx.check_allowed(mapping, ctx.doc.where(el))
    return registry.kind(mapping.kind), mapping


def _references(ctx: Context, previous: Resolution | None) -> list[_Reference]:
    """New references in document order, then the recorded devices; LUN/SCSI ones
    first (`Kind.stage`), as their records lead `hr:resolution`."""
    refs: list[_Reference] = []
    seen: set[int] = set()
    for el in devices_of(ctx.doc):
        if _candidate(el):
            scsi = registry.scsi_kind()
            ref = scsi.reference(ctx.doc, el)
            if ref is not None:
                refs.append(_Reference(el, scsi, ref))
                seen.add(id(el))
                continue
        if HR_WWN in el.attrs and HR_MAP not in el.attrs:
            raise UnresolvableError(
                f"hr:wwn references on <{el.tag}> are not supported by this build",
                where=ctx.doc.where(el),
                fix="name the LUN through a store mapping",
            )
        if HR_MAP in el.attrs:
            refs.append(_Reference(el, None, el.attrs[HR_MAP]))
            seen.add(id(el))
    records = previous.records if previous else ()
    # Dropped records are reported for the mapped kinds first, then LUNs (as 0.x did).
    for record in sorted(records, key=lambda r: -registry.of_record(r).stage):
        found = element_of_record(ctx.doc, record)
        if found is None:
            ctx.warnings.append(
                f"{record.label}: the device it was resolved to is no longer in the domain; record dropped"
            )
            continue
        if id(found) in seen:
            continue
        seen.add(id(found))
        kind = registry.of_record(record)
        if kind.stage == 0:
            refs.append(_Reference(found, kind, kind.recorded_reference(ctx.doc, found, record)))
        else:  # by its mapping, which may have changed kind since
            refs.append(_Reference(found, None, kind.recorded_reference(ctx.doc, found, record)))
    return sorted(refs, key=lambda r: r.stage)


def _candidate(el: Element) -> bool:
    """A <disk> or SCSI <hostdev> carrying a reference. Only then is the SCSI kind
    imported: PCI/USB domains (the hook's common case) do not pay for it."""
    return (HR_MAP in el.attrs or HR_WWN in el.attrs) and (
        el.tag == "disk" or (el.tag == "hostdev" and el.get("type") == "scsi")
    )


def wants_scsi(doc: Document) -> bool:
    """Does resolving or verifying `doc` need the node's SCSI inventory? Only LUN disks
    and SCSI hostdevs do; reading it scans every SCSI device of the host."""
    if any(_candidate(el) for el in devices_of(doc)):
        return True
    previous = read_resolution(doc)
    return previous is not None and any(registry.of_record(r).needs_scsi for r in previous.records)


def resolve_domain(
    doc: Document,
    store: Store,
    inventory: HostInventory,
    node: str,
    *,
    claimed: Iterable[object] = (),
    scsi: ScsiInventory | None = None,
    previous: Resolution | None = None,
    located: dict[object, object] | None = None,
) -> Resolved:
    """Resolve every reference (new `hr:map` attributes and recorded devices) for `node`.

    `claimed` are host devices held by other guests: pools skip them. PCI devices are
    named by their PciAddress, USB devices by ("usb", bus, device). `scsi` is the
    node's SCSI inventory, needed only by LUN disks and SCSI hostdevs. `previous` is the
    domain's record when the caller has read it already (else it is read here).
    `located` keeps what locating the store's PCI entries found, for the next calls with
    the same store and, per node, the same inventory (a fleet's `validate`: its entries
    are located once per run, not once per reference); the caller owns it.
    """
    ctx = Context(
        doc, store, inventory, node, domain_name(doc), set(claimed), scsi=scsi, located=located
    )
    if previous is None:
        previous = read_resolution(doc)
    refs = _references(ctx, previous)
    if not refs and previous is None:
        return Resolved(doc.data, None, ())
    splicer = Splicer(doc)
    records: list[Record] = []
    for ref in refs:
        kind, target = ref.kind, ref.ref
        if kind is None:
            assert isinstance(target, str)
            kind, target = _mapped_kind(ctx, ref.el, target)
        record, source = kind.resolve(ctx, ref.el, target)
        records.append(record)
        kind.splice(ctx, splicer, ref.el, record, source)
    resolution = Resolution(node, tuple(records))
    if resolution != previous:
        _write_resolution(doc, splicer, resolution)
    return Resolved(splicer.apply(), resolution, tuple(ctx.warnings))


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
