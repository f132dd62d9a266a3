"""The mediated-device kind: `<hostdev type='mdev'>` named through an `mdev` mapping
(a type, a fixed UUID, possible parents; `core.mdev`), recorded as `hr:mdev`
(see `base` for the interface)."""

from __future__ import annotations

from ...model.errors import AmbiguousError, RefusedError, UnresolvableError
from ...xml.xmldoc import Node
from ..locate import Status, describe_pci
from ..mdev import MdevRecord, describe_placement, mdev_record, place_mdev
from .base import Mapped, check_mapped, splice_mapped
from .pci import pci_entries

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...xml.store import Mapping, MdevMapping, PciEntry
    from ...xml.xmldoc import Document, Element, Splicer
    from .base import Check, Context, Finding


def mdev_entries(mapping: Mapping, record: MdevRecord, node: str) -> list[PciEntry]:
    """The parents on this node the record could have been resolved from: the store's
    mapping still has the record's UUID and type, and an entry with its parent's identity."""
    from ...xml.store import MdevMapping

    if not isinstance(mapping, MdevMapping):
        return []
    if (mapping.uuid, mapping.mdev_type) != (record.uuid, record.mdev_type):
        return []
    return pci_entries(mapping, record, node)


class MdevKind(Mapped):
    name = "mdev"

    def read_record(self, doc: Document, el: Element) -> MdevRecord:
        return mdev_record(doc, el)

    def resolve(self, ctx: Context, el: Element, mapping: MdevMapping) -> tuple[MdevRecord, Node]:
        """The mapping's mdev on the parent that has it, or one with room (mdev.py)."""
        entries = mapping.entries_on(ctx.node)
        if not entries:
            raise ctx.no_entry(el, "mdev", mapping.name)
        key = ("mdev", mapping.uuid)
        if key in ctx.claimed:
            ctx.check_conflict(el, key, mapping.name, 1)
            raise UnresolvableError(
                f"{mapping.name}: mdev {mapping.uuid} is already in use",
                where=ctx.doc.where(el),
                fix="give each guest its own mdev mapping (each has its own UUID)",
            )
        choice = place_mdev(mapping.name, mapping.uuid, mapping.mdev_type, entries, ctx.inventory)
        placement = choice.placement
        if placement is None:
            error: type[RefusedError] = (
                AmbiguousError if choice.status == Status.AMBIGUOUS else UnresolvableError
            )
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
        ctx.claim(key, el)
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

    def splice(
        self, ctx: Context, splicer: Splicer, el: Element, record: MdevRecord, source: Node
    ) -> None:
        splice_mapped(splicer, el, record.matches_element(ctx.doc, el), source)

    def verify(self, check: Check, record: MdevRecord) -> Finding:
        """The parent is present and the same device; the mdev exists there, or the type
        has room for the hook to create it at start."""
        checked = check_mapped(check, record, mdev_entries)
        if not isinstance(checked, tuple):
            return checked
        mapping, _entries = checked
        base, node = check.subject(record), check.node
        # Any parent of the pool will do: the hook creates the mdev where there is room.
        from ...xml.store import MdevMapping

        pool = mapping.entries_on(node) if isinstance(mapping, MdevMapping) else ()
        choice = place_mdev(record.map, record.uuid, record.mdev_type, tuple(pool), check.inventory)
        if choice.placement is not None:
            return base.finding(
                status=Status.OK,
                message=describe_placement(
                    record.map, node, choice.placement, record.uuid, record.mdev_type
                ),
                address=record.uuid,
            )
        remap = (
            f"'hostdev-resolver map add mdev {record.map} --node {node} --parent BDF "
            f"--type {record.mdev_type} --uuid {record.uuid}'"
        )
        if choice.status == "no-room":
            fix = (
                "remove an unused mdev of that parent, start the guest on a node with room, "
                f"or add a parent with {remap}"
            )
        else:
            fix = f"put the parent back, or re-map it with {remap}"
        return base.finding(
            status=choice.status,
            message="; ".join(choice.problems),
            fix=fix,
            address=record.uuid,
        )


KIND = MdevKind()
