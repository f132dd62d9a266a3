"""The LUN/SCSI kind: `<disk type='block' device='lun'>` and `<hostdev type='scsi'>`
named by `hr:map` (a `lun`, `scsi` or `vhba` mapping) or by `hr:wwn` alone, recorded as
`hr:lun`/`hr:scsi`. The matching itself (paths, multipath maps, FC paths, vports) is
`core.scsiresolve`; this is its face to the resolver and the start-time check (see
`base` for the interface). Only this kind needs the node's SCSI inventory.
"""

from __future__ import annotations

from ...model.errors import UnresolvableError
from ...xml.record import HR_MAP, HR_WWN, element_of_record
from ...xml.store import VhbaMapping, WwnMapping
from ..scsiresolve import (
    ScsiRecord,
    ScsiReference,
    resolve_scsi,
    scsi_record,
    scsi_reference,
    verify_scsi,
)
from .base import denied, insert_source, redefine

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...xml.store import Mapping
    from ...xml.xmldoc import Document, Element, Node, Splicer
    from .base import Check, Context, Finding


def candidate(el: Element) -> bool:
    """A <disk> or SCSI <hostdev> carrying a reference. Only then are the SCSI modules
    imported: PCI/USB domains (the hook's common case) do not pay for them."""
    return (HR_MAP in el.attrs or HR_WWN in el.attrs) and (
        el.tag == "disk" or (el.tag == "hostdev" and el.get("type") == "scsi")
    )


def _in_store(mapping: Mapping, record: ScsiRecord) -> bool:
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


class ScsiKind:
    name = "scsi"
    stage = 0
    needs_scsi = True

    def read_record(self, doc: Document, el: Element) -> ScsiRecord:
        return scsi_record(doc, el)

    def reference(self, doc: Document, el: Element) -> ScsiReference | None:
        return scsi_reference(doc, el) if candidate(el) else None

    def recorded_reference(self, doc: Document, el: Element, record: ScsiRecord) -> ScsiReference:
        return record.reference(doc.where(el))

    def resolve(self, ctx: Context, el: Element, ref: ScsiReference) -> tuple[ScsiRecord, Node]:
        where = ctx.doc.where(el)
        if ctx.scsi is None:
            raise UnresolvableError(
                f"{ref.label}: no SCSI inventory for node {ctx.node} from this host source",
                where=where,
                fix="resolve on the node itself, or give --sysfs ROOT",
            )
        mapping = None
        if ref.map_name is not None:
            mapping = ctx.store.get(ref.map_name)
            if mapping is None:
                raise UnresolvableError(
                    f"no mapping named {ref.map_name!r} in {ctx.store.path}",
                    where=where,
                    fix=f"run 'hostdev-resolver map add {ref.element} {ref.map_name} --wwn WWN'",
                )
            ctx.check_allowed(mapping, where)
        result = resolve_scsi(ref, mapping, ctx.scsi)
        ctx.warnings.extend(result.warnings)
        record = result.record
        # A LUN is not claimed against other guests (shared disks are normal), only
        # against a second element of this domain.
        key = ("scsi", record.dev or str(record.address))
        if key in ctx.owner:
            ctx.check_conflict(el, key, ref.label, 1)
        ctx.owner[key] = el
        return record, result.source

    def splice(
        self, ctx: Context, splicer: Splicer, el: Element, record: ScsiRecord, source: Node
    ) -> None:
        for attr in (HR_MAP, HR_WWN):
            if attr in el.attrs:
                splicer.remove_attribute(el, el.qnames[attr])
        if record.matches_element(ctx.doc, el):
            return
        old = el.find("source")
        if old is None:
            insert_source(splicer, el, source)
        elif record.dev is not None:
            # a LUN disk's <source> may hold <reservations>, <seclabel>: change dev only
            splicer.set_attribute(old, "dev", record.dev)
        else:
            # written whole: an old protocol='iscsi' name=… source is replaced by the
            # adapter form, and must not lend it its attributes
            splicer.replace_element(old, source)

    def verify(self, check: Check, record: ScsiRecord) -> Finding:
        """Without the node's SCSI inventory a SCSI record is never "ok"."""
        base, node, domain = check.subject(record), check.node, check.domain
        where = record.dev or str(record.address)
        if record.map is not None:
            mapping = check.store.get(record.map)
            if mapping is None or mapping.kind not in ("lun", "scsi", "vhba"):
                return base.finding(
                    status="unmapped",
                    message=f"{record.map}: no lun/scsi/vhba mapping of that name in {check.store.path}",
                    fix=f"re-add it with 'hostdev-resolver map add {record.kind} {record.map} --wwn WWN' or drop the device from {domain}",
                )
            if not mapping.allows(domain):
                return denied(base, record.map, domain)
            if not _in_store(mapping, record):
                return base.finding(
                    status="stale",
                    message=f"{record.map}: the store's mapping no longer names the LUN {domain} was resolved against",
                    fix=redefine(domain),
                )
        if element_of_record(check.doc, record) is None:
            return base.finding(
                status="stale",
                message=f"{record.label}: {domain} no longer has a device with source {where}",
                fix=redefine(domain),
            )
        if check.scsi is None:
            return base.finding(
                status="missing",
                message=f"{record.label}: no SCSI inventory of node {node} to check {where} against",
                fix="verify on the node itself",
            )
        problems = verify_scsi(record, check.scsi)
        if not problems:
            return base.finding(status="ok", message=f"{record.label}: {where} ok", address=where)
        return base.finding(
            status=problems[0].status,
            message="; ".join(p.what for p in problems),
            fix=problems[0].fix.replace("re-resolve the domain", f"re-resolve {domain}"),
            address=where,
        )


KIND = ScsiKind()
