"""Checking a resolved domain against the host: the hook's start-time check (SPEC §6).

For every device recorded in the domain's `hr:resolution`: the store still has the
mapping and still allows this domain, the record still matches the store (so a
domain file cannot claim an identity the root-owned store never gave it), the
domain still points at the recorded device, and that device is present, the same,
not shifted. One `Finding` per device, from the record's kind (`Kind.verify`,
`core.kinds`); pure, no I/O.
"""

from __future__ import annotations

from ..xml.domain import devices_of, domain_name
from ..xml.record import HR_MAP, HR_WWN
from . import kinds as registry
from .kinds.base import Check, Finding, redefine
from .metadata import read_resolution

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..model.inventory import HostInventory
    from ..model.scsi import ScsiInventory
    from ..xml.record import Resolution
    from ..xml.store import Store
    from ..xml.xmldoc import Document

__all__ = ["Finding", "unresolved_references", "verify_domain"]


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
    resolution: Resolution | None = None,
) -> list[Finding]:
    """`scsi`: the node's SCSI inventory; without it a SCSI record is never "ok".
    `resolution`: the domain's record when the caller has read it already."""
    if resolution is None:
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
                fix=redefine(domain),
                source=doc.source,
            )
        ]
    check = Check(doc, store, inventory, node, domain, scsi)
    return [registry.of_record(r).verify(check, r) for r in resolution.records]
