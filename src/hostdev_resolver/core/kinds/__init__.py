"""The device kinds, one module each behind one interface (`base`), and the registry
that finds a kind by its record tag or mapping kind.

The kinds are imported here, inside `kind()`, and nowhere else: a domain pays at
start-up only for the kinds it uses (the hook verifies a PCI guest without importing
the SR-IOV, mdev or SCSI code), and no kind imports this module, so the imports run
one way (resolution/verification -> this registry -> the kinds -> xml.record). The
registry is the package itself: importing any kind imports it anyway, and the hook
pays for one module less.
"""

from __future__ import annotations

from ...xml.record import unknown_record

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...xml.record import Record
    from ...xml.xmldoc import Document, Element
    from .base import Kind

# Record tags (hr:pci …) and mapping kinds (<pci> … in the store), each with its kind.
_RECORDS = {"pci": "pci", "vf": "vf", "usb": "usb", "mdev": "mdev", "lun": "scsi", "scsi": "scsi"}
_KINDS = {**_RECORDS, "vhba": "scsi"}
# The kinds a store mapping names for an element with hr:map (by the mapping's kind);
# the LUN/SCSI kind recognises its elements itself (`Kind.reference`).
MAPPED = ("pci", "vf", "usb", "mdev")


def kind(name: str) -> Kind:
    """The kind of a record tag or a mapping kind."""
    module = _KINDS[name]
    if module == "pci":
        from . import pci as m
    elif module == "vf":
        from . import vf as m  # type: ignore[no-redef]
    elif module == "usb":
        from . import usb as m  # type: ignore[no-redef]
    elif module == "mdev":
        from . import mdev as m  # type: ignore[no-redef]
    else:
        from . import scsi as m  # type: ignore[no-redef]
    return m.KIND


def of_record(record: Record) -> Kind:
    return kind(record.kind)


def read_record(doc: Document, el: Element) -> Record:
    """One `hr:` child of `hr:resolution`, read by its kind."""
    if el.tag not in _RECORDS:
        raise unknown_record(doc, el)
    return kind(el.tag).read_record(doc, el)


def scsi_kind() -> Kind:
    """The kind that recognises its own elements (LUN disks, SCSI hostdevs)."""
    return kind("scsi")
