"""The record of a resolution, kept in the domain's <metadata> (SPEC §3).

libvirt keeps foreign namespaces only under <metadata>, one element per namespace,
so everything the hook needs to verify a start lives in one `hr:resolution`
element: which mapping each device came from, the identity it was resolved
against, where it was found, and for which node.

    <metadata>
      <hr:resolution xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1' node='hv1'>
        <hr:pci map='gpu0' address='0000:41:00.0' vendor='10de' device='20b5' .../>
        <hr:usb map='yubikey' vendor='1050' product='0407' serial='…' bus='1' device='4'/>
      </hr:resolution>
    </metadata>
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
from ..model.records import field, frozen
from ..xml.xmldoc import Document, Element, Node

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .mdev import MdevRecord
    from .scsiresolve import ScsiRecord

HR_NS = "http://hostdev-resolver.org/xmlns/domain/1"
HR_MAP = f"{{{HR_NS}}}map"
HR_WWN = f"{{{HR_NS}}}wwn"
# Records made from hr:map references to store mappings with node entries; the rest
# (lun, scsi) are SCSI records (scsiresolve).
MAP_KINDS = ("pci", "usb", "vf", "mdev")


@frozen
class PciRecord:
    map: str
    address: PciAddress
    identity: PciIdentity
    iommu_group: int | None = None
    numa_node: int | None = None
    physical_slot: str | None = None
    port_path: str | None = None
    vfio: bool = False
    line: int | None = field(default=None, compare=False)

    kind = "pci"

    def to_node(self) -> Node:
        attrs = {"map": self.map, "address": str(self.address)}
        attrs |= pci_identity_attributes(self.identity)
        attrs |= placement_attributes(
            self.iommu_group, self.numa_node, self.physical_slot, self.port_path
        )
        if self.vfio:
            attrs["vfio"] = "yes"
        return Node("hr:pci", attrs)


@frozen
class UsbRecord:
    map: str
    identity: UsbIdentity
    bus: int | None = None
    device: int | None = None
    port_path: str | None = None
    line: int | None = field(default=None, compare=False)

    kind = "usb"

    def to_node(self) -> Node:
        attrs = {"map": self.map} | usb_identity_attributes(self.identity)
        if self.bus is not None and self.device is not None:
            attrs["bus"] = str(self.bus)
            attrs["device"] = str(self.device)
        if self.port_path is not None:
            attrs["port-path"] = self.port_path
        return Node("hr:usb", attrs)


if TYPE_CHECKING:
    from typing import TypeAlias

    Record: TypeAlias = PciRecord | UsbRecord | ScsiRecord | MdevRecord


@frozen
class Resolution:
    node: str
    records: tuple[Record, ...]

    def to_node(self) -> Node:
        return Node(
            "hr:resolution",
            {"xmlns:hr": HR_NS, "node": self.node},
            [r.to_node() for r in self.records],
        )


def missing_attribute(doc: Document, el: Element, name: str) -> InputError:
    return InputError(
        f"hr:{el.tag} record has no {name} attribute",
        where=doc.where(el),
        fix="re-resolve the domain with 'hostdev-resolver resolve' or 'hostdev-virsh define'",
    )


def _req(doc: Document, el: Element, name: str) -> str:
    value = el.get(name)
    if value is None:
        raise missing_attribute(doc, el, name)
    return value


def pci_record(doc: Document, el: Element) -> PciRecord:
    w = doc.where(el)
    return PciRecord(
        map=_req(doc, el, "map"),
        address=PciAddress.parse(_req(doc, el, "address"), w),
        identity=pci_identity_from_attributes(el.attrs, w, lambda n: missing_attribute(doc, el, n)),
        iommu_group=doc.uint(el, "iommu-group"),
        numa_node=doc.uint(el, "numa-node"),
        physical_slot=el.get("slot"),
        port_path=el.get("port-path"),
        vfio=el.get("vfio") == "yes",
        line=el.line,
    )


def _usb_record(doc: Document, el: Element) -> UsbRecord:
    w = doc.where(el)
    return UsbRecord(
        map=_req(doc, el, "map"),
        identity=usb_identity_from_attributes(el.attrs, w, lambda n: missing_attribute(doc, el, n)),
        bus=doc.uint(el, "bus"),
        device=doc.uint(el, "device"),
        port_path=el.get("port-path"),
        line=el.line,
    )


def find_resolution_element(doc: Document) -> Element | None:
    metadata = doc.root.find("metadata")
    if metadata is None:
        return None
    return metadata.find("resolution", HR_NS)


def read_resolution(doc: Document) -> Resolution | None:
    """The resolution record of a domain, or None when it has none."""
    el = find_resolution_element(doc)
    if el is None:
        return None
    records: list[Record] = []
    for child in el.children:
        if child.ns != HR_NS:
            continue
        if child.tag == "pci":
            records.append(pci_record(doc, child))
        elif child.tag == "usb":
            records.append(_usb_record(doc, child))
        elif child.tag == "vf":
            from .sriov import vf_record

            records.append(vf_record(doc, child))
        elif child.tag == "mdev":
            from .mdev import mdev_record

            records.append(mdev_record(doc, child))
        elif child.tag in ("lun", "scsi"):
            from .scsiresolve import scsi_record

            records.append(scsi_record(doc, child))
        else:
            raise InputError(
                f"unknown record hr:{child.tag} in hr:resolution",
                where=doc.where(child),
                fix="this domain was resolved by a newer hostdev-resolver; upgrade, or re-resolve",
            )
    return Resolution(_req(doc, el, "node"), tuple(records))
