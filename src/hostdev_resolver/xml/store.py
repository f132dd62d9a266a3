"""The mapping store's XML form: stable device names, one entry per node where the device exists.

Pure: bytes in, values out. Parsing goes through `xmldoc` (expat; the hook uses it) and
checks every value it keeps; the CLI also validates against schemas/store.xsd
(xmlschema, line numbers from lxml; a store whose bytes passed before is remembered,
see storeschema) before trusting a store. Edits are splices of the original bytes (an
administrator's comments survive). Reading the file (and the hook's trusted read) is
`host.storeread`; the locked write (an flock on `<store>.lock`, write + fsync + rename)
is `host.storefile`.
"""

from __future__ import annotations

from ..model.errors import InputError
from ..model.identity import (
    PciIdentity,
    UsbIdentity,
    pci_identity_attributes,
    pci_identity_from_attributes,
    placement_attributes,
    usb_identity_attributes,
    usb_identity_from_attributes,
)
from ..model.pciaddress import PciAddress
from ..model.records import field, fields, frozen
from .xmldoc import Document, Element, Node

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from ..model.scsi import FcLunPath, LunIdentity
    from ..model.wwn import Wwn

    Missing = Callable[[Document, Element, str], InputError]

    class PciFields(Protocol):
        @property
        def address(self) -> PciAddress: ...
        @property
        def identity(self) -> PciIdentity: ...
        @property
        def iommu_group(self) -> int | None: ...
        @property
        def numa_node(self) -> int | None: ...
        @property
        def physical_slot(self) -> str | None: ...
        @property
        def port_path(self) -> str | None: ...


NS = "http://hostdev-resolver.org/xmlns/store/1"
EMPTY = f"<mappings xmlns='{NS}'>\n</mappings>\n".encode()


# -- a PCI device as the store and the domain's record write it down ---------------------
# A store entry (`<node name=…>` of a `pci` mapping) and a record (`hr:pci map=…`,
# xml.record) say the same of a device: its address, its identity, and where it was
# found (IOMMU group, NUMA node, physical slot, port path). They differ only in whose it
# is (a node, a mapping) and in how a missing attribute is worded. Both are read by
# `pci_fields` and written by `pci_attributes`, and their SR-IOV forms (`VfEntry`,
# `VfRecord`) are built from them with `fields_of`: the PCI fields are spelled out here
# only. (Here and not in a module of their own: the hook imports this one anyway.)


def required(doc: Document, el: Element, name: str, missing: Missing) -> str:
    """The attribute's value; `missing(doc, el, name)` is the error when it is absent
    (the store and the record word the fix differently)."""
    value = el.get(name)
    if value is None:
        raise missing(doc, el, name)
    return value


def pci_fields(doc: Document, el: Element, missing: Missing) -> dict[str, Any]:
    """The PCI fields of a store entry or record element, checked, as keywords for
    `PciEntry`/`PciRecord` (with `line`)."""
    where = doc.where(el)
    return {
        "address": PciAddress.parse(required(doc, el, "address", missing), where),
        "identity": pci_identity_from_attributes(
            el.attrs, where, lambda name: missing(doc, el, name)
        ),
        "iommu_group": doc.uint(el, "iommu-group"),
        "numa_node": doc.uint(el, "numa-node"),
        "physical_slot": el.get("slot"),
        "port_path": el.get("port-path"),
        "line": el.line,
    }


def pci_attributes(device: PciFields) -> dict[str, str]:
    """The attributes `pci_fields` reads, in the order both documents write them."""
    attrs = {"address": str(device.address)}
    attrs |= pci_identity_attributes(device.identity)
    attrs |= placement_attributes(
        device.iommu_group, device.numa_node, device.physical_slot, device.port_path
    )
    return attrs


def fields_of(value: object) -> dict[str, Any]:
    """Every field of a record value, as keywords: what a subclass (a VF entry or
    record) is built from."""
    return {f.name: getattr(value, f.name) for f in fields(value)}


