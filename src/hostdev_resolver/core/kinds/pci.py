"""The PCI kind: `<hostdev type='pci'>` and `<interface type='hostdev'>` named through a
`pci` mapping, recorded as `hr:pci` (see `base` for the interface)."""

from __future__ import annotations

from ...model.errors import RefusedError
from ...xml.domain import pci_source_address
from ...xml.record import PciRecord, pci_record
from ...xml.xmldoc import Node
from ..locate import (
    Status,
    describe_pci,
    locate_pci,
    lookalike_fix,
    pci_expectation,
)
from .base import Hit, Mapped, Miss, check_mapped, follow, redefine, resolve_pool, splice_mapped

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model.inventory import HostInventory
    from ...model.pciaddress import PciAddress
    from ...xml.store import Mapping, PciEntry, PciMapping
    from ...xml.xmldoc import Document, Element, Splicer
    from ..mdev import MdevRecord
    from .base import Check, Context, Finding


def pci_entries(mapping: Mapping, record: PciRecord | MdevRecord, node: str) -> list[PciEntry]:
    """The store's entries on this node that a PCI record (or an mdev's parent) says it
    was resolved from."""
    return [
        e
        for e in mapping_entries(mapping, node)
        if e.identity == record.identity
        and e.physical_slot == record.physical_slot
        and e.port_path == record.port_path
    ]


def mapping_entries(mapping: Mapping, node: str) -> tuple[PciEntry, ...]:
    from ...xml.store import PciMapping

    return mapping.entries_on(node) if isinstance(mapping, PciMapping) else ()


def capture(inventory: HostInventory, node: str, address: PciAddress) -> PciEntry:
    """The store entry `map add pci` writes for the device at `address` on this host."""
    from ...xml.store import PciEntry

    dev = inventory.pci_device(address)
    if dev is None:
        raise RefusedError(
            f"no PCI device at {address} on node {node}",
            fix="see 'hostdev-resolver inventory' for the devices this host has",
        )
    if dev.is_bridge:
        raise RefusedError(
            f"{address} is a PCI bridge ({dev.identity.ids}); bridges cannot be passed through"
        )
    return PciEntry(
        node=node,
        address=dev.address,
        identity=dev.identity,
        iommu_group=dev.iommu_group,
        numa_node=dev.numa_node,
        physical_slot=dev.physical_slot,
        port_path=dev.port_path,
    )


class PciKind(Mapped):
    name = "pci"

    def read_record(self, doc: Document, el: Element) -> PciRecord:
        return pci_record(doc, el)

    def resolve(self, ctx: Context, el: Element, mapping: PciMapping) -> tuple[PciRecord, Node]:
        def locate(entry: PciEntry) -> Hit | Miss:
            loc = locate_pci(pci_expectation(entry), ctx.inventory)
            device = loc.device
            if device is None:
                return Miss(
                    describe_pci(mapping.name, ctx.node, loc),
                    loc.status == Status.AMBIGUOUS,
                    lookalike_fix(mapping.name, ctx.node, loc),
                )
            warning = None
            if device.address != entry.address:
                warning = (
                    f"{describe_pci(mapping.name, ctx.node, loc)}; using it — refresh the store with "
                    f"'hostdev-resolver map add pci {mapping.name} --node {ctx.node} --address {device.address}'"
                )
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
            source = Node("source", children=[Node("address", device.address.xml_attributes())])
            busy = f"{mapping.name}: {device.address} is already in use"
            return Hit(device.address, busy, record, source, warning)

        located = ctx.located
        if located is not None:  # one run's documents: each entry is located once
            fresh = locate

            def locate(entry: PciEntry) -> Hit | Miss:
                # Keyed by the entry's identity, and holding it: an id is unique only
                # while its object lives.
                key = (ctx.node, mapping.name, id(entry))
                kept = located.get(key)
                if not (isinstance(kept, tuple) and kept[0] is entry):
                    kept = located[key] = (entry, fresh(entry))
                outcome = kept[1]
                assert isinstance(outcome, Hit | Miss)
                return outcome

        fix = ctx.fix_map_add("pci", mapping.name)
        record, source = resolve_pool(ctx, el, mapping, "pci", locate, fix)
        assert isinstance(record, PciRecord)
        return record, source

    def splice(
        self, ctx: Context, splicer: Splicer, el: Element, record: PciRecord, source: Node
    ) -> None:
        same = pci_source_address(ctx.doc, el) == record.address
        splice_mapped(splicer, el, same, source)

    def verify(self, check: Check, record: PciRecord) -> Finding:
        """The store's entry, located on this host now, must land on the domain's device.

        The entry is located, not the record: the domain file is written by whoever may
        define domains, so the address, IOMMU group and the rest come from the root-owned
        store. A domain naming an identical card the store never gave it is refused.
        """
        checked = check_mapped(check, record, pci_entries)
        if not isinstance(checked, tuple):
            return checked
        _mapping, entries = checked
        base, node, domain = check.subject(record), check.node, check.domain
        located = [(e, locate_pci(pci_expectation(e), check.inventory)) for e in entries]
        for entry, loc in located:
            device = loc.device
            if device is not None and device.address == record.address:
                message = describe_pci(record.map, node, loc)
                if loc.status == Status.SHIFTED:  # resolved after the move; the store lags
                    message = (
                        f"{record.map}: {device.address} on node {node} is the mapped device (the "
                        f"store still records {entry.address}; refresh it with 'hostdev-resolver "
                        f"map add pci {record.map} --node {node} --address {device.address}')"
                    )
                return base.finding(status=Status.OK, message=message, address=str(record.address))
        _entry, loc = next(
            ((e, lc) for e, lc in located if e.address == record.address), located[0]
        )
        device = loc.device
        if device is not None and loc.status == Status.OK:
            return base.finding(
                status="stale",
                message=(
                    f"{record.map}: {domain} uses {record.address} on node {node}, but the store's "
                    f"{record.map} there is the device at {device.address}"
                ),
                fix=redefine(domain),
                address=str(record.address),
                found_at=str(device.address),
            )
        found_at = None
        if device is not None:  # SHIFTED: the device left the address the domain uses
            found_at = str(device.address)
            fix = (
                f"{follow(domain)}; or re-map it with "
                f"'hostdev-resolver map add pci {record.map} --node {node} --address {found_at}'"
            )
        elif loc.status == Status.AMBIGUOUS:
            fix = f"record a distinguishing slot or serial: 'hostdev-resolver map add pci {record.map} --node {node} --address BDF'"
        elif (remap := lookalike_fix(record.map, node, loc)) is not None:
            fix = f"{remap}; otherwise put the device back"
        else:
            fix = f"put the device back, or re-map it with 'hostdev-resolver map add pci {record.map} --node {node} --address BDF'"
        return base.finding(
            status=loc.status,
            message=describe_pci(record.map, node, loc),
            fix=fix,
            address=str(record.address),
            found_at=found_at,
        )


KIND = PciKind()
