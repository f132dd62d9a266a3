"""The USB kind: `<hostdev type='usb'>` named through a `usb` mapping, recorded as
`hr:usb` (see `base` for the interface)."""

from __future__ import annotations

from ...model.errors import RefusedError
from ...model.identity import UsbIdentity
from ...xml.domain import usb_source
from ...xml.record import UsbRecord, usb_record
from ...xml.xmldoc import Node
from ..locate import Status, UsbExpectation, describe_usb, locate_usb
from .base import Hit, Mapped, Miss, check_mapped, follow, resolve_pool, splice_mapped

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model.inventory import HostInventory
    from ...xml.store import Mapping, UsbEntry, UsbMapping
    from ...xml.xmldoc import Document, Element, Splicer
    from .base import Check, Context, Finding


def usb_entries(mapping: Mapping, record: UsbRecord, node: str) -> list[UsbEntry]:
    """The store's entries on this node with the identity the record was resolved against."""
    from ...xml.store import UsbMapping

    if not isinstance(mapping, UsbMapping):
        return []
    return [e for e in mapping.entries_on(node) if e.identity == record.identity]


def capture(
    inventory: HostInventory,
    node: str,
    vendor: int,
    product: int,
    *,
    serial: str | None = None,
    port: str | None = None,
    offline: bool = False,
) -> UsbEntry:
    """The store entry `map add usb` writes: the one plugged-in device with these IDs
    (and `serial`, `port`), or with `offline` the identity as given when none is."""
    from ...xml.store import UsbEntry

    matches = [
        d
        for d in inventory.usb_devices()
        if (d.identity.vendor, d.identity.product) == (vendor, product)
        and (serial is None or d.identity.serial == serial)
        and (port is None or d.port_path == port)
    ]
    wanted = f"{vendor:04x}:{product:04x}" + (f" serial {serial}" if serial else "")
    if not matches:
        if offline:
            return UsbEntry(node, UsbIdentity(vendor, product, serial), port)
        raise RefusedError(
            f"no USB device {wanted} is plugged in on node {node}",
            fix="plug it in, or pass --offline to record the identity as typed",
        )
    if len(matches) > 1:
        at = ", ".join(f"{m.port_path} (serial {m.identity.serial or 'none'})" for m in matches)
        raise RefusedError(
            f"{len(matches)} USB devices {wanted} on node {node}: {at}",
            fix="pick one with --serial S or --port PATH",
        )
    dev = matches[0]
    # A device without a serial is told apart from its twins by the port it is in.
    twins = [
        d
        for d in inventory.usb_devices()
        if (d.identity.vendor, d.identity.product) == (vendor, product)
    ]
    return UsbEntry(
        node,
        dev.identity,
        dev.port_path if dev.identity.serial is None and len(twins) > 1 else port,
    )


class UsbKind(Mapped):
    name = "usb"

    def read_record(self, doc: Document, el: Element) -> UsbRecord:
        return usb_record(doc, el)

    def resolve(self, ctx: Context, el: Element, mapping: UsbMapping) -> tuple[UsbRecord, Node]:
        def locate(entry: UsbEntry) -> Hit | Miss:
            loc = locate_usb(
                UsbExpectation(entry.identity, port_path=entry.port_path), ctx.inventory
            )
            if loc.found is None:
                return Miss(
                    describe_usb(mapping.name, ctx.node, loc), loc.status == Status.AMBIGUOUS
                )
            dev = loc.found
            children = [
                Node("vendor", {"id": f"0x{dev.identity.vendor:04x}"}),
                Node("product", {"id": f"0x{dev.identity.product:04x}"}),
            ]
            # libvirt picks a USB device by vendor/product alone when that is unique, and
            # then finds it again after a replug; bus/device (which change on replug) are
            # written only when another device has the same IDs.
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
            busy = f"{mapping.name}: bus {dev.bus} device {dev.device} is already in use"
            return Hit(
                ("usb", dev.bus, dev.device), busy, record, Node("source", children=children)
            )

        fix = "plug the device in, or re-map it with 'hostdev-resolver map add usb'"
        record, source = resolve_pool(ctx, el, mapping, "usb", locate, fix)
        assert isinstance(record, UsbRecord)
        return record, source

    def splice(
        self, ctx: Context, splicer: Splicer, el: Element, record: UsbRecord, source: Node
    ) -> None:
        src = usb_source(ctx.doc, el)
        same = src == (record.identity.vendor, record.identity.product, record.bus, record.device)
        splice_mapped(splicer, el, same, source)

    def verify(self, check: Check, record: UsbRecord) -> Finding:
        checked = check_mapped(check, record, usb_entries)
        if not isinstance(checked, tuple):
            return checked
        _mapping, entries = checked
        base, node, domain = check.subject(record), check.node, check.domain
        # Identity and port come from the store; bus/device from the domain only say which
        # position the domain pinned (they change on replug, which is what is checked).
        loc = locate_usb(
            UsbExpectation(entries[0].identity, record.bus, record.device, entries[0].port_path),
            check.inventory,
        )
        fix = None
        found_at = None
        if loc.status == Status.SHIFTED and loc.found is not None:
            found_at = f"{loc.found.bus}:{loc.found.device}"
            fix = follow(domain)
        elif loc.status != Status.OK:
            fix = "plug the device in, or re-map it with 'hostdev-resolver map add usb …'"
        address = f"{record.bus}:{record.device}" if record.bus is not None else None
        return base.finding(
            status=loc.status,
            message=describe_usb(record.map, node, loc),
            fix=fix,
            address=address,
            found_at=found_at,
        )


KIND = UsbKind()
