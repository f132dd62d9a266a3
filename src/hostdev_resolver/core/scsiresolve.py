"""Resolving and verifying LUN disks, SCSI hostdevs and NPIV vHBAs (SPEC §3, §6).

Pure: every function takes data (the reference read from the element, the store
mapping, a `scsi.ScsiInventory`) and returns data; nothing here reads the host.

What the LUN/SCSI kind (core/kinds/scsi.py) uses:

    ref = scsi_reference(doc, element)           # None: not a SCSI/LUN reference
    result = resolve_scsi(ref, mapping, scsi_inventory)
        # mapping: store.get(ref.map_name) (after the <allow> check), None for hr:wwn
        # result.source  -> xmldoc.Node('source'): replaces the element's <source>
        #                   (or is appended as its child when it has none)
        # result.record  -> ScsiRecord: result.record.to_node() goes in hr:resolution
        # result.warnings-> lines for stderr
    record = scsi_record(doc, record_element)    # hr:lun / hr:scsi back from <metadata>
    record.matches_element(doc, element)          # is this the element it describes?
    record.reference(where)                       # the ScsiReference to re-resolve it
    findings = verify_scsi(record, scsi_inventory) # [] = fine; else why the start is refused

    <disk type='block' device='lun' hr:map=…|hr:wwn=…> -> <source dev='/dev/disk/by-id/wwn-0x…'/>
    <hostdev mode='subsystem' type='scsi' hr:map=…|hr:wwn=…>
        -> <source><adapter name='scsi_hostN'/><address bus='C' target='T' unit='L'/></source>

Errors: a malformed WWN is InputError (exit 2); a LUN that is not there is
UnresolvableError, several paths with no multipath map is AmbiguousError, a vHBA
whose parent is not the recorded one is RefusedError (exit 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..model.errors import (
    AmbiguousError,
    InputError,
    Location,
    RefusedError,
    UnresolvableError,
)
from ..model.pciaddress import decimal_digits, parse_xml_uint, shown
from ..model.records import field, frozen
from ..model.scsi import FcHost, FcLunPath, LunIdentity, ScsiAddress, ScsiDevice, ScsiInventory
from ..model.wwn import Wwn, parse_optional
from ..xml.store import Mapping, VhbaMapping, WwnMapping
from ..xml.xmldoc import Document, Element, Node

if TYPE_CHECKING:
    from collections.abc import Sequence

HR_NS = "http://hostdev-resolver.org/xmlns/domain/1"
HR_MAP = f"{{{HR_NS}}}map"
HR_WWN = f"{{{HR_NS}}}wwn"
BY_ID = "/dev/disk/by-id/"

ElementKind = Literal["lun", "scsi"]  # <disk device='lun'>, <hostdev type='scsi'>


@frozen
class ScsiReference:
    """What one domain element asks for."""

    element: ElementKind
    where: Location
    map_name: str | None = None
    wwn: Wwn | None = None
    # bus/target/unit already in the element's <source><address>: used with a vhba mapping,
    # where the position of the LUN on the vHBA is the administrator's to give.
    address: tuple[int, int, int] | None = None

    @property
    def label(self) -> str:
        return self.map_name or str(self.wwn)


def _resolved_kind(el: Element) -> ElementKind | None:
    """The kind of element a record can describe: a block `<disk>` (LUN or disk) or a
    SCSI `<hostdev>`. Any other device (a file-backed disk, a cdrom, an interface) is
    simply not one; only an element that carries a reference must be a valid target."""
    if el.ns is not None:
        return None
    if el.tag == "disk" and el.get("type") == "block" and el.get("device") in ("lun", "disk"):
        return "lun"
    if el.tag == "hostdev" and el.get("type") == "scsi":
        return "scsi"
    return None


def _element_kind(doc: Document, el: Element) -> ElementKind | None:
    """The kind of a referencing element; InputError for a `<disk>` that cannot hold a LUN."""
    if el.tag == "disk" and el.ns is None:
        if el.get("device") not in ("lun", "disk"):
            return None
        if el.get("type") != "block":
            raise InputError(
                f"<disk type='{el.get('type')}' device='{el.get('device')}'> with an hr: LUN "
                "reference must be type='block'",
                where=doc.where(el),
                fix="write <disk type='block' device='lun'>",
            )
        return "lun"
    if el.tag == "hostdev" and el.ns is None and el.get("type") == "scsi":
        return "scsi"
    return None


def scsi_reference(doc: Document, el: Element) -> ScsiReference | None:
    """The reference on a `<disk>`/`<hostdev type='scsi'>`, None for other elements or
    when it has no `hr:map`/`hr:wwn`. A malformed `hr:wwn` is an InputError."""
    name, wwn_text = el.get(HR_MAP), el.get(HR_WWN)
    if name is None and wwn_text is None:
        return None
    kind = _element_kind(doc, el)
    if kind is None:
        return None
    where = doc.where(el)
    if name is not None and wwn_text is not None:
        raise InputError(
            "hr:map and hr:wwn on one element", where=where, fix="give one reference, not both"
        )
    address = None
    source = el.find("source")
    addr = source.find("address") if source is not None else None
    if kind == "scsi" and addr is not None:
        address = tuple(
            parse_xml_uint(addr.get(k) or "", k, doc.where(addr)) for k in ("bus", "target", "unit")
        )
    return ScsiReference(
        kind,
        where,
        name,
        parse_optional(wwn_text, name="hr:wwn", where=where),
        (address[0], address[1], address[2]) if address is not None else None,
    )


# -- the record ------------------------------------------------------------------------


@frozen
class ScsiRecord:
    """What was resolved, kept under <metadata> as `hr:lun` or `hr:scsi`.

    `identity` is the LUN's (from the host, full WWN); `dev` the disk's path;
    `address` the hostdev's H:C:T:L at resolution; `vhba` the vport's WWPN.
    """

    element: ElementKind
    map: str | None
    identity: LunIdentity | None
    dev: str | None = None
    multipath: str | None = None
    address: ScsiAddress | None = None
    fc_path: FcLunPath | None = None
    vhba: Wwn | None = None
    line: int | None = field(default=None, compare=False)

    @property
    def kind(self) -> ElementKind:
        return self.element

    @property
    def label(self) -> str:
        if self.map is not None:
            return self.map
        return self.identity.describe() if self.identity else "SCSI device"

    def to_node(self) -> Node:
        attrs: dict[str, str] = {}
        if self.map is not None:
            attrs["map"] = self.map
        ident = self.identity
        if ident is not None:
            if ident.wwn is not None:
                attrs["wwn"] = str(ident.wwn)
            for key, value in (
                ("t10-id", ident.t10_id),
                ("serial", ident.serial),
                ("vendor", ident.vendor),
                ("model", ident.model),
            ):
                if value is not None:
                    attrs[key] = value
        if self.dev is not None:
            attrs["dev"] = self.dev
        if self.multipath is not None:
            attrs["multipath"] = self.multipath
        if self.address is not None:
            attrs["address"] = str(self.address)
        if self.fc_path is not None:
            attrs["initiator"] = str(self.fc_path.initiator)
            attrs["target"] = str(self.fc_path.target)
            attrs["lun"] = str(self.fc_path.lun)
        if self.vhba is not None:
            attrs["vhba"] = str(self.vhba)
        return Node(f"hr:{self.element}", attrs)

    def matches_element(self, doc: Document, el: Element) -> bool:
        """Whether `el` is the element this record was written for (by its <source>)."""
        if _resolved_kind(el) != self.element:
            return False
        source = el.find("source")
        if source is None:
            return False
        if self.element == "lun":
            return source.get("dev") == self.dev
        adapter, addr = source.find("adapter"), source.find("address")
        if adapter is None or addr is None or self.address is None:
            return False
        # libvirt reads bus/target/unit with strtoul base 0: unit='0x1' is unit 1.
        try:
            position = tuple(
                parse_xml_uint(addr.get(k) or "", k) for k in ("bus", "target", "unit")
            )
        except InputError:
            return False  # not a position this record could have written
        recorded = (self.address.channel, self.address.target, self.address.lun)
        return adapter.get("name") == self.address.adapter and position == recorded

    def reference(self, where: Location) -> ScsiReference:
        """The reference that re-resolves this record (another node, a rescan)."""
        address = None
        if self.vhba is not None and self.address is not None:
            address = (self.address.channel, self.address.target, self.address.lun)
        wwn = None
        if self.map is None and self.identity is not None:
            wwn = self.identity.wwn
        return ScsiReference(self.element, where, self.map, wwn, address)


def scsi_record(doc: Document, el: Element) -> ScsiRecord:
    """Read an `hr:lun`/`hr:scsi` record back; InputError naming the bad attribute."""
    where = doc.where(el)
    if el.tag not in ("lun", "scsi"):
        raise InputError(f"hr:{el.tag} is not a SCSI record", where=where)
    wwn = parse_optional(el.get("wwn"), name="wwn", where=where)
    t10, serial = el.get("t10-id"), el.get("serial")
    identity = None
    if wwn is not None or t10 is not None or serial is not None:
        identity = LunIdentity(wwn, t10, serial, el.get("vendor"), el.get("model"))
    address_text = el.get("address")
    fc = [el.get(k) for k in ("initiator", "target", "lun")]
    fc_path = None
    if all(v is not None for v in fc):
        lun = fc[2] or ""
        if not decimal_digits(lun):
            raise InputError(f"hr:{el.tag} lun={shown(lun)} is not a number", where=where)
        fc_path = FcLunPath(
            Wwn.parse(fc[0] or "", name="initiator", where=where),
            Wwn.parse(fc[1] or "", name="target", where=where),
            int(lun),
        )
    kind: ElementKind = "lun" if el.tag == "lun" else "scsi"
    record = ScsiRecord(
        kind,
        el.get("map"),
        identity,
        el.get("dev"),
        el.get("multipath"),
        ScsiAddress.parse(address_text, where) if address_text is not None else None,
        fc_path,
        parse_optional(el.get("vhba"), name="vhba", where=where),
        el.line,
    )
    if kind == "lun" and record.dev is None:
        raise InputError("hr:lun record has no dev attribute", where=where, fix=_REDEFINE)
    if kind == "scsi" and record.address is None:
        raise InputError("hr:scsi record has no address attribute", where=where, fix=_REDEFINE)
    if record.identity is None and record.vhba is None:
        raise InputError(f"hr:{el.tag} record names no LUN", where=where, fix=_REDEFINE)
    return record


_REDEFINE = "re-resolve the domain with 'hostdev-virsh define' or 'hostdev-resolver resolve'"


# -- resolution ------------------------------------------------------------------------


@frozen
class ScsiResolution:
    source: Node
    record: ScsiRecord
    warnings: tuple[str, ...] = ()


def paths_text(paths: Sequence[ScsiDevice]) -> str:
    return ", ".join(
        f"{p.address.adapter}:{p.address.channel}:{p.address.target}:{p.address.lun}"
        + (f" ({p.block})" if p.block else "")
        for p in paths
    )


def _unreadable_note(inventory: ScsiInventory) -> str:
    bad = [d for d in inventory.devices if d.identity is None]
    if not bad:
        return ""
    return "; could not read " + ", ".join(f"{d.address} ({d.problem})" for d in bad)


def _map_add_fix(ref: ScsiReference) -> str:
    return (
        f"check the LUN is presented to this host (zoning, masking, iSCSI login) and "
        f"'hostdev-resolver inventory' lists it; re-map it with "
        f"'hostdev-resolver map add {'scsi' if ref.element == 'scsi' else 'lun'} {ref.label} --wwn WWN'"
    )


def locate_fc_path(path: FcLunPath, inventory: ScsiInventory, where: Location) -> ScsiDevice:
    """The device an FC path leads to now: the initiator port's host number, the target
    port's channel/target on it, then the LUN."""
    initiator = inventory.fc_host_by_wwpn(path.initiator)
    if initiator is None:
        raise UnresolvableError(
            f"no FC port with WWPN {path.initiator} on this host",
            where=where,
            fix="check the HBA is present (for an NPIV vport: create it first)",
        )
    targets = inventory.fc_targets_by_wwpn(initiator.host, path.target)
    if not targets:
        raise UnresolvableError(
            f"target port {path.target} is not visible from {initiator.adapter} "
            f"(WWPN {path.initiator})",
            where=where,
            fix="check the fabric zoning and the port state of both ports",
        )
    for target in targets:
        device = inventory.device(ScsiAddress(target.host, target.channel, target.target, path.lun))
        if device is not None:
            return device
    raise UnresolvableError(
        f"no LUN {path.lun} behind target {path.target} on {initiator.adapter}",
        where=where,
        fix="check the LUN masking on the array, then rescan the host",
    )