@frozen
class PciEntry:
    node: str
    address: PciAddress
    identity: PciIdentity
    iommu_group: int | None = None
    numa_node: int | None = None
    physical_slot: str | None = None
    port_path: str | None = None
    line: int | None = field(default=None, compare=False)

    def to_node(self) -> Node:
        return Node("node", {"name": self.node} | pci_attributes(self))


@frozen
class UsbEntry:
    node: str
    identity: UsbIdentity
    port_path: str | None = None
    line: int | None = field(default=None, compare=False)

    def to_node(self) -> Node:
        attrs = {"name": self.node} | usb_identity_attributes(self.identity)
        if self.port_path is not None:
            attrs["port-path"] = self.port_path
        return Node("node", attrs)


@frozen
class _MappingBase:
    name: str
    description: str | None
    allow: tuple[str, ...]
    line: int | None = field(default=None, compare=False)

    def allows(self, domain: str) -> bool:
        """No <allow> means any domain; otherwise a shell pattern must match the name."""
        if not self.allow:
            return True
        from ..model.shellpattern import matches

        return any(matches(domain, p) for p in self.allow)


@frozen
class PciMapping(_MappingBase):
    entries: tuple[PciEntry, ...] = ()
    vfio: bool = False  # vfio='yes' or 'boot': the hook binds it at start
    # require-reset='yes': refuse a start when the device has no reset method (reset.py)
    require_reset: bool = False
    # vfio='boot': also bound at boot, by identity (hostbinding.py); implies `vfio`
    vfio_boot: bool = False
    kind = "pci"

    def entries_on(self, node: str) -> tuple[PciEntry, ...]:
        return tuple(e for e in self.entries if e.node == node)


@frozen
class UsbMapping(_MappingBase):
    entries: tuple[UsbEntry, ...] = ()
    kind = "usb"

    def entries_on(self, node: str) -> tuple[UsbEntry, ...]:
        return tuple(e for e in self.entries if e.node == node)


@frozen
class WwnMapping(_MappingBase):
    """`lun` and `scsi` mappings, node-independent: a LUN named by its WWN (or, when it
    has none, its T10 vendor ID or unit serial), or for `scsi` an FC path (initiator
    WWPN + target WWPN + LUN number), optionally with the WWN expected there."""

    wwn: Wwn | None = None
    kind: str = "lun"
    t10_id: str | None = None
    serial: str | None = None
    vendor: str | None = None
    model: str | None = None
    fc_path: FcLunPath | None = None

    @property
    def identity(self) -> LunIdentity | None:
        if self.wwn is None and self.t10_id is None and self.serial is None:
            return None
        from ..model.scsi import LunIdentity

        return LunIdentity(self.wwn, self.t10_id, self.serial, self.vendor, self.model)

    def store_attributes(self) -> dict[str, str]:
        """The attributes `StoreEditor.add_entry(kind, name, None, extra=…)` writes."""
        attrs: dict[str, str] = {}
        if self.wwn is not None:
            attrs["wwn"] = str(self.wwn)
        for key, value in (
            ("t10-id", self.t10_id),
            ("serial", self.serial),
            ("vendor", self.vendor),
            ("model", self.model),
        ):
            if value is not None:
                attrs[key] = value
        if self.fc_path is not None:
            attrs["initiator"] = str(self.fc_path.initiator)
            attrs["target"] = str(self.fc_path.target)
            attrs["lun"] = str(self.fc_path.lun)
        return attrs


