"""A PCI device as the store and the domain's record write it down: one field list.

A store entry (`<node name=…>` of a `pci` mapping) and a record (`hr:pci map=…`) say the
same of a device: its address, its identity, and where it was found (IOMMU group,
NUMA node, physical slot, port path). They differ only in whose it is (a node, a
mapping) and in how a missing attribute is worded. `PciEntry` (xml.store) and
`PciRecord` (xml.record) are read by `pci_fields` and written by `pci_attributes`, and
their SR-IOV forms (`VfEntry`, `VfRecord`) are built from them with `fields_of`, so the
list below is the only place the PCI fields are spelled out.
"""

from __future__ import annotations

from ..model.identity import (
    pci_identity_attributes,
    pci_identity_from_attributes,
    placement_attributes,
)
from ..model.pciaddress import PciAddress
from ..model.records import fields

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from ..model.errors import InputError
    from ..model.identity import PciIdentity
    from .xmldoc import Document, Element

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
