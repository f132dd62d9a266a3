"""What running guests hold: the devices a pool skips, and who holds a mapping's members.

Read from the running guests' XML as libvirt gives it (their hostdev sources and the
`hr:resolution` records the hook verified at their start). Pure: no libvirt, no I/O.
"""

from __future__ import annotations

from ..xml.domain import (
    devices_of,
    domain_name,
    is_pci_source_element,
    pci_source_address,
    usb_source,
)
from ..xml.store import MdevMapping, PciEntry, UsbEntry, VfEntry
from .mdev import MdevRecord
from .metadata import PciRecord, UsbRecord, read_resolution
from .sriov import VfRecord

# Not typing.TYPE_CHECKING: the wrapper's define path avoids importing typing.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..xml.store import Mapping
    from ..xml.xmldoc import Document
    from .metadata import Record


def held_by(doc: Document) -> set[object]:
    """What a running guest holds: its hostdev sources and the devices it was resolved to.

    Keys are those `resolve_domain` uses: a PciAddress, ("usb", bus, device) or
    ("mdev", uuid).
    """
    held: set[object] = set()
    for el in devices_of(doc):
        if is_pci_source_element(el):  # <interface type='hostdev'> holds a VF as well
            address = pci_source_address(doc, el)
            if address is not None:
                held.add(address)
        elif el.tag == "hostdev" and el.get("type") == "usb":
            src = usb_source(doc, el)
            if src is not None and src[2] is not None:
                held.add(("usb", src[2], src[3]))
    resolution = read_resolution(doc)
    for record in resolution.records if resolution else ():
        if isinstance(record, PciRecord):
            held.add(record.address)
        elif isinstance(record, UsbRecord) and record.bus is not None:
            held.add(("usb", record.bus, record.device))
        elif isinstance(record, MdevRecord):
            held.add(("mdev", record.uuid))
    return held


def claims_of(running: Iterable[Document], except_name: str) -> set[object]:
    """Every host device another running guest holds."""
    held: set[object] = set()
    for doc in running:
        if domain_name(doc) != except_name:
            held |= held_by(doc)
    return held


def _resolved_from(record: Record, entry: PciEntry | UsbEntry) -> bool:
    """Was `record` resolved from `entry`? The same comparison the hook makes between a
    record and the store (identity, slot and port path; a VF's index too)."""
    if isinstance(entry, UsbEntry):
        return (
            isinstance(record, UsbRecord)
            and record.identity == entry.identity
            and (entry.port_path is None or record.port_path == entry.port_path)
        )
    if isinstance(entry, VfEntry) != isinstance(record, VfRecord):
        return False
    if isinstance(record, VfRecord) and isinstance(entry, VfEntry) and record.index != entry.index:
        return False
    return (
        isinstance(record, PciRecord | MdevRecord)
        and record.identity == entry.identity
        and record.physical_slot == entry.physical_slot
        and record.port_path == entry.port_path
    )


def _recorded_at(record: Record) -> object:
    """Where the record says the entry's device was: what a store entry's address names
    (a VF's PF, an mdev's parent)."""
    if isinstance(record, VfRecord):
        return record.pf_address
    if isinstance(record, MdevRecord):
        return record.parent
    if isinstance(record, PciRecord):
        return record.address
    return None


def holders(mapping: Mapping, node: str, running: Iterable[Document]) -> dict[int, list[str]]:
    """The running guests holding each of `mapping`'s members on `node`, by the member's
    index in `mapping.entries` (every member on the node has a key; free ones hold []).

    A guest holds a member when one of its records was resolved from it (it still does
    after the device moved), or when a hostdev source of its names the member's address
    (a guest defined by hand holds the device just the same). Identical members with no
    slot, serial or port to tell them apart are told apart by the recorded address.
    """
    members = [
        (i, e)
        for i, e in enumerate(getattr(mapping, "entries", ()))
        if isinstance(e, PciEntry | UsbEntry) and e.node == node
    ]
    out: dict[int, list[str]] = {i: [] for i, _ in members}
    by_address = not isinstance(mapping, MdevMapping)  # an mdev member is a parent GPU
    for doc in running:
        hits: set[int] = set()
        resolution = read_resolution(doc)
        for record in resolution.records if resolution else ():
            if record.map != mapping.name:
                continue
            candidates = [(i, e) for i, e in members if _resolved_from(record, e)]
            if len(candidates) > 1:
                at = _recorded_at(record)
                candidates = [(i, e) for i, e in candidates if getattr(e, "address", None) == at]
            if len(candidates) == 1:
                hits.add(candidates[0][0])
        held = held_by(doc) if by_address else set()
        for i, entry in members:
            # A VF member's address is its PF's, which no guest holds as such.
            if type(entry) is PciEntry and entry.address in held:
                hits.add(i)
        for i in sorted(hits):
            out[i].append(domain_name(doc))
    return out