@frozen
class VhbaMapping(_MappingBase):
    """An NPIV virtual HBA, named by its own WWNN/WWPN; its parent HBA by WWNN/WWPN or by
    fabric WWN, never by host number (libvirt's <parent wwnn= wwpn=/> / fabric_wwn)."""

    wwnn: Wwn | None = None
    wwpn: Wwn | None = None
    parent_wwnn: Wwn | None = None
    parent_wwpn: Wwn | None = None
    parent_fabric: Wwn | None = None
    kind = "vhba"

    def store_attributes(self) -> dict[str, str]:
        attrs: dict[str, str] = {}
        for key, value in (
            ("wwnn", self.wwnn),
            ("wwpn", self.wwpn),
            ("parent-wwnn", self.parent_wwnn),
            ("parent-wwpn", self.parent_wwpn),
            ("parent-fabric", self.parent_fabric),
        ):
            if value is not None:
                attrs[key] = str(value)
        return attrs


@frozen
class VfEntry(PciEntry):
    """An SR-IOV virtual function on one node: its PF's identity and placement (the
    inherited fields, captured as a `pci` entry is), the VF index below that PF, and
    the VF's own vendor/device. A VF's address is never recorded: it is derived from the
    PF's `virtfnN` link, and changes whenever the PF moves or sriov_numvfs is re-set."""

    index: int = 0
    vf_vendor: int | None = None
    vf_device: int | None = None

    @classmethod
    def of(cls, pf: PciEntry, index: int, vf_vendor: int | None, vf_device: int | None) -> VfEntry:
        """VF `index` of the PF that `pf` records, with the VF's own vendor/device."""
        return cls(**fields_of(pf), index=index, vf_vendor=vf_vendor, vf_device=vf_device)

    def to_node(self) -> Node:
        node = PciEntry.to_node(self)
        node.attrs["index"] = str(self.index)
        if self.vf_vendor is not None and self.vf_device is not None:
            node.attrs["vf-vendor"] = f"{self.vf_vendor:04x}"
            node.attrs["vf-device"] = f"{self.vf_device:04x}"
        return node


@frozen
class VfMapping(PciMapping):
    """`vf` mappings: a PCI mapping whose entries name a PF and a VF index (sriov.py)."""

    vgpu_type: str | None = None
    kind = "vf"


@frozen
class MdevMapping(PciMapping):
    """`mdev` mappings: a mediated device of `mdev_type` with a UUID fixed at `map add`;
    the entries are its possible parents (PCI identities), a pool when there are several
    on one node (mdev.py)."""

    mdev_type: str = ""
    uuid: str = ""
    kind = "mdev"


Mapping = PciMapping | UsbMapping | WwnMapping | VhbaMapping


@frozen
class Store:
    path: str
    mappings: dict[str, Mapping]

    def get(self, name: str) -> Mapping | None:
        return self.mappings.get(name)

    def nodes(self) -> list[str]:
        seen: dict[str, None] = {}
        for mapping in self.mappings.values():
            if isinstance(mapping, PciMapping | UsbMapping):
                for entry in mapping.entries:
                    seen.setdefault(entry.node, None)
        return list(seen)


# -- reading -------------------------------------------------------------------


def _missing(doc: Document, el: Element, name: str) -> InputError:
    return InputError(
        f"<{el.tag}> has no {name} attribute",
        where=doc.where(el),
        fix=f"add {name}='…' (see schemas/store.xsd)",
    )


def _required(doc: Document, el: Element, name: str) -> str:
    return required(doc, el, name, _missing)


def read_pci_entry(doc: Document, el: Element) -> PciEntry:
    return PciEntry(node=_required(doc, el, "name"), **pci_fields(doc, el, _missing))


def read_usb_entry(doc: Document, el: Element) -> UsbEntry:
    where = doc.where(el)
    return UsbEntry(
        node=_required(doc, el, "name"),
        identity=usb_identity_from_attributes(el.attrs, where, lambda n: _missing(doc, el, n)),
        port_path=el.get("port-path"),
        line=el.line,
    )


def _allow(doc: Document, el: Element) -> tuple[str, ...]:
    return tuple(_required(doc, a, "domain") for a in el.findall("allow", NS))


