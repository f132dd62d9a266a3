"""Device identities: what a device *is*, as opposed to where it sits.

Pure values with strict parsers: a malformed ID never becomes a value, and two
identities match only when every recorded field is equal (a missing field on the
recorded side is "not recorded", never "anything"; an unparseable one is an error).
"""

from __future__ import annotations

from .errors import InputError, Location
from .pciaddress import hex_digits
from .records import frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def _hex_field(value: str, digits: int) -> int | None:
    """`digits` hex digits, optionally after 0x (the sysfs spelling), or None."""
    text = value.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    return int(text, 16) if hex_digits(text, digits, digits) else None


def parse_id16(value: str, name: str, where: Location | None = None) -> int:
    """A 16-bit vendor/device/product ID: `10de`, `0x10de` (sysfs spelling), any case."""
    parsed = _hex_field(value, 4)
    if parsed is None:
        raise InputError(
            f"{name} {value!r} is not a 16-bit hex ID",
            where=where,
            fix="write four hex digits, e.g. 10de",
        )
    return parsed


def parse_class(value: str, where: Location | None = None) -> int:
    """A 24-bit PCI class code: `030000`, `0x030000`."""
    parsed = _hex_field(value, 6)
    if parsed is None:
        raise InputError(
            f"class {value!r} is not a 24-bit hex PCI class",
            where=where,
            fix="write six hex digits, e.g. 030000",
        )
    return parsed


def parse_dsn(value: str, where: Location | None = None) -> str:
    """A PCIe Device Serial Number in lspci's form `00-11-22-ff-ff-33-44-55`."""
    text = value.strip().lower()
    octets = text.split("-")
    if len(octets) != 8 or not all(hex_digits(o, 2, 2) and o == o.lower() for o in octets):
        raise InputError(
            f"serial {value!r} is not a PCIe device serial number",
            where=where,
            fix="write eight hex bytes separated by '-', as lspci -vv shows it",
        )
    return text


def format_dsn(serial: int) -> str:
    return "-".join(f"{(serial >> shift) & 0xFF:02x}" for shift in range(56, -8, -8))


@frozen
class PciIdentity:
    """Vendor/device IDs, subsystem IDs, class and serial of one PCI function."""

    vendor: int
    device: int
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None
    class_code: int | None = None
    serial: str | None = None

    @property
    def ids(self) -> str:
        return f"{self.vendor:04x}:{self.device:04x}"

    @property
    def subsystem(self) -> str | None:
        if self.subsystem_vendor is None or self.subsystem_device is None:
            return None
        return f"{self.subsystem_vendor:04x}:{self.subsystem_device:04x}"

    def differences(self, found: PciIdentity) -> list[str]:
        """What differs between this (expected) identity and `found`, in words.

        Only fields recorded here are compared; a field recorded here but absent on
        the found device counts as a difference (a serial that vanished is not a match).
        """
        out: list[str] = []
        if (self.vendor, self.device) != (found.vendor, found.device):
            out.append(f"is {found.ids} (expected {self.ids})")
        if self.subsystem is not None and self.subsystem != found.subsystem:
            out.append(f"has subsystem {found.subsystem or 'none'} (expected {self.subsystem})")
        if self.class_code is not None and self.class_code != found.class_code:
            got = "none" if found.class_code is None else f"{found.class_code:06x}"
            out.append(f"has class {got} (expected {self.class_code:06x})")
        if self.serial is not None and self.serial != found.serial:
            out.append(f"has serial {found.serial or 'none'} (expected {self.serial})")
        return out

    def matches(self, found: PciIdentity) -> bool:
        return not self.differences(found)

    def same_model(self, found: PciIdentity) -> bool:
        """Same vendor/device and (where recorded) subsystem: an identical card."""
        return (self.vendor, self.device) == (found.vendor, found.device) and (
            self.subsystem is None or self.subsystem == found.subsystem
        )