def _find_paths(
    ref: ScsiReference, identity: LunIdentity | None, fc_path: FcLunPath | None, inv: ScsiInventory
) -> list[ScsiDevice]:
    if fc_path is not None:
        device = locate_fc_path(fc_path, inv, ref.where)
        if identity is not None and (
            device.identity is None or not identity.matches(device.identity)
        ):
            found = device.identity.describe() if device.identity else "unreadable"
            raise RefusedError(
                f"{ref.label}: {fc_path} leads to {device.address} with {found}, "
                f"expected {identity.describe()}",
                where=ref.where,
                fix="the array presents another LUN there; re-map it with 'hostdev-resolver map add scsi'",
            )
        return [device]
    assert identity is not None
    paths = inv.find(identity)
    if not paths:
        raise UnresolvableError(
            f"{ref.label}: no LUN with {identity.describe()} on this host{_unreadable_note(inv)}",
            where=ref.where,
            fix=_map_add_fix(ref),
        )
    full = {p.identity.wwn for p in paths if p.identity is not None}
    if len(full) > 1:
        raise AmbiguousError(
            f"{ref.label}: {identity.describe()} is udev's short ID_WWN and fits "
            f"{len(full)} LUNs ({', '.join(sorted(str(w) for w in full if w))})",
            where=ref.where,
            fix="give the full 32-digit WWN (ID_WWN_WITH_EXTENSION)",
        )
    return paths


