"""Edits of the mapping store, as byte splices of its document (an administrator's
comments survive): `StoreEditor`, for `map add|remove` and the agent's writes.

Apart from `xml.store` (the store's values and parser) because only the commands that
write the store need it: the hook and `hostdev-virsh define` read the store on every
start and import only the parser.
"""

from __future__ import annotations

from ..model.errors import InputError, Location, RefusedError
from ..model.records import frozen
from .store import (
    NS,
    PciEntry,
    UsbEntry,
    VfEntry,
    parse_store,
    read_pci_entry,
    read_usb_entry,
    read_vf_entry,
)
from .xmldoc import Document, Element, Node, Splicer

# Not typing.TYPE_CHECKING: see model/records.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..model.pciaddress import PciAddress


class StoreEditor:
    """Edits of one store document, applied as byte splices (comments survive)."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.store = parse_store(doc)
        self.splicer = Splicer(doc)

    def _element(self, name: str) -> Element | None:
        for el in self.doc.root.children:
            if el.get("name") == name:
                return el
        return None

    def add_entry(
        self,
        kind: str,
        name: str,
        entry: PciEntry | UsbEntry | None,
        *,
        description: str | None = None,
        allow: tuple[str, ...] = (),
        extra: dict[str, str] | None = None,
        pool: bool = False,
    ) -> Added:
        """Add a node entry to mapping `name` (created if absent).

        An entry for the same device on that node is refreshed. Another device
        re-maps the name on that node (the device moved, or was swapped), unless `pool`
        asks to add it as one more member of the node's pool. A pool is re-mapped only
        where the new device is a member that moved (same identity, with a serial);
        otherwise the caller must say which member goes.
        """
        existing = self.store.get(name)
        if existing is None:
            attrs = {"name": name, **(extra or {})}
            if description:
                attrs["description"] = description
            children = [entry.to_node()] if entry is not None else []
            children += [Node("allow", {"domain": p}) for p in allow]
            self.splicer.append_child(self.doc.root, Node(kind, attrs, children))
            return Added("added")
        if existing.kind != kind:
            raise InputError(
                f"mapping {name!r} exists as a {existing.kind} mapping, not {kind}",
                where=Location(self.doc.source, existing.line),
                fix="choose another name or 'map remove' it first",
            )
        el = self._element(name)
        assert el is not None
        if entry is None:
            raise InputError(
                f"mapping {name!r} already exists", where=Location(self.doc.source, existing.line)
            )
        here: list[tuple[Element, PciEntry | UsbEntry]] = []
        for node_el in el.findall("node", NS):
            if node_el.get("name") == entry.node:
                here.append((node_el, _editor_entry(self.doc, node_el, kind)))
        same = [(n, e) for n, e in here if _same_device(e, entry)]
        moved = [(n, e) for n, e in here if _moved_device(e, entry)]
        outcome: Added
        if same:
            self.splicer.replace_element(same[0][0], entry.to_node())
            outcome = Added("refreshed", same[0][1])
        elif not here or pool:
            nodes = el.findall("node", NS)
            if nodes:
                self.splicer.insert_after(nodes[-1], entry.to_node())
            elif el.children:
                self.splicer.insert_first_child(el, entry.to_node())
            else:
                self.splicer.append_child(el, entry.to_node())
            outcome = Added("pooled" if here else "added")
        elif len(here) == 1 or len(moved) == 1:
            node_el, old = here[0] if len(here) == 1 else moved[0]
            self.splicer.replace_element(node_el, entry.to_node())
            outcome = Added("re-mapped", old)
        else:
            members = ", ".join(_describe_entry(e) for _, e in here)
            raise RefusedError(
                f"mapping {name!r} is a pool of {len(here)} devices on node {entry.node} "
                f"({members}); which one {_describe_entry(entry)} replaces is not clear",
                where=Location(self.doc.source, existing.line),
                fix=f"add --pool to make it one more member, or drop one first with "
                f"'hostdev-resolver map remove {name} --node {entry.node} --address BDF'",
            )
        if description is not None:
            self.splicer.set_attribute(el, "description", description)
        for attr, value in (extra or {}).items():
            self.splicer.set_attribute(el, attr, value)
        have = set(existing.allow)
        allows = el.findall("allow", NS)
        for pattern in allow:
            if pattern not in have:
                node = Node("allow", {"domain": pattern})
                if allows:
                    self.splicer.insert_after(allows[-1], node)
                else:
                    self.splicer.append_child(el, node)
        return outcome

    def add_entries(
        self,
        kind: str,
        name: str,
        entries: list[PciEntry],
        *,
        description: str | None = None,
        allow: tuple[str, ...] = (),
        extra: dict[str, str] | None = None,
    ) -> None:
        """Several entries at once (an mdev's pool of parents): a new mapping is written
        whole; an existing one gets each entry as `add_entry` adds it."""
        if self.store.get(name) is None:
            attrs = {"name": name, **(extra or {})}
            if description:
                attrs["description"] = description
            unique: list[PciEntry] = []
            for entry in entries:
                if not any(_same_device(entry, seen) for seen in unique):
                    unique.append(entry)
            children = [e.to_node() for e in unique]
            children += [Node("allow", {"domain": p}) for p in allow]
            self.splicer.append_child(self.doc.root, Node(kind, attrs, children))
            return
        for i, entry in enumerate(entries):
            first = i == 0
            self.add_entry(
                kind,
                name,
                entry,
                description=description if first else None,
                allow=allow if first else (),
                extra=extra if first else None,
                pool=True,  # several parents on one node are the mapping's pool
            )

    def remove(self, name: str, node: str | None = None, address: PciAddress | None = None) -> int:
        """Remove a mapping, or only its entries on `node`, or only the one of them at
        `address` (a member of a PCI pool); returns how many went."""
        el = self._element(name)
        if el is None:
            raise InputError(
                f"no mapping named {name!r}",
                where=Location(self.doc.source),
                fix="see 'hostdev-resolver map list'",
            )
        if node is None:
            self._remove_element(el)
            return 1
        gone = [n for n in el.findall("node", NS) if n.get("name") == node]
        if not gone:
            raise InputError(
                f"mapping {name!r} has no entry for node {node!r}",
                where=Location(self.doc.source, el.line),
            )
        if address is not None:
            if el.tag not in ("pci", "mdev"):
                raise InputError(
                    f"--address picks a member of a PCI pool (or an mdev's parent); {name!r} "
                    f"is a {el.tag} mapping",
                    where=Location(self.doc.source, el.line),
                    fix=f"drop --address to remove its entries on node {node}",
                )
            members = gone
            gone = [n for n in members if read_pci_entry(self.doc, n).address == address]
            if not gone:
                at = ", ".join(str(read_pci_entry(self.doc, n).address) for n in members)
                raise InputError(
                    f"mapping {name!r} has no member at {address} on node {node} (it has {at})",
                    where=Location(self.doc.source, el.line),
                    fix="see 'hostdev-resolver map show " + name + "'",
                )
        for n in gone:
            self._remove_element(n)
        return len(gone)

    def _remove_element(self, el: Element) -> None:
        data = self.doc.data
        start = data.rfind(b"\n", 0, el.start)
        if start >= 0 and data[start + 1 : el.start].strip() == b"":
            self.splicer.replace(start, el.end, b"")
        else:
            self.splicer.replace(el.start, el.end, b"")

    def result(self) -> bytes:
        return self.splicer.apply()


def _editor_entry(doc: Document, el: Element, kind: str) -> PciEntry | UsbEntry:
    if kind == "vf":
        return read_vf_entry(doc, el)
    return read_pci_entry(doc, el) if kind in ("pci", "mdev") else read_usb_entry(doc, el)


def _same_device(a: PciEntry | UsbEntry, b: PciEntry | UsbEntry) -> bool:
    if a.node != b.node:
        return False
    if isinstance(a, VfEntry) or isinstance(b, VfEntry):
        return (
            isinstance(a, VfEntry)
            and isinstance(b, VfEntry)
            and (a.address, a.index) == (b.address, b.index)
        )
    if isinstance(a, PciEntry) and isinstance(b, PciEntry):
        return a.address == b.address
    if isinstance(a, UsbEntry) and isinstance(b, UsbEntry):
        # Twins without a serial are told apart by the port they are in.
        return a.identity == b.identity and (
            a.identity.serial is not None or a.port_path == b.port_path
        )
    return False


def _moved_device(old: PciEntry | UsbEntry, new: PciEntry | UsbEntry) -> bool:
    """The same device at another address: the identity, serial included, is equal."""
    return (
        isinstance(old, PciEntry)
        and isinstance(new, PciEntry)
        and old.identity.serial is not None
        and old.identity == new.identity
    )


def _describe_entry(entry: PciEntry | UsbEntry) -> str:
    if isinstance(entry, PciEntry):
        return f"{entry.address} [{entry.identity.ids}]"
    where = f" port {entry.port_path}" if entry.port_path else ""
    serial = f" serial {entry.identity.serial}" if entry.identity.serial else ""
    return f"{entry.identity.ids}{serial}{where}"


@frozen
class Added:
    """What `StoreEditor.add_entry` did: added, refreshed, re-mapped (from `old`) or pooled."""

    action: str
    old: PciEntry | UsbEntry | None = None