@frozen
class UsbIdentity:
    vendor: int
    product: int
    serial: str | None = None

    @property
    def ids(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"

    def differences(self, found: UsbIdentity) -> list[str]:
        out: list[str] = []
        if (self.vendor, self.product) != (found.vendor, found.product):
            out.append(f"is {found.ids} (expected {self.ids})")
        if self.serial is not None and self.serial != found.serial:
            out.append(f"has serial {found.serial or 'none'} (expected {self.serial})")
        return out

    def matches(self, found: UsbIdentity) -> bool:
        return not self.differences(found)


# The XML spelling of identities, shared by the store's <node> entries and the domain's
# hr:pci / hr:usb records, so the two can never drift apart.


def pci_identity_attributes(identity: PciIdentity) -> dict[str, str]:
    attrs = {"vendor": f"{identity.vendor:04x}", "device": f"{identity.device:04x}"}
    if identity.subsystem_vendor is not None and identity.subsystem_device is not None:
        attrs["subsystem-vendor"] = f"{identity.subsystem_vendor:04x}"
        attrs["subsystem-device"] = f"{identity.subsystem_device:04x}"
    if identity.class_code is not None:
        attrs["class"] = f"{identity.class_code:06x}"
    if identity.serial is not None:
        attrs["serial"] = identity.serial
    return attrs


def pci_identity_from_attributes(
    attrs: Mapping[str, str], where: Location, missing: Callable[[str], InputError]
) -> PciIdentity:
    """The inverse of `pci_identity_attributes`; `missing(name)` is the error for an
    absent required attribute (the store and the record word the fix differently)."""
    sv, sd = attrs.get("subsystem-vendor"), attrs.get("subsystem-device")
    if (sv is None) != (sd is None):
        raise InputError("subsystem-vendor and subsystem-device go together", where=where)
    klass, serial = attrs.get("class"), attrs.get("serial")
    return PciIdentity(
        vendor=parse_id16(_needed(attrs, "vendor", missing), "vendor", where),
        device=parse_id16(_needed(attrs, "device", missing), "device", where),
        subsystem_vendor=parse_id16(sv, "subsystem-vendor", where) if sv is not None else None,
        subsystem_device=parse_id16(sd, "subsystem-device", where) if sd is not None else None,
        class_code=parse_class(klass, where) if klass is not None else None,
        serial=parse_dsn(serial, where) if serial is not None else None,
    )


def placement_attributes(
    iommu_group: int | None, numa_node: int | None, slot: str | None, port_path: str | None
) -> dict[str, str]:
    """Where a PCI device was found: IOMMU group, NUMA node, physical slot, port path."""
    attrs = {}
    if iommu_group is not None:
        attrs["iommu-group"] = str(iommu_group)
    if numa_node is not None:
        attrs["numa-node"] = str(numa_node)
    if slot is not None:
        attrs["slot"] = slot
    if port_path is not None:
        attrs["port-path"] = port_path
    return attrs


def usb_identity_attributes(identity: UsbIdentity) -> dict[str, str]:
    attrs = {"vendor": f"{identity.vendor:04x}", "product": f"{identity.product:04x}"}
    if identity.serial is not None:
        attrs["serial"] = identity.serial
    return attrs


def usb_identity_from_attributes(
    attrs: Mapping[str, str], where: Location, missing: Callable[[str], InputError]
) -> UsbIdentity:
    return UsbIdentity(
        parse_id16(_needed(attrs, "vendor", missing), "vendor", where),
        parse_id16(_needed(attrs, "product", missing), "product", where),
        attrs.get("serial"),
    )


def _needed(attrs: Mapping[str, str], name: str, missing: Callable[[str], InputError]) -> str:
    value = attrs.get(name)
    if value is None:
        raise missing(name)
    return value


def parse_uuid(value: str, where: Location | None = None) -> str:
    """A UUID in its canonical 8-4-4-4-12 form, lower case (how sysfs names mdevs)."""
    text = value.strip().lower()
    parts = text.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12] or not all(
        hex_digits(p, len(p), len(p)) for p in parts
    ):
        raise InputError(
            f"{value!r} is not a UUID",
            where=where,
            fix="write it as 8-4-4-4-12 hex digits, e.g. 4b20d080-1b54-4048-85b3-a6a62d165c01",
        )
    return text
