"""Checking a resolved domain against the host: the hook's start-time check (SPEC §6).

For every device recorded in the domain's `hr:resolution`: the store still has the
mapping and still allows this domain, the record still matches the store (so a
domain file cannot claim an identity the root-owned store never gave it), the
domain still points at the recorded device, and that device is present, the same,
not shifted. One `Finding` per device; pure, no I/O.
"""

from __future__ import annotations

from ..model.records import frozen
from ..xml.domain import devices_of, domain_name
from ..xml.store import (
    Mapping,
    MdevMapping,
    PciMapping,
    Store,
    UsbMapping,
    VfEntry,
    VfMapping,
    VhbaMapping,
    WwnMapping,
)
from .locate import (
    Status,
    UsbExpectation,
    describe_pci,
    describe_usb,
    locate_pci,
    locate_usb,
    lookalike_fix,
)
from .mdev import MdevRecord
from .metadata import HR_MAP, HR_WWN, PciRecord, UsbRecord, read_resolution
from .resolution import element_of_record, pci_expectation
from .sriov import VfRecord

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from ..model.inventory import HostInventory
    from ..model.scsi import ScsiInventory
    from ..xml.store import PciEntry, UsbEntry
    from ..xml.xmldoc import Document
    from .metadata import Record
    from .scsiresolve import ScsiRecord


@frozen
class Finding:
    map: str
    node: str
    # ok, shifted, mismatch, missing, ambiguous, denied, unmapped, stale, wrong-node, unresolved
    status: str
    message: str
    fix: str | None = None
    source: str | None = None
    line: int | None = None
    address: str | None = None
    found_at: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}: " if self.source and self.line else ""
        return f"{where}{self.message}" + (f" — {self.fix}" if self.fix else "")


@frozen
class _Subject:
    map: str
    node: str
    source: str
    line: int | None

    def finding(
        self,
        *,
        status: str,
        message: str,
        fix: str | None = None,
        address: str | None = None,
        found_at: str | None = None,
    ) -> Finding:
        return Finding(
            self.map, self.node, status, message, fix, self.source, self.line, address, found_at
        )


def _denied(base: _Subject, name: str, domain: str) -> Finding:
    return base.finding(
        status="denied",
        message=f"{name}: the mapping does not allow domain {domain!r}",
        fix=f"add <allow domain='{domain}'/> to mapping {name!r}",
    )


def _redefine(domain: str) -> str:
    return f"run 'hostdev-virsh define' for {domain} again (or 'hostdev-resolver resolve')"


def _follow(domain: str) -> str:
    """The fix for a device that moved where it can be followed: `hostdev-virsh start`
    re-resolves and redefines such a domain before starting it (docs/wrapper.md)."""
    return (
        f"start it with 'hostdev-virsh start {domain}', which follows the device, "
        "or define it again with 'hostdev-virsh define'"
    )


def unresolved_references(doc: Document, node: str) -> list[Finding]:
    """Devices that still carry `hr:map`/`hr:wwn`: never resolved, so they have no
    concrete source for libvirt and nothing recorded to verify. (A domain libvirt
    holds never has them: it drops attributes of foreign namespaces.)"""
    out = []
    for el in devices_of(doc):
        for attr, spelled in ((HR_MAP, "hr:map"), (HR_WWN, "hr:wwn")):
            value = el.get(attr)
            if value is None:
                continue
            out.append(
                Finding(
                    map=value,
                    node=node,
                    status="unresolved",
                    message=f"{value}: the <{el.tag}> is not resolved (it still carries {spelled}='{value}')",
                    fix=(
                        f"resolve the domain first: 'hostdev-resolver resolve {doc.source} -o OUT', "
                        f"or define it with 'hostdev-virsh define {doc.source}'"
                    ),
                    source=doc.source,
                    line=el.line,
                )
            )
    return out


