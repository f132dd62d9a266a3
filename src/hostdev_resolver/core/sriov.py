"""SR-IOV virtual functions named by their PF and index (issue 14).

VFs of one PF share vendor/device IDs and have no serial of their own, and their
addresses change whenever the PF moves or `sriov_numvfs` is set again: the only stable
name of a VF is *which PF* and *which index*. A `vf` mapping therefore records the
PF's identity (as a `pci` mapping does) plus the index; the PF is located exactly as a
PCI device is (`locate.locate_pci`: at its address, or moved and followed by its serial,
slot or port path), and the VF is then the PF's `virtfnN`.

The record in the domain (`hr:vf`) is a `PciRecord` whose address is the VF's: vfio
binding, claims and conflicts treat it like any other PCI function.
"""

from __future__ import annotations

from ..model.identity import (
    parse_id16,
    pci_identity_attributes,
    placement_attributes,
)
from ..model.pciaddress import PciAddress
from ..model.pcifacts import facts_of
from ..model.records import frozen
from ..xml.record import PciRecord, missing_attribute, pci_record
from ..xml.store import fields_of
from ..xml.xmldoc import Node
from .locate import PciLocation, Status, describe_pci, locate_pci, pci_expectation

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..model.inventory import HostInventory, PciDevice
    from ..model.pcifacts import SriovCounts
    from ..xml.store import VfEntry
    from ..xml.xmldoc import Document, Element


@frozen
class VfRecord(PciRecord):
    """`<hr:vf map= address= pf= index= vendor= device= ... vf-vendor= vf-device=/>`:
    `address` is the VF's, the identity and placement are the PF's (as in the store)."""

    pf_address: PciAddress | None = None
    index: int = 0
    vf_vendor: int | None = None
    vf_device: int | None = None

    kind = "vf"

    def to_node(self) -> Node:
        attrs = {"map": self.map, "address": str(self.address)}
        if self.pf_address is not None:
            attrs["pf"] = str(self.pf_address)
        attrs["index"] = str(self.index)
        attrs |= pci_identity_attributes(self.identity)
        attrs |= placement_attributes(
            self.iommu_group, self.numa_node, self.physical_slot, self.port_path
        )
        if self.vf_vendor is not None and self.vf_device is not None:
            attrs["vf-vendor"] = f"{self.vf_vendor:04x}"
            attrs["vf-device"] = f"{self.vf_device:04x}"
        if self.vfio:
            attrs["vfio"] = "yes"
        return Node("hr:vf", attrs)

    @property
    def vf_ids(self) -> str | None:
        if self.vf_vendor is None or self.vf_device is None:
            return None
        return f"{self.vf_vendor:04x}:{self.vf_device:04x}"


def vf_record(doc: Document, el: Element) -> VfRecord:
    """An hr:vf record: a PCI record (the PF's identity, the VF's address), read by the
    same code as hr:pci, plus the PF's address then, the index and the VF's IDs."""
    if el.get("index") is None:
        raise missing_attribute(doc, el, "index")
    base = pci_record(doc, el)
    where = doc.where(el)
    pf = el.get("pf")
    vv, vd = el.get("vf-vendor"), el.get("vf-device")
    return VfRecord(
        **fields_of(base),
        pf_address=PciAddress.parse(pf, where) if pf is not None else None,
        index=doc.uint(el, "index") or 0,
        vf_vendor=parse_id16(vv, "vf-vendor", where) if vv is not None else None,
        vf_device=parse_id16(vd, "vf-device", where) if vd is not None else None,
    )


# -- locating a VF -------------------------------------------------------------------


@frozen
class VfLocation:
    """Where VF `index` of the recorded PF is now. `status` is the PF's (ok, shifted,
    missing, mismatch, ambiguous), or missing / mismatch for the VF itself when the PF
    is fine but has no VF `index` any more, or one with other IDs."""

    status: str
    pf: PciLocation
    index: int
    vf: PciDevice | None = None
    counts: SriovCounts | None = None  # the PF's sriov_numvfs/totalvfs when index is gone
    vf_differences: tuple[str, ...] = ()