def _target(
    ref: ScsiReference, mapping: Mapping | None
) -> tuple[LunIdentity | None, FcLunPath | None]:
    if mapping is None:
        if ref.wwn is None:
            raise UnresolvableError(
                f"no mapping named {ref.map_name!r}",
                where=ref.where,
                fix=f"create it with 'hostdev-resolver map add lun {ref.map_name} --wwn WWN'",
            )
        return LunIdentity(wwn=ref.wwn), None
    if isinstance(mapping, WwnMapping):
        return mapping.identity, mapping.fc_path
    need = "a lun or scsi" if ref.element == "lun" else "a scsi, lun or vhba"
    raise UnresolvableError(
        f"{mapping.name!r} is a {mapping.kind} mapping; this element needs {need} mapping",
        where=ref.where,
        fix="reference a mapping of the right kind",
    )


def resolve_scsi(
    ref: ScsiReference, mapping: Mapping | None, inventory: ScsiInventory
) -> ScsiResolution:
    """Resolve one reference against the host's SCSI inventory (see module doc)."""
    if isinstance(mapping, VhbaMapping):
        if ref.element != "scsi":
            raise UnresolvableError(
                f"{mapping.name!r} is a vhba mapping; it goes on <hostdev type='scsi'>",
                where=ref.where,
                fix="name the LUN itself (a lun mapping or hr:wwn) on a <disk>",
            )
        return _resolve_vhba(ref, mapping, inventory)
    identity, fc_path = _target(ref, mapping)
    paths = _find_paths(ref, identity, fc_path, inventory)
    found = paths[0].identity
    assert found is not None
    # the record keeps the key the LUN is known by (full WWN, T10 ID or serial), not
    # every attribute the device reports: a firmware update must not fail the start
    device_identity = stored_identity(found)
    if ref.element == "lun":
        return _resolve_disk(ref, paths, device_identity, inventory)
    if len(paths) > 1:
        raise AmbiguousError(
            f"{ref.label}: the LUN is reachable through {len(paths)} paths "
            f"({paths_text(paths)}) and a SCSI hostdev takes one",
            where=ref.where,
            fix="pin one path with 'hostdev-resolver map add scsi NAME --initiator WWPN "
            "--target WWPN --lun N', or give the guest the multipath device as "
            "<disk type='block' device='lun'>",
        )
    device = paths[0]
    address = device.address
    record = ScsiRecord("scsi", ref.map_name, device_identity, address=address, fc_path=fc_path)
    return ScsiResolution(_hostdev_source(address), record)