def verify_domain(
    doc: Document,
    store: Store,
    inventory: HostInventory,
    node: str,
    *,
    scsi: ScsiInventory | None = None,
) -> list[Finding]:
    """`scsi`: the node's SCSI inventory; without it a SCSI record is never "ok"."""
    resolution = read_resolution(doc)
    if resolution is None:
        return []
    domain = domain_name(doc)
    if resolution.node != node:
        return [
            Finding(
                map="*",
                node=node,
                status="wrong-node",
                message=f"{domain} was resolved for node {resolution.node}, not for this node {node}",
                fix=_redefine(domain),
                source=doc.source,
            )
        ]
    return [
        _verify_record(doc, store, inventory, node, domain, r)
        if isinstance(r, PciRecord | UsbRecord | MdevRecord)
        else _verify_scsi_record(doc, store, scsi, node, domain, r)
        for r in resolution.records
    ]


def _scsi_in_store(mapping: Mapping, record: ScsiRecord) -> bool:
    """The store still names what the record was resolved against (the domain file
    cannot claim a LUN the root-owned store never gave it)."""
    if isinstance(mapping, VhbaMapping):
        return record.vhba is not None and record.vhba == mapping.wwpn
    if not isinstance(mapping, WwnMapping):
        return False
    if mapping.fc_path is not None and mapping.fc_path != record.fc_path:
        return False
    expected = mapping.identity
    if expected is None:
        return record.fc_path is not None
    return record.identity is not None and expected.matches(record.identity)


def _verify_scsi_record(
    doc: Document,
    store: Store,
    scsi: ScsiInventory | None,
    node: str,
    domain: str,
    record: ScsiRecord,
) -> Finding:
    base = _Subject(record.label, node, doc.source, record.line)
    where = record.dev or str(record.address)
    if record.map is not None:
        mapping = store.get(record.map)
        if mapping is None or mapping.kind not in ("lun", "scsi", "vhba"):
            return base.finding(
                status="unmapped",
                message=f"{record.map}: no lun/scsi/vhba mapping of that name in {store.path}",
                fix=f"re-add it with 'hostdev-resolver map add {record.kind} {record.map} --wwn WWN' or drop the device from {domain}",
            )
        if not mapping.allows(domain):
            return _denied(base, record.map, domain)
        if not _scsi_in_store(mapping, record):
            return base.finding(
                status="stale",
                message=f"{record.map}: the store's mapping no longer names the LUN {domain} was resolved against",
                fix=_redefine(domain),
            )
    if element_of_record(doc, record) is None:
        return base.finding(
            status="stale",
            message=f"{record.label}: {domain} no longer has a device with source {where}",
            fix=_redefine(domain),
        )
    if scsi is None:
        return base.finding(
            status="missing",
            message=f"{record.label}: no SCSI inventory of node {node} to check {where} against",
            fix="verify on the node itself",
        )
    from .scsiresolve import verify_scsi

    problems = verify_scsi(record, scsi)
    if not problems:
        return base.finding(status="ok", message=f"{record.label}: {where} ok", address=where)
    return base.finding(
        status=problems[0].status,
        message="; ".join(p.what for p in problems),
        fix=problems[0].fix.replace("re-resolve the domain", f"re-resolve {domain}"),
        address=where,
    )


def _verify_record(
    doc: Document,
    store: Store,
    inventory: HostInventory,
    node: str,
    domain: str,
    record: PciRecord | UsbRecord | MdevRecord,
) -> Finding:
    base = _Subject(record.map, node, doc.source, record.line)
    mapping = store.get(record.map)
    if mapping is None or mapping.kind != record.kind:
        return base.finding(
            status="unmapped",
            message=f"{record.map}: no {record.kind} mapping of that name in {store.path}",
            fix=f"re-add it with 'hostdev-resolver map add {record.kind} {record.map} …' or drop the device from {domain}",
        )
    if not mapping.allows(domain):
        return _denied(base, record.map, domain)
    entries = _store_entries(mapping, record, node)
    if not entries:
        return base.finding(
            status="stale",
            message=f"{record.map}: the store's entry for node {node} no longer matches what {domain} was resolved against",
            fix=_redefine(domain),
        )
    if element_of_record(doc, record) is None:
        return base.finding(
            status="stale",
            message=f"{record.map}: {domain} no longer has a <hostdev> with the recorded source",
            fix=_redefine(domain),
        )
    if isinstance(record, VfRecord):
        return _verify_vf(base, inventory, node, domain, record, entries)
    if isinstance(record, MdevRecord):
        # Any parent of the pool will do: the hook creates the mdev where there is room.
        pool = mapping.entries_on(node) if isinstance(mapping, MdevMapping) else ()
        return _verify_mdev(base, inventory, node, record, list(pool))
    if isinstance(record, PciRecord):
        return _verify_pci(base, inventory, node, domain, record, entries)
    return _verify_usb(base, inventory, node, domain, record, entries)


