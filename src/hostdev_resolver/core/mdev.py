"""Mediated devices (vGPU and the like) named by type, parent identity and a fixed UUID
(issue 14).

A guest gets `<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address
uuid='…'/></source></hostdev>`. The UUID is generated once at `map add` and kept in the
store, so the guest always sees the same device; the parent (a GPU, a NIC...) is
recorded as a `pci` mapping records a device and is located the same way. The mdev
must exist on a parent with room before QEMU starts: the hook creates it at `prepare
begin` (mdev_supported_types/TYPE/create) unless it exists already, and removes at
`release end` only the ones it created.
"""

from __future__ import annotations

from ..model.errors import InputError, Location
from ..model.identity import (
    PciIdentity,
    parse_uuid,
    pci_identity_attributes,
    pci_identity_from_attributes,
)
from ..model.pciaddress import PciAddress
from ..model.pcifacts import facts_of
from ..model.records import field, frozen
from ..xml.xmldoc import Node
from .locate import Status, describe_pci, locate_pci, pci_expectation

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..model.inventory import HostInventory, PciDevice
    from ..model.pcifacts import PciFacts
    from ..xml.store import PciEntry, Store
    from ..xml.xmldoc import Document, Element
    from .locate import PciLocation


def new_uuid() -> str:
    import uuid

    return str(uuid.uuid4())


@frozen
class MdevRecord:
    """`<hr:mdev map= uuid= type= parent= vendor= device= .../>`: the parent's identity
    as the store records it, where it was found, and the mdev's type and UUID."""

    map: str
    uuid: str
    mdev_type: str
    parent: PciAddress
    identity: PciIdentity
    physical_slot: str | None = None
    port_path: str | None = None
    line: int | None = field(default=None, compare=False)

    kind = "mdev"

    @property
    def label(self) -> str:
        return self.map

    def to_node(self) -> Node:
        attrs = {
            "map": self.map,
            "uuid": self.uuid,
            "type": self.mdev_type,
            "parent": str(self.parent),
        }
        attrs |= pci_identity_attributes(self.identity)
        if self.physical_slot is not None:
            attrs["slot"] = self.physical_slot
        if self.port_path is not None:
            attrs["port-path"] = self.port_path
        return Node("hr:mdev", attrs)

    def matches_element(self, doc: Document, el: Element) -> bool:
        return mdev_source_uuid(el) == self.uuid and is_mdev_hostdev(el)


def is_mdev_hostdev(el: Element) -> bool:
    return (
        el.tag == "hostdev"
        and el.get("mode", "subsystem") == "subsystem"
        and el.get("type") == "mdev"
    )


def mdev_source_uuid(el: Element) -> str | None:
    source = el.find("source")
    address = source.find("address") if source is not None else None
    uuid = address.get("uuid") if address is not None else None
    return uuid.lower() if uuid is not None else None


def mdev_record(doc: Document, el: Element) -> MdevRecord:
    where = doc.where(el)

    def missing(name: str) -> InputError:
        return InputError(
            f"hr:mdev record has no {name} attribute",
            where=where,
            fix="re-resolve the domain with 'hostdev-resolver resolve' or 'hostdev-virsh define'",
        )

    for name in ("map", "uuid", "type", "parent"):
        if el.get(name) is None:
            raise missing(name)
    return MdevRecord(
        map=el.attrs["map"],
        uuid=parse_uuid(el.attrs["uuid"], where),
        mdev_type=el.attrs["type"],
        parent=PciAddress.parse(el.attrs["parent"], where),
        identity=pci_identity_from_attributes(el.attrs, where, missing),
        physical_slot=el.get("slot"),
        port_path=el.get("port-path"),
        line=el.line,
    )


# -- choosing a parent -----------------------------------------------------------------


@frozen
class MdevPlacement:
    """The parent an mdev mapping lands on now, and whether the mdev exists there."""

    entry: PciEntry
    parent: PciDevice
    location: PciLocation
    exists: bool
    available: int | None  # free instances of the type on that parent, None = unknown


def _free(facts: PciFacts | None, parent: PciAddress, type_id: str) -> int | None:
    if facts is None:
        return None
    t = facts.mdev_type(parent, type_id)
    return 0 if t is None else (t.available or 0)


def room_elsewhere(inventory: HostInventory, type_id: str, besides: set[PciAddress]) -> str:
    """Other parents on the host with room for `type_id`, in words."""
    facts = facts_of(inventory)
    if facts is None:
        return "other parents cannot be seen from this host source"
    room = []
    for parent in facts.mdev_parents():
        if parent in besides:
            continue
        t = facts.mdev_type(parent, type_id)
        if t is not None and t.available:
            room.append(f"{parent} ({t.available} free)")
    if not room:
        return f"no other parent on this host has room for {type_id}"
    return "parents with room: " + ", ".join(room)