def _hostdev_source(address: ScsiAddress) -> Node:
    return Node(
        "source",
        children=[
            Node("adapter", {"name": address.adapter}),
            Node(
                "address",
                {
                    "bus": str(address.channel),
                    "target": str(address.target),
                    "unit": str(address.lun),
                },
            ),
        ],
    )


def _resolve_disk(
    ref: ScsiReference, paths: list[ScsiDevice], identity: LunIdentity, inv: ScsiInventory
) -> ScsiResolution:
    warnings: list[str] = []
    multipath = inv.multipath_of(paths)
    if multipath is not None:
        # With dm-multipath the sdX paths are claimed by the map: opening one bypasses
        # failover, and udev's wwn- link may name either a path or the map depending on
        # rule order (multipath-tools 11-dm-mpath.rules). dm-uuid-mpath-* is unambiguous.
        dev = BY_ID + multipath.by_id_name
        record = ScsiRecord("lun", ref.map_name, identity, dev=dev, multipath=multipath.uuid)
        return ScsiResolution(Node("source", {"dev": dev}), record)
    if len(paths) > 1:
        raise AmbiguousError(
            f"{ref.label}: the LUN is reachable through {len(paths)} paths "
            f"({paths_text(paths)}) and no dm-multipath map holds them",
            where=ref.where,
            fix="set up multipathd for this LUN (then resolve again), or pin one path with "
            "'hostdev-resolver map add scsi NAME --initiator WWPN --target WWPN --lun N' "
            "and use <hostdev type='scsi'>",
        )
    device = paths[0]
    if device.block is None:
        raise UnresolvableError(
            f"{ref.label}: {device.address} is a {device.kind} with no block device",
            where=ref.where,
            fix="give it to the guest as <hostdev mode='subsystem' type='scsi'>",
        )
    name = identity.wwn.by_id_name if identity.wwn is not None else None
    if name is None:
        links = [
            n for n in inv.links_to(device.block) if not n.startswith("wwn-") and "-part" not in n
        ]
        links.sort(key=lambda n: (not n.startswith("scsi-"), n))
        if not links:
            raise UnresolvableError(
                f"{ref.label}: the LUN has no NAA WWN and {device.block} has no "
                "/dev/disk/by-id link" + ("" if inv.links is not None else " (no dev root read)"),
                where=ref.where,
                fix="check udev is running ('udevadm trigger'), or give the domain a path yourself",
            )
        name = links[0]
        warnings.append(
            f"{ref.label}: the LUN has no NAA WWN, so udev made no wwn- link; using "
            f"{BY_ID}{name} (from its {identity.describe()})"
        )
    elif inv.links is not None and inv.link_target(name) != device.block:
        warnings.append(
            f"{ref.label}: {BY_ID}{name} does not lead to {device.block} yet; "
            "the start-time check will refuse until udev has made it ('udevadm settle')"
        )
    dev = BY_ID + name
    return ScsiResolution(
        Node("source", {"dev": dev}),
        ScsiRecord("lun", ref.map_name, identity, dev=dev),
        tuple(warnings),
    )