def _mapping(doc: Document, el: Element) -> Mapping:
    name = _required(doc, el, "name")
    description = el.get("description")
    allow = _allow(doc, el)
    for child in el.children:
        if child.ns != NS or child.tag not in ("node", "allow"):
            raise InputError(
                f"unexpected <{child.tag}> in <{el.tag} name='{name}'>", where=doc.where(child)
            )
    nodes = el.findall("node", NS)
    if el.tag in ("vf", "mdev"):
        return _sriov_mdev_mapping(doc, el, name, description, allow, nodes)
    if el.tag == "pci":
        vfio = el.get("vfio", "no")
        if vfio not in ("yes", "no", "boot"):
            raise InputError(
                f"vfio={vfio!r} must be yes, no or boot",
                where=doc.where(el),
                fix="yes: bound at start; boot: also bound at boot (docs/boot-binding.md)",
            )
        return PciMapping(
            name,
            description,
            allow,
            el.line,
            tuple(read_pci_entry(doc, n) for n in nodes),
            vfio in ("yes", "boot"),
            _yes_no(doc, el, "require-reset"),
            vfio == "boot",
        )
    if el.tag == "usb":
        return UsbMapping(
            name, description, allow, el.line, tuple(read_usb_entry(doc, n) for n in nodes)
        )
    if el.tag in ("lun", "scsi", "vhba"):
        if nodes:
            raise InputError(
                f"<{el.tag}> mappings have no <node> entries", where=doc.where(nodes[0])
            )
        if el.tag == "vhba":
            return _vhba_mapping(doc, el, name, description, allow)
        return _wwn_mapping(doc, el, name, description, allow)
    raise InputError(
        f"unknown mapping kind <{el.tag}>",
        where=doc.where(el),
        fix="use pci, usb, vf, mdev, lun, scsi or vhba",
    )


def _yes_no(doc: Document, el: Element, attr: str) -> bool:
    value = el.get(attr, "no")
    if value not in ("yes", "no"):
        raise InputError(f"{attr}={value!r} must be yes or no", where=doc.where(el))
    return value == "yes"


def read_vf_entry(doc: Document, el: Element) -> VfEntry:
    from ..model.identity import parse_id16

    where = doc.where(el)
    pf = read_pci_entry(doc, el)
    index = doc.uint(el, "index")
    if index is None:
        raise _missing(doc, el, "index")
    vv, vd = el.get("vf-vendor"), el.get("vf-device")
    if (vv is None) != (vd is None):
        raise InputError("vf-vendor and vf-device go together", where=where)
    return VfEntry.of(
        pf,
        index,
        parse_id16(vv, "vf-vendor", where) if vv is not None else None,
        parse_id16(vd, "vf-device", where) if vd is not None else None,
    )


def _sriov_mdev_mapping(
    doc: Document,
    el: Element,
    name: str,
    description: str | None,
    allow: tuple[str, ...],
    nodes: list[Element],
) -> Mapping:
    """`<vf>` and `<mdev>` mappings (issue 14): PCI mappings with a VF index on each
    entry, or with a mediated device type and UUID on the mapping."""
    if el.tag == "vf":
        return VfMapping(
            name,
            description,
            allow,
            el.line,
            tuple(read_vf_entry(doc, n) for n in nodes),
            _yes_no(doc, el, "vfio"),
            _yes_no(doc, el, "require-reset"),
            vgpu_type=el.get("vgpu-type"),
        )
    from ..model.identity import parse_uuid

    mdev_type = _required(doc, el, "type")
    return MdevMapping(
        name,
        description,
        allow,
        el.line,
        tuple(read_pci_entry(doc, n) for n in nodes),
        False,
        _yes_no(doc, el, "require-reset"),
        mdev_type=mdev_type,
        uuid=parse_uuid(_required(doc, el, "uuid"), doc.where(el)),
    )


def _wwn(doc: Document, el: Element, name: str) -> Wwn | None:
    from ..model.wwn import parse_optional  # the SCSI modules load only for stores with LUNs

    return parse_optional(el.get(name), name=name, where=doc.where(el))


