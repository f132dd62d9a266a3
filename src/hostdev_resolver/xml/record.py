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

This module holds the record's frame (`Resolution`, where it sits, which device element
a record describes) and the two records every kind builds on (`PciRecord`, `UsbRecord`).
The other kinds' records (`hr:vf`, `hr:mdev`, `hr:lun`, `hr:scsi`) belong to their
kinds in `core.kinds`; `read_resolution` takes the reader that knows them all
(`core.kinds.read_record`, which `core.metadata.read_resolution` passes), so
nothing here imports the core.
"""

from __future__ import annotations

from ..model.errors import InputError
from ..model.identity import (
    PciIdentity,
    UsbIdentity,
    usb_identity_attributes,
    usb_identity_from_attributes,
)
from ..model.pciaddress import PciAddress
from ..model.records import field, frozen
from .domain import devices_of, is_pci_source_element, pci_source_address, usb_source
from .store import Store, pci_attributes, pci_fields, required
from .xmldoc import Document, Element, Node

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Record(Protocol):
        """What every kind's record is: an `hr:` element under `hr:resolution` that
        names the device element it was written for."""

        @property
        def kind(self) -> str: ...  # the record's tag: pci, vf, usb, mdev, lun, scsi

        @property
        def map(self) -> str | None: ...  # the store mapping it came from (None: hr:wwn)

        @property
        def label(self) -> str: ...  # the mapping's name, or what names the device

        @property
        def line(self) -> int | None: ...

        def to_node(self) -> Node: ...

        def matches_element(self, doc: Document, el: Element) -> bool: ...

    RecordReader = Callable[[Document, Element], Record]


HR_NS = "http://hostdev-resolver.org/xmlns/domain/1"
HR_MAP = f"{{{HR_NS}}}map"
HR_WWN = f"{{{HR_NS}}}wwn"


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

    @property
    def label(self) -> str:
        return self.map

    def to_node(self) -> Node:
        attrs = {"map": self.map} | pci_attributes(self)
        if self.vfio:
            attrs["vfio"] = "yes"
        return Node("hr:pci", attrs)

    def matches_element(self, doc: Document, el: Element) -> bool:
        return is_pci_source_element(el) and pci_source_address(doc, el) == self.address


@frozen
class UsbRecord:
    map: str
    identity: UsbIdentity
    bus: int | None = None
    device: int | None = None
    port_path: str | None = None
    line: int | None = field(default=None, compare=False)

    kind = "usb"

    @property
    def label(self) -> str:
        return self.map

    def to_node(self) -> Node:
        attrs = {"map": self.map} | usb_identity_attributes(self.identity)
        if self.bus is not None and self.device is not None:
            attrs["bus"] = str(self.bus)
            attrs["device"] = str(self.device)
        if self.port_path is not None:
            attrs["port-path"] = self.port_path
        return Node("hr:usb", attrs)

    def matches_element(self, doc: Document, el: Element) -> bool:
        if el.tag != "hostdev" or el.get("type") != "usb":
            return False
        src = usb_source(doc, el)
        return (
            src is not None
            and src[:2] == (self.identity.vendor, self.identity.product)
            and (self.bus is None or src[2:] in ((None, None), (self.bus, self.device)))
        )


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


def _required(doc: Document, el: Element, name: str) -> str:
    return required(doc, el, name, missing_attribute)


def pci_record(doc: Document, el: Element) -> PciRecord:
    return PciRecord(
        map=_required(doc, el, "map"),
        **pci_fields(doc, el, missing_attribute),
        vfio=el.get("vfio") == "yes",
    )


def usb_record(doc: Document, el: Element) -> UsbRecord:
    w = doc.where(el)
    return UsbRecord(
        map=_required(doc, el, "map"),
        identity=usb_identity_from_attributes(el.attrs, w, lambda n: missing_attribute(doc, el, n)),
        bus=doc.uint(el, "bus"),
        device=doc.uint(el, "device"),
        port_path=el.get("port-path"),
        line=el.line,
    )


def unknown_record(doc: Document, el: Element) -> InputError:
    return InputError(
        f"unknown record hr:{el.tag} in hr:resolution",
        where=doc.where(el),
        fix="this domain was resolved by a newer hostdev-resolver; upgrade, or re-resolve",
    )


def find_resolution_element(doc: Document) -> Element | None:
    metadata = doc.root.find("metadata")
    if metadata is None:
        return None
    return metadata.find("resolution", HR_NS)


def read_resolution(doc: Document, read_record: RecordReader) -> Resolution | None:
    """The resolution record of a domain, or None when it has none. `read_record`
    reads one `hr:` child (raising `unknown_record` for a tag no kind knows)."""
    el = find_resolution_element(doc)
    if el is None:
        return None
    records = tuple(read_record(doc, child) for child in el.children if child.ns == HR_NS)
    return Resolution(_required(doc, el, "node"), records)


def needs_store(doc: Document) -> bool:
    """Does resolving or verifying this domain need the mapping store?

    Only `hr:map` references and the records made from them name mappings. An `hr:wwn`
    reference, and its record, describe the LUN themselves: a domain with nothing else
    is resolved and verified without a store (none may exist on the host).
    """
    if any(HR_MAP in el.attrs for el in devices_of(doc)):
        return True
    # The record elements themselves, not read_resolution(): a malformed record is
    # reported by resolve/verify, not hidden behind a missing store.
    record = find_resolution_element(doc)
    return record is not None and any(
        child.tag in ("pci", "usb") or "map" in child.attrs for child in record.children
    )


def without_store(path: str) -> Store:
    """The store of a domain that needs none (see `needs_store`): no mappings."""
    return Store(path, {})


def element_of_record(doc: Document, record: Record) -> Element | None:
    """The device element a record describes, found by its concrete source."""
    return next((el for el in devices_of(doc) if record.matches_element(doc, el)), None)
