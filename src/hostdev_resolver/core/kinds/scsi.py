"""The LUN/SCSI kind: `<disk type='block' device='lun'>` and `<hostdev type='scsi'>`
named by `hr:map` (a `lun`, `scsi` or `vhba` mapping) or by `hr:wwn` alone, recorded as
`hr:lun`/`hr:scsi`. The matching itself (paths, multipath maps, FC paths, vports) is
`core.scsiresolve`; this is its face to the resolver and the start-time check (see
`base` for the interface), and the `map add lun|scsi|vhba` capture. Only this kind
needs the node's SCSI inventory.
"""

from __future__ import annotations

import posixpath

from ...model.errors import AmbiguousError, InputError, Location, UnresolvableError
from ...model.pciaddress import decimal_digits
from ...model.scsi import FcLunPath, LunIdentity, ScsiAddress
from ...model.wwn import Wwn, parse_optional
from ...xml.record import HR_MAP, HR_WWN, element_of_record
from ...xml.store import VhbaMapping, WwnMapping
from ..scsiresolve import (
    ScsiRecord,
    ScsiReference,
    locate_fc_path,
    paths_text,
    resolve_scsi,
    scsi_record,
    scsi_reference,
    stored_identity,
    verify_scsi,
)
from .base import denied, insert_source, redefine

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    from ...model.scsi import ScsiDevice, ScsiInventory
    from ...xml.store import Mapping
    from ...xml.xmldoc import Document, Element, Node, Splicer
    from .base import Check, Context, Finding


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
        return scsi_reference(doc, el)

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


# -- capture (map add) -----------------------------------------------------------------


def _one_lun(paths: list[ScsiDevice], what: str) -> LunIdentity:
    if not paths:
        raise UnresolvableError(
            f"no LUN with {what} on this host",
            fix="see 'hostdev-resolver inventory' for the LUNs this host has",
        )
    identities = {p.identity for p in paths if p.identity is not None}
    if len(identities) > 1:
        raise AmbiguousError(
            f"{what} fits {len(identities)} LUNs ({paths_text(paths)})",
            fix="give the full WWN, or pick the device with --device",
        )
    identity = paths[0].identity
    assert identity is not None
    return identity


def capture_lun(
    inventory: ScsiInventory,
    kind: Literal["lun", "scsi"],
    name: str,
    *,
    wwn: str | None = None,
    device: str | None = None,
    initiator: str | None = None,
    target: str | None = None,
    lun: int | None = None,
    description: str | None = None,
    allow: tuple[str, ...] = (),
) -> WwnMapping:
    """The `lun`/`scsi` mapping `map add` writes, with identities read from the host.

    Exactly one selector: `wwn` (any spelling; the full WWN is stored), `device`
    (`sdb`, `sg3` or `2:0:1:3`), or for `scsi` the FC path `initiator`+`target`+`lun`.
    """
    fc_given = [v is not None for v in (initiator, target, lun)]
    selectors = (wwn is not None) + (device is not None) + any(fc_given)
    if selectors != 1 or (any(fc_given) and not all(fc_given)):
        raise InputError(
            f"map add {kind} {name}: give exactly one of --wwn, --device, "
            "or --initiator + --target + --lun",
            fix="e.g. --wwn 0x5000c500a1b2c3d4",
        )
    fc_path = None
    if wwn is not None:
        want = Wwn.parse(wwn, name="--wwn")
        found = _one_lun(inventory.find(LunIdentity(wwn=want)), f"WWN {want}")
    elif device is not None:
        found = _device_identity(inventory, device)
    else:
        if kind != "scsi":
            raise InputError(
                "an FC path (--initiator/--target/--lun) names a scsi mapping",
                fix="use 'map add scsi'",
            )
        assert initiator is not None and target is not None and lun is not None
        fc_path = FcLunPath(
            Wwn.parse(initiator, name="--initiator"), Wwn.parse(target, name="--target"), lun
        )
        at = locate_fc_path(fc_path, inventory, Location())
        if at.identity is None:
            raise UnresolvableError(f"{at.address} cannot be read: {at.problem}")
        found = at.identity
    stored = stored_identity(found)
    return WwnMapping(
        name,
        description,
        allow,
        None,
        stored.wwn,
        kind,
        stored.t10_id,
        stored.serial,
        stored.vendor,
        stored.model,
        fc_path,
    )


def _device_identity(inventory: ScsiInventory, text: str) -> LunIdentity:
    value = posixpath.basename(text.strip())
    if decimal_digits(value[:1]) or value.startswith("scsi_host"):
        dev = inventory.device(ScsiAddress.parse(value))
    else:
        dev = next(
            (d for d in inventory.devices if value in (d.block, d.generic)),
            None,
        )
    if dev is None:
        raise UnresolvableError(
            f"no SCSI device {text!r} on this host",
            fix="give sdX, sgN or host:channel:target:lun as 'hostdev-resolver inventory' lists them",
        )
    if dev.identity is None:
        raise UnresolvableError(f"{dev.address} cannot be read: {dev.problem}")
    return dev.identity


def capture_vhba(
    inventory: ScsiInventory,
    name: str,
    *,
    wwnn: str,
    wwpn: str,
    parent_wwnn: str | None = None,
    parent_wwpn: str | None = None,
    parent_fabric: str | None = None,
    description: str | None = None,
    allow: tuple[str, ...] = (),
) -> VhbaMapping:
    """The `vhba` mapping `map add vhba` writes. With no parent given, the vport must
    exist and its parent's WWNN/WWPN are read from the host."""
    node = Wwn.parse(wwnn, name="--wwnn")
    port = Wwn.parse(wwpn, name="--wwpn")
    p_node = parse_optional(parent_wwnn, name="--parent-wwnn")
    p_port = parse_optional(parent_wwpn, name="--parent-wwpn")
    fabric = parse_optional(parent_fabric, name="--parent-fabric")
    if p_node is None and p_port is None and fabric is None:
        vport = inventory.fc_host_by_wwpn(port)
        parent = inventory.fc_host(vport.parent) if vport and vport.parent is not None else None
        if vport is None or vport.wwnn != node or parent is None:
            raise UnresolvableError(
                f"no NPIV vport with WWNN {node} WWPN {port} on this host to read its parent from",
                fix="give --parent-wwnn and --parent-wwpn, or --parent-fabric",
            )
        p_node, p_port = parent.wwnn, parent.wwpn
    mapping = VhbaMapping(name, description, allow, None, node, port, p_node, p_port, fabric)
    if (p_node is None) != (p_port is None) or ((p_node is not None) == (fabric is not None)):
        raise InputError(
            "give the parent as --parent-wwnn and --parent-wwpn, or as --parent-fabric",
            fix="never by host number: it changes on reboot",
        )
    return mapping
