"""The `hr:resolution` record, read with every kind's reader.

The record's frame and the PCI/USB records are `xml.record`; the other kinds' records
belong to their kinds (`core.kinds`). `read_resolution` here is the one callers use:
it hands `xml.record.read_resolution` the kind registry's reader. The names below are
re-exported for the commands, the wrapper and the host layer, which import them from
here.
"""

from __future__ import annotations

from ..xml.record import (
    HR_MAP,
    HR_NS,
    HR_WWN,
    PciRecord,
    Resolution,
    UsbRecord,
    find_resolution_element,
    missing_attribute,
    pci_record,
)
from ..xml.record import read_resolution as _read_resolution
from .kinds import MAPPED, read_record

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..xml.record import Record as Record  # re-exported for annotations
    from ..xml.xmldoc import Document

__all__ = [
    "HR_MAP",
    "HR_NS",
    "HR_WWN",
    "MAP_KINDS",
    "PciRecord",
    "Resolution",
    "UsbRecord",
    "find_resolution_element",
    "missing_attribute",
    "pci_record",
    "read_resolution",
]

# Records made from hr:map references to store mappings with node entries; the rest
# (lun, scsi) are SCSI records (core.kinds.scsi).
MAP_KINDS = MAPPED


def read_resolution(doc: Document) -> Resolution | None:
    """The resolution record of a domain, or None when it has none."""
    return _read_resolution(doc, read_record)
