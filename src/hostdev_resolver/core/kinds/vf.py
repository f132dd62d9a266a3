"""The SR-IOV VF kind: `<hostdev type='pci'>` and `<interface type='hostdev'>` named
through a `vf` mapping (a PF and an index, `core.sriov`), recorded as `hr:vf`
(see `base` for the interface)."""

from __future__ import annotations

from ...xml.domain import pci_source_address
from ...xml.xmldoc import Node
from ..locate import Status
from ..sriov import VfRecord, describe_vf, locate_vf, vf_fix, vf_record
from .base import Hit, Mapped, Miss, check_mapped, follow, resolve_pool, splice_mapped

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model.pciaddress import PciAddress
    from ...xml.store import Mapping, PciEntry, VfEntry, VfMapping
    from ...xml.xmldoc import Document, Element, Splicer
    from .base import Check, Context, Finding


def vf_entries(mapping: Mapping, record: VfRecord, node: str) -> list[VfEntry]:
    """The store's entries on this node that a VF record says it was resolved from."""
    from ...xml.store import VfEntry, VfMapping

    if not isinstance(mapping, VfMapping):
        return []
    return [
        e
        for e in mapping.entries_on(node)
        if isinstance(e, VfEntry)
        and e.index == record.index
        and e.identity == record.identity
        and e.physical_slot == record.physical_slot
        and e.port_path == record.port_path
    ]


def _pci_source(el: Element, address: PciAddress) -> Node:
    attrs = address.xml_attributes()
    if el.tag == "interface":  # domain.rng: an interface's hostdev address says its type
        attrs = {"type": "pci", **attrs}
    return Node("source", children=[Node("address", attrs)])


class VfKind(Mapped):
    name = "vf"

    def read_record(self, doc: Document, el: Element) -> VfRecord:
        return vf_record(doc, el)

    def resolve(self, ctx: Context, el: Element, mapping: VfMapping) -> tuple[VfRecord, Node]:
        """VF `index` of the PF the store names, wherever the PF is now (sriov.py)."""
        from ...xml.store import VfEntry

        def locate(entry: PciEntry) -> Hit | Miss:
            assert isinstance(entry, VfEntry)
            loc = locate_vf(entry, ctx.inventory)
            vf = loc.vf
            pf = loc.pf.device
            if vf is None or pf is None or loc.status not in (Status.OK, Status.SHIFTED):
                return Miss(
                    describe_vf(mapping.name, ctx.node, loc),
                    loc.pf.status == Status.AMBIGUOUS,
                    vf_fix(mapping.name, ctx.node, loc),
                )
            warning = None
            if loc.status == Status.SHIFTED:
                warning = (
                    f"{describe_vf(mapping.name, ctx.node, loc)}; using it — refresh the store with "
                    f"'hostdev-resolver map add vf {mapping.name} --node {ctx.node} --pf {pf.address} --index {entry.index}'"
                )
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
            busy = f"{mapping.name}: {vf.address} is already in use"
            return Hit(vf.address, busy, record, _pci_source(el, vf.address), warning)

        fix = ctx.fix_map_add("vf", mapping.name)
        record, source = resolve_pool(ctx, el, mapping, "vf", locate, fix)
        assert isinstance(record, VfRecord)
        return record, source

    def splice(
        self, ctx: Context, splicer: Splicer, el: Element, record: VfRecord, source: Node
    ) -> None:
        same = pci_source_address(ctx.doc, el) == record.address
        splice_mapped(splicer, el, same, source)

    def verify(self, check: Check, record: VfRecord) -> Finding:
        """The store's PF, located now, must have VF `index` at the address the domain uses."""
        checked = check_mapped(check, record, vf_entries)
        if not isinstance(checked, tuple):
            return checked
        _mapping, entries = checked
        base, node, domain = check.subject(record), check.node, check.domain
        located = [(e, locate_vf(e, check.inventory)) for e in entries]
        for entry, loc in located:
            vf, pf = loc.vf, loc.pf.device
            if vf is None or pf is None or loc.status not in (Status.OK, Status.SHIFTED):
                continue
            if vf.address == record.address:
                message = describe_vf(record.map, node, loc)
                if loc.status == Status.SHIFTED:
                    message = (
                        f"{record.map}: {vf.address} on node {node} is VF {entry.index} of the mapped "
                        f"PF, now at {pf.address} (the store still records {entry.address}; refresh it "
                        f"with 'hostdev-resolver map add vf {record.map} --node {node} --pf {pf.address} "
                        f"--index {entry.index}')"
                    )
                return base.finding(status=Status.OK, message=message, address=str(record.address))
            # The PF (moved or not) has VF `index` elsewhere: the domain's address is stale.
            moved = (
                f"the PF moved from {entry.address} to {pf.address} and its VF {entry.index} is now at {vf.address}"
                if loc.status == Status.SHIFTED
                else f"VF {entry.index} of PF {pf.address} is now at {vf.address}"
            )
            return base.finding(
                status=Status.SHIFTED,
                message=(
                    f"{record.map}: {domain} uses {record.address} on node {node}, which is not "
                    f"VF {entry.index} of the mapped PF any more: {moved}"
                ),
                fix=follow(domain),
                address=str(record.address),
                found_at=str(vf.address),
            )
        _entry, loc = located[0]
        return base.finding(
            status=loc.status if loc.status != Status.OK else Status.MISSING,
            message=describe_vf(record.map, node, loc),
            fix=vf_fix(record.map, node, loc),
            address=str(record.address),
        )


KIND = VfKind()