def _wwn_mapping(
    doc: Document, el: Element, name: str, description: str | None, allow: tuple[str, ...]
) -> WwnMapping:
    where = doc.where(el)
    fc = [el.get(k) for k in ("initiator", "target", "lun")]
    fc_path = None
    if any(v is not None for v in fc):
        if el.tag != "scsi" or any(v is None for v in fc):
            raise InputError(
                f"<{el.tag} name='{name}'>: initiator, target and lun go together, on <scsi> only",
                where=where,
                fix="give all three (an FC LUN path) or none",
            )
        from ..model.scsi import FcLunPath
        from ..model.wwn import Wwn

        fc_path = FcLunPath(
            Wwn.parse(_required(doc, el, "initiator"), name="initiator", where=where),
            Wwn.parse(_required(doc, el, "target"), name="target", where=where),
            doc.uint(el, "lun") or 0,
        )
    mapping = WwnMapping(
        name,
        description,
        allow,
        el.line,
        _wwn(doc, el, "wwn"),
        el.tag,
        el.get("t10-id"),
        el.get("serial"),
        el.get("vendor"),
        el.get("model"),
        fc_path,
    )
    if mapping.identity is None and fc_path is None:
        raise InputError(
            f"<{el.tag} name='{name}'> names no LUN",
            where=where,
            fix="give wwn= (or t10-id=/serial= for a LUN without one"
            + (", or initiator= target= lun=)" if el.tag == "scsi" else ")"),
        )
    return mapping


def _vhba_mapping(
    doc: Document, el: Element, name: str, description: str | None, allow: tuple[str, ...]
) -> VhbaMapping:
    from ..model.wwn import Wwn

    where = doc.where(el)
    mapping = VhbaMapping(
        name,
        description,
        allow,
        el.line,
        Wwn.parse(_required(doc, el, "wwnn"), name="wwnn", where=where),
        Wwn.parse(_required(doc, el, "wwpn"), name="wwpn", where=where),
        _wwn(doc, el, "parent-wwnn"),
        _wwn(doc, el, "parent-wwpn"),
        _wwn(doc, el, "parent-fabric"),
    )
    by_port = mapping.parent_wwnn is not None and mapping.parent_wwpn is not None
    if (mapping.parent_wwnn is None) != (mapping.parent_wwpn is None) or (
        by_port == (mapping.parent_fabric is not None)
    ):
        raise InputError(
            f"<vhba name='{name}'> needs its parent as parent-wwnn + parent-wwpn, "
            "or as parent-fabric",
            where=where,
            fix="name the parent HBA by its port names or its fabric, never by host number",
        )
    return mapping


def parse_store(doc: Document) -> Store:
    root = doc.root
    if root.ns != NS or root.tag != "mappings":
        got = f"{{{root.ns}}}{root.tag}" if root.ns else root.tag
        raise InputError(
            f"not a mapping store: root element is <{got}>",
            where=doc.where(root),
            fix=f"the root must be <mappings xmlns='{NS}'>",
        )
    mappings: dict[str, Mapping] = {}
    for el in root.children:
        if el.ns != NS:
            raise InputError(
                f"element <{el.tag}> is not in the store namespace", where=doc.where(el)
            )
        mapping = _mapping(doc, el)
        if mapping.name in mappings:
            first = mappings[mapping.name].line
            raise InputError(
                f"duplicate mapping name {mapping.name!r} (first defined on line {first})",
                where=doc.where(el),
                fix="rename or remove one of them",
            )
        mappings[mapping.name] = mapping
    return Store(doc.source, mappings)


def validate_schema(doc: Document) -> None:
    """Check the store against schemas/store.xsd; the first violation, with its line.
    A store whose exact bytes passed before is not built again (see storeschema)."""
    from .storeschema import check_store_schema

    check_store_schema(doc)