def _store_entries(mapping: Mapping, record: Record, node: str) -> list[Any]:
    """The store's entries on this node that the record says it was resolved from."""
    if isinstance(mapping, MdevMapping) and isinstance(record, MdevRecord):
        if (mapping.uuid, mapping.mdev_type) != (record.uuid, record.mdev_type):
            return []
    elif isinstance(record, VfRecord):
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
    if isinstance(mapping, PciMapping) and isinstance(record, PciRecord | MdevRecord):
        return [
            e
            for e in mapping.entries_on(node)
            if e.identity == record.identity
            and e.physical_slot == record.physical_slot
            and e.port_path == record.port_path
        ]
    if isinstance(mapping, UsbMapping) and isinstance(record, UsbRecord):
        return [e for e in mapping.entries_on(node) if e.identity == record.identity]
    return []


def _verify_pci(
    base: _Subject,
    inventory: HostInventory,
    node: str,
    domain: str,
    record: PciRecord,
    entries: list[PciEntry],
) -> Finding:
    """The store's entry, located on this host now, must land on the domain's device.

    The entry is located, not the record: the domain file is written by whoever may
    define domains, so the address, IOMMU group and the rest come from the root-owned
    store. A domain naming an identical card the store never gave it is refused.
    """
    located = [(e, locate_pci(pci_expectation(e), inventory)) for e in entries]
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
    _entry, loc = next(((e, lc) for e, lc in located if e.address == record.address), located[0])
    device = loc.device
    if device is not None and loc.status == Status.OK:
        return base.finding(
            status="stale",
            message=(
                f"{record.map}: {domain} uses {record.address} on node {node}, but the store's "
                f"{record.map} there is the device at {device.address}"
            ),
            fix=_redefine(domain),
            address=str(record.address),
            found_at=str(device.address),
        )
    found_at = None
    if device is not None:  # SHIFTED: the device left the address the domain uses
        found_at = str(device.address)
        fix = (
            f"{_follow(domain)}; or re-map it with "
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


def _verify_usb(
    base: _Subject,
    inventory: HostInventory,
    node: str,
    domain: str,
    record: UsbRecord,
    entries: list[UsbEntry],
) -> Finding:
    # Identity and port come from the store; bus/device from the domain only say which
    # position the domain pinned (they change on replug, which is what is checked).
    loc = locate_usb(
        UsbExpectation(entries[0].identity, record.bus, record.device, entries[0].port_path),
        inventory,
    )
    fix = None
    found_at = None
    if loc.status == Status.SHIFTED and loc.found is not None:
        found_at = f"{loc.found.bus}:{loc.found.device}"
        fix = _follow(domain)
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


# -- SR-IOV VFs and mediated devices (issue 14) -----------------------------------------


def _verify_vf(
    base: _Subject,
    inventory: HostInventory,
    node: str,
    domain: str,
    record: VfRecord,
    entries: list[VfEntry],
) -> Finding:
    """The store's PF, located now, must have VF `index` at the address the domain uses."""
    from .sriov import describe_vf, locate_vf, vf_fix

    located = [(e, locate_vf(e, inventory)) for e in entries]
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
            fix=_follow(domain),
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


def _verify_mdev(
    base: _Subject,
    inventory: HostInventory,
    node: str,
    record: MdevRecord,
    entries: list[PciEntry],
) -> Finding:
    """The parent is present and the same device; the mdev exists there, or the type has
    room for the hook to create it at start."""
    from .mdev import describe_placement, place_mdev

    choice = place_mdev(record.map, record.uuid, record.mdev_type, tuple(entries), inventory)
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