def _parent_ok(mapping: VhbaMapping, parent: FcHost | None) -> bool:
    if parent is None:
        return False
    if mapping.parent_fabric is not None:
        return parent.fabric == mapping.parent_fabric
    return (parent.wwnn, parent.wwpn) == (mapping.parent_wwnn, mapping.parent_wwpn)


def _parent_text(mapping: VhbaMapping) -> str:
    if mapping.parent_fabric is not None:
        return f"an HBA on fabric {mapping.parent_fabric}"
    return f"the HBA with WWNN {mapping.parent_wwnn} WWPN {mapping.parent_wwpn}"


def find_vport(mapping: VhbaMapping, inventory: ScsiInventory, where: Location) -> FcHost:
    """The vport of a vhba mapping as it is now, checked against its recorded parent."""
    assert mapping.wwpn is not None
    vport = inventory.fc_host_by_wwpn(mapping.wwpn)
    if vport is None or vport.wwnn != mapping.wwnn:
        raise UnresolvableError(
            f"{mapping.name}: no NPIV vport with WWNN {mapping.wwnn} WWPN {mapping.wwpn} "
            "on this host",
            where=where,
            fix=f"create it under {_parent_text(mapping)} ('hostdev-virsh' does so on start, "
            "or 'virsh nodedev-create' with hostdev_resolver.core.scsiresolve.vhba_nodedev_xml)",
        )
    parent = inventory.fc_host(vport.parent) if vport.parent is not None else None
    if not _parent_ok(mapping, parent):
        found = (
            f"scsi_host{vport.parent} (WWNN {parent.wwnn} WWPN {parent.wwpn}, fabric {parent.fabric})"
            if parent is not None
            else "no FC parent"
        )
        raise RefusedError(
            f"{mapping.name}: vport {mapping.wwpn} hangs off {found}, expected {_parent_text(mapping)}",
            where=where,
            fix="delete the vport and create it under the right parent, or correct the mapping",
        )
    return vport