def _vf_at(inventory: HostInventory, pf: PciDevice, index: int) -> PciAddress | None:
    facts = facts_of(inventory)
    if facts is not None:
        return facts.virtfn(pf.address, index)
    # Without the virtfnN links: VF N's routing ID is the PF's + First VF Offset +
    # N * VF Stride (PCIe Base Spec, SR-IOV capability), so address order is index order.
    return pf.virtfns[index] if index < len(pf.virtfns) else None


def locate_vf(entry: VfEntry, inventory: HostInventory) -> VfLocation:
    pf_loc = locate_pci(pci_expectation(entry), inventory)
    pf = pf_loc.device
    if pf is None:
        return VfLocation(pf_loc.status, pf_loc, entry.index)
    address = _vf_at(inventory, pf, entry.index)
    vf = inventory.pci_device(address) if address is not None else None
    if vf is None:
        facts = facts_of(inventory)
        counts = facts.sriov_counts(pf.address) if facts is not None else None
        return VfLocation(Status.MISSING, pf_loc, entry.index, counts=counts)
    if (
        entry.vf_vendor is not None
        and entry.vf_device is not None
        and (vf.identity.vendor, vf.identity.device) != (entry.vf_vendor, entry.vf_device)
    ):
        return VfLocation(
            Status.MISMATCH,
            pf_loc,
            entry.index,
            vf,
            vf_differences=(
                f"is {vf.identity.ids} (expected {entry.vf_vendor:04x}:{entry.vf_device:04x})",
            ),
        )
    return VfLocation(pf_loc.status, pf_loc, entry.index, vf)


def describe_vf(name: str, node: str, loc: VfLocation) -> str:
    """One sentence on what became of VF `index` of the recorded PF."""
    pf = loc.pf.device
    if pf is None:
        return f"{describe_pci(name, node, loc.pf)}; so VF {loc.index} of that PF cannot be found"
    which = f"VF {loc.index} of PF {pf.address}"
    if loc.vf is None:
        counts = f" ({loc.counts.describe()})" if loc.counts is not None else ""
        return f"{name}: {which} on node {node} does not exist any more{counts}"
    if loc.vf_differences:
        return f"{name}: {which} ({loc.vf.address}) on node {node} " + "; ".join(loc.vf_differences)
    if loc.pf.status == Status.SHIFTED:
        return f"{describe_pci(name, node, loc.pf)}; its VF {loc.index} is now at {loc.vf.address}"
    return f"{name}: {which} is at {loc.vf.address} on node {node}"


def vf_fix(name: str, node: str, loc: VfLocation) -> str:
    """What to do when VF `index` cannot be used."""
    pf = loc.pf.device
    if pf is None:
        return f"put the PF back, or re-map it with 'hostdev-resolver map add vf {name} --node {node} --pf BDF --index {loc.index}'"
    if loc.vf is None:
        return (
            f"create the VF again: echo {loc.index + 1} > /sys/bus/pci/devices/{pf.address}/sriov_numvfs "
            f"(or more), or map another index with 'hostdev-resolver map add vf {name} --node {node} --pf {pf.address} --index N'"
        )
    return f"check the PF's firmware, or re-map it with 'hostdev-resolver map add vf {name} --node {node} --pf {pf.address} --index {loc.index}'"


def vf_of(inventory: HostInventory, address: PciAddress) -> tuple[PciAddress, int] | None:
    """(PF, index) when `address` is a VF, for `map add pci` to suggest the vf form."""
    dev = inventory.pci_device(address)
    if dev is None or dev.physfn is None:
        return None
    facts = facts_of(inventory)
    index = facts.vf_index(dev.physfn, address) if facts is not None else None
    if index is None:
        pf = inventory.pci_device(dev.physfn)
        if pf is None or address not in pf.virtfns:
            return None
        index = pf.virtfns.index(address)
    return dev.physfn, index
