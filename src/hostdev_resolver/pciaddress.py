"""PCI addresses: one type, one parser for every spelling, one way to write it."""

from __future__ import annotations

import re

from .errors import InputError, Location
from .records import frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Mapping

# 0000:03:00.0, 03:00.0, 10000:e1:00.0 (VMD and other 32-bit PCI domains)
_TEXT = re.compile(
    r"(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):"
    r"(?P<slot>[0-9a-fA-F]{1,2})\.(?P<function>[0-7])"
)
# libvirt node-device names: pci_0000_03_00_0
_NODEDEV = re.compile(
    r"pci_(?P<domain>[0-9a-fA-F]{4,8})_(?P<bus>[0-9a-fA-F]{2})_"
    r"(?P<slot>[0-9a-fA-F]{2})_(?P<function>[0-7])"
)

_LIMITS = {"domain": 0xFFFFFFFF, "bus": 0xFF, "slot": 0x1F, "function": 0x7}
_FORMS = "expected a PCI address such as 0000:03:00.0, 03:00.0 or pci_0000_03_00_0"


def parse_xml_uint(value: str, name: str, where: Location | None = None) -> int:
    """An unsigned integer attribute as libvirt reads it (strtoul base 0).

    libvirt's virXMLPropUInt parses with base 0: `0x..` is hex, a leading `0` is
    octal, anything else decimal; we follow it so that a value means here what it
    means to libvirt.
    """
    text = value.strip()
    try:
        if text.lower().startswith("0x"):
            if len(text) == 2:
                raise ValueError(text)
            return int(text[2:], 16)
        if len(text) > 1 and text.startswith("0"):
            return int(text[1:], 8)
        if not text.isdigit():
            raise ValueError(text)
        return int(text, 10)
    except ValueError:
        raise InputError(
            f"{name}={value!r} is not a number",
            where=where,
            fix="write it in hex (0x1f) or decimal (31)",
        ) from None


@frozen(order=True)
class PciAddress:
    domain: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        for field, limit in _LIMITS.items():
            value = getattr(self, field)
            if not 0 <= value <= limit:
                raise InputError(
                    f"PCI {field} {value:#x} is out of range (0..{limit:#x})",
                    fix=_FORMS,
                )

    @classmethod
    def parse(cls, text: str, where: Location | None = None) -> PciAddress:
        """Parse `0000:03:00.0`, `03:00.0` (domain 0), `pci_0000_03_00_0`, 32-bit domains."""
        candidate = text.strip()
        match = _TEXT.fullmatch(candidate) or _NODEDEV.fullmatch(candidate)
        if match is None:
            raise InputError(f"{text!r} is not a PCI address", where=where, fix=_FORMS)
        domain = int(match.group("domain") or "0", 16)
        try:
            return cls(
                domain,
                int(match.group("bus"), 16),
                int(match.group("slot"), 16),
                int(match.group("function"), 16),
            )
        except InputError as exc:
            raise InputError(f"{text!r}: {exc.what}", where=where, fix=_FORMS) from None

    @classmethod
    def from_xml(cls, attrs: Mapping[str, str], where: Location | None = None) -> PciAddress:
        """From libvirt `<address domain= bus= slot= function=/>` attributes (hex or decimal)."""
        values = {}
        for field in _LIMITS:
            raw = attrs.get(field)
            if raw is None:
                if field == "domain":
                    values[field] = 0
                    continue
                raise InputError(
                    f"<address> has no {field} attribute",
                    where=where,
                    fix="give domain, bus, slot and function",
                )
            values[field] = parse_xml_uint(raw, field, where)
        try:
            return cls(**values)
        except InputError as exc:
            raise InputError(exc.what, where=where, fix=exc.fix) from None

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @property
    def nodedev_name(self) -> str:
        """The libvirt node-device name, e.g. pci_0000_03_00_0."""
        return f"pci_{self.domain:04x}_{self.bus:02x}_{self.slot:02x}_{self.function:x}"

    def xml_attributes(self) -> dict[str, str]:
        """The attributes libvirt writes for this address (in libvirt's order)."""
        return {
            "domain": f"0x{self.domain:04x}",
            "bus": f"0x{self.bus:02x}",
            "slot": f"0x{self.slot:02x}",
            "function": f"0x{self.function:x}",
        }

    def with_function(self, function: int) -> PciAddress:
        return PciAddress(self.domain, self.bus, self.slot, function)