def _resolve_vhba(
    ref: ScsiReference, mapping: VhbaMapping, inventory: ScsiInventory
) -> ScsiResolution:
    vport = find_vport(mapping, inventory, ref.where)
    if ref.address is None:
        raise InputError(
            f"{mapping.name}: a vhba reference needs the LUN's position on the vHBA",
            where=ref.where,
            fix="write <source><address bus='0' target='T' unit='L'/></source> in the hostdev",
        )
    address = ScsiAddress(vport.host, *ref.address)
    device = inventory.device(address)
    if device is None or device.identity is None:
        why = "nothing" if device is None else f"an unreadable device ({device.problem})"
        raise UnresolvableError(
            f"{mapping.name}: {address.described} (vport {mapping.wwpn}) holds {why}",
            where=ref.where,
            fix="check the LUN masking for the vport's WWPN, then rescan it",
        )
    record = ScsiRecord(
        "scsi", mapping.name, stored_identity(device.identity), address=address, vhba=mapping.wwpn
    )
    return ScsiResolution(_hostdev_source(address), record)


def vhba_nodedev_xml(mapping: VhbaMapping) -> str:
    """Node-device XML that creates the vport (virNodeDeviceCreateXML, libvirt >= 3.0 for
    <parent wwnn= wwpn=/> and <parent fabric_wwn=/>). libvirt writes WWNs as bare hex."""
    assert mapping.wwnn is not None and mapping.wwpn is not None
    if mapping.parent_fabric is not None:
        parent = f"<parent fabric_wwn='{mapping.parent_fabric.nodedev_form}'/>"
    else:
        assert mapping.parent_wwnn is not None and mapping.parent_wwpn is not None
        parent = (
            f"<parent wwnn='{mapping.parent_wwnn.nodedev_form}' "
            f"wwpn='{mapping.parent_wwpn.nodedev_form}'/>"
        )
    return (
        "<device>\n"
        f"  {parent}\n"
        "  <capability type='scsi_host'>\n"
        "    <capability type='fc_host'>\n"
        f"      <wwnn>{mapping.wwnn.nodedev_form}</wwnn>\n"
        f"      <wwpn>{mapping.wwpn.nodedev_form}</wwpn>\n"
        "    </capability>\n"
        "  </capability>\n"
        "</device>\n"
    )


# -- what the store keeps of a LUN --------------------------------------------------------


def stored_identity(found: LunIdentity) -> LunIdentity:
    """What the store keeps: the WWN when there is one (node-independent), else the T10
    vendor ID (it carries the vendor), else the unit serial with vendor and model."""
    if found.wwn is not None:
        return LunIdentity(wwn=found.wwn)
    if found.t10_id is not None:
        return LunIdentity(t10_id=found.t10_id)
    return LunIdentity(serial=found.serial, vendor=found.vendor, model=found.model)


# -- verification (the hook at prepare begin) ------------------------------------------

FindingStatus = Literal["missing", "mismatch", "shifted", "unreadable", "unchecked"]


@frozen
class ScsiFinding:
    """Why a recorded SCSI device is not what the domain was resolved to."""

    status: FindingStatus
    what: str
    fix: str

    @property
    def message(self) -> str:
        return f"{self.what}; {self.fix}"

    def error(self, where: Location | None = None) -> RefusedError:
        return RefusedError(self.what, where=where, fix=self.fix)


def verify_scsi(record: ScsiRecord, inventory: ScsiInventory) -> list[ScsiFinding]:
    """Check a record against the host now; [] when the start may go ahead."""
    if record.element == "lun":
        return _verify_disk(record, inventory)
    return _verify_hostdev(record, inventory)


def _identity_of(record: ScsiRecord) -> LunIdentity:
    assert record.identity is not None
    return record.identity