def no_room_message(
    name: str,
    mapping_type: str,
    uuid: str,
    parents: list[tuple[PciAddress, int | None]],
    inventory: HostInventory,
) -> str:
    where = ", ".join(f"{p} (available_instances {'?' if n is None else n})" for p, n in parents)
    which, has = ("its parent", "has") if len(parents) == 1 else ("its parents", "have")
    return (
        f"{name}: mdev {uuid} of type {mapping_type} does not exist and {which} "
        f"{where} {has} no room for one; "
        + room_elsewhere(inventory, mapping_type, {p for p, _ in parents})
    )


@frozen
class MdevChoice:
    """The outcome of placing an mdev: a placement, or why there is none (`status` is the
    first parent's locate status, or "no-room" when parents are there but full)."""

    placement: MdevPlacement | None
    status: str
    problems: tuple[str, ...] = ()


def place_mdev(
    name: str, uuid: str, type_id: str, entries: tuple[PciEntry, ...], inventory: HostInventory
) -> MdevChoice:
    """Where the mdev goes: the parent that already has it, else the first located parent
    with a free instance of the type (a pool of parents is tried in store order)."""
    facts = facts_of(inventory)
    existing = facts.mdev(uuid) if facts is not None else None
    problems: list[str] = []
    status = Status.MISSING
    located: list[tuple[PciEntry, PciLocation, PciDevice]] = []
    for entry in entries:
        loc = locate_pci(pci_expectation(entry), inventory)
        if loc.device is None:
            if not problems:
                status = loc.status
            problems.append(f"{describe_pci(name, entry.node, loc)} (the parent of mdev {uuid})")
            continue
        located.append((entry, loc, loc.device))
    if existing is not None:
        for entry, loc, dev in located:
            if existing.parent != dev.address:
                continue
            if existing.type_id is not None and existing.type_id != type_id:
                return MdevChoice(
                    None,
                    Status.MISMATCH,
                    (
                        f"{name}: mdev {uuid} exists on {dev.address} with type "
                        f"{existing.type_id}, not {type_id}",
                    ),
                )
            return MdevChoice(MdevPlacement(entry, dev, loc, True, None), Status.OK)
        return MdevChoice(
            None,
            Status.MISMATCH,
            (
                f"{name}: mdev {uuid} exists on {existing.parent or 'a non-PCI parent'}, "
                "which is not a parent this mapping names",
            ),
        )
    full: list[tuple[PciAddress, int | None]] = []
    for entry, loc, dev in located:
        free = _free(facts, dev.address, type_id)
        if free is None or free > 0:
            return MdevChoice(MdevPlacement(entry, dev, loc, False, free), Status.OK)
        full.append((dev.address, free))
    if full:
        return MdevChoice(None, "no-room", (no_room_message(name, type_id, uuid, full, inventory),))
    return MdevChoice(None, status, tuple(problems))


def describe_placement(name: str, node: str, p: MdevPlacement, uuid: str, type_id: str) -> str:
    moved = ""
    if p.location.status == Status.SHIFTED:
        moved = f" (the parent moved from {p.entry.address})"
    if p.exists:
        return f"{name}: mdev {uuid} ({type_id}) exists on {p.parent.address}{moved} on node {node}"
    free = "" if p.available is None else f", {p.available} free"
    return (
        f"{name}: mdev {uuid} ({type_id}) is created on {p.parent.address}{moved} at start "
        f"on node {node}{free}"
    )


# -- the hook's creations --------------------------------------------------------------


@frozen
class MdevCreation:
    """An mdev the hook creates at start (and removes at release)."""

    uuid: str
    parent: PciAddress
    mdev_type: str
    map: str

    def create_path(self) -> str:
        return f"bus/pci/devices/{self.parent}/mdev_supported_types/{self.mdev_type}/create"

    def remove_path(self) -> str:
        return f"bus/mdev/devices/{self.uuid}/remove"

    def to_json(self) -> dict[str, str]:
        return {
            "uuid": self.uuid,
            "parent": str(self.parent),
            "type": self.mdev_type,
            "map": self.map,
        }

    @classmethod
    def from_json(cls, data: object, where: Location) -> MdevCreation:
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) for k in ("uuid", "parent", "type")
        ):
            raise InputError("state entry of a created mdev without uuid/parent/type", where=where)
        return cls(
            parse_uuid(data["uuid"], where),
            PciAddress.parse(data["parent"], where),
            data["type"],
            str(data.get("map", "")),
        )


def plan_mdevs(
    records: list[MdevRecord], store: Store, inventory: HostInventory, node: str
) -> tuple[MdevCreation, ...]:
    """The mdevs to create for these (verified) records: those that do not exist yet,
    on the parent the store's entry is located at now."""
    from ..xml.store import MdevMapping

    facts = facts_of(inventory)
    out = []
    for record in records:
        if facts is not None and facts.mdev(record.uuid) is not None:
            continue  # defined by mdevctl / nodedev-define, or left by an earlier start
        mapping = store.get(record.map)
        parent = record.parent
        if isinstance(mapping, MdevMapping):
            choice = place_mdev(
                record.map, record.uuid, record.mdev_type, mapping.entries_on(node), inventory
            )
            if choice.placement is not None:
                parent = choice.placement.parent.address
        out.append(MdevCreation(record.uuid, parent, record.mdev_type, record.map))
    return tuple(out)