def _verify_disk(record: ScsiRecord, inv: ScsiInventory) -> list[ScsiFinding]:
    assert record.dev is not None
    expected = _identity_of(record)
    label = record.label
    if not record.dev.startswith(BY_ID):
        return [
            ScsiFinding(
                "unchecked", f"{label}: {record.dev} is not a /dev/disk/by-id link", _REDEFINE
            )
        ]
    name = record.dev[len(BY_ID) :]
    if inv.links is None:
        return [
            ScsiFinding(
                "unchecked",
                f"{label}: cannot check {record.dev} without the host's /dev",
                "verify on the node itself",
            )
        ]
    target = inv.link_target(name)
    if target is None:
        paths = inv.find(expected)
        if paths:
            return [
                ScsiFinding(
                    "missing",
                    f"{label}: {record.dev} does not exist, but the LUN with "
                    f"{expected.describe()} is present ({paths_text(paths)})",
                    f"let udev create the link ('udevadm trigger; udevadm settle'), or {_REDEFINE}",
                )
            ]
        return [
            ScsiFinding(
                "missing",
                f"{label}: {record.dev} does not exist and no LUN with "
                f"{expected.describe()} is visible{_unreadable_note(inv)}",
                "check zoning, masking or the iSCSI login, then rescan",
            )
        ]
    if target.startswith("dm-"):
        return _verify_multipath(record, expected, target, inv)
    device = inv.device_by_block(target)
    if device is None:
        return [
            ScsiFinding(
                "mismatch",
                f"{label}: {record.dev} leads to {target}, which is not a SCSI disk",
                _REDEFINE,
            )
        ]
    return _check_identity(label, f"{record.dev} leads to {target}", device, expected)


def _check_identity(
    label: str, what: str, device: ScsiDevice, expected: LunIdentity
) -> list[ScsiFinding]:
    if device.identity is None:
        return [
            ScsiFinding(
                "unreadable",
                f"{label}: {what}, whose identity cannot be read ({device.problem})",
                "check the device; its VPD pages are broken",
            )
        ]
    if not expected.matches(device.identity):
        return [
            ScsiFinding(
                "mismatch",
                f"{label}: {what} with {device.identity.describe()} "
                f"(expected {expected.describe()})",
                _REDEFINE,
            )
        ]
    return []


def _verify_multipath(
    record: ScsiRecord, expected: LunIdentity, dm: str, inv: ScsiInventory
) -> list[ScsiFinding]:
    label = record.label
    maps = [m for m in inv.multipaths if m.dm == dm]
    if not maps or (record.multipath is not None and maps[0].uuid != record.multipath):
        return [
            ScsiFinding(
                "mismatch",
                f"{label}: {record.dev} leads to {dm}, not multipath map {record.multipath}",
                _REDEFINE,
            )
        ]
    slaves = [d for d in (inv.device_by_block(s) for s in maps[0].slaves) if d is not None]
    if not slaves:
        return [
            ScsiFinding(
                "missing",
                f"{label}: multipath map {maps[0].name or dm} has no paths left",
                "check the paths with 'multipath -ll'",
            )
        ]
    findings: list[ScsiFinding] = []
    for path in slaves:
        findings += _check_identity(
            label, f"path {path.block} of {maps[0].name or dm} is", path, expected
        )
    return findings


def _verify_hostdev(record: ScsiRecord, inv: ScsiInventory) -> list[ScsiFinding]:
    assert record.address is not None
    label = record.label
    recorded = record.address
    expected = _identity_of(record)
    now = inv.device(recorded)
    if now is not None and now.identity is not None and expected.matches(now.identity):
        return []
    if now is not None and now.identity is None:
        return _check_identity(label, f"{recorded.described} is a device", now, expected)
    where_now = inv.find(expected)
    holder = f"holds {now.identity.describe()}" if now and now.identity else "is empty"
    if where_now:
        moved = ", ".join(p.address.described for p in where_now)
        return [
            ScsiFinding(
                "shifted",
                f"{label}: {recorded.described} {holder}; the LUN with {expected.describe()} "
                f"is now at {moved} (host numbers change on rescan, reboot or iSCSI re-login)",
                _REDEFINE,
            )
        ]
    return [
        ScsiFinding(
            "missing" if now is None else "mismatch",
            f"{label}: {recorded.described} {holder} and no LUN with {expected.describe()} "
            f"is visible{_unreadable_note(inv)}",
            "check zoning, masking or the iSCSI login, then rescan",
        )
    ]
