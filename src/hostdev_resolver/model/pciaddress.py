"""PCI addresses: one type, one parser for every spelling, one way to write it."""

from __future__ import annotations

from .errors import InputError, Location
from .records import frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Mapping

_HEX_CHARS = "0123456789abcdefABCDEF"


# No number we read has more than 20 digits (2**64 - 1); the bound leaves room for
# leading zeros and keeps int() below its 4300-digit limit (a ValueError otherwise).
MAX_DIGITS = 64


def decimal_digits(text: str) -> bool:
    """Only ASCII 0-9, at least one and at most MAX_DIGITS. (str.isdigit() also takes
    superscripts and other scripts' digits, which int() then refuses or reads; int()
    itself takes signs, '_' and surrounding spaces.)"""
    return 0 < len(text) <= MAX_DIGITS and not text.lstrip("0123456789")


def shown(value: str) -> str:
    """A value for a one-line message: repr, cut short when it is long."""
    return repr(value) if len(value) <= 40 else f"{value[:32]!r}… ({len(value)} characters)"


def hex_digits(text: str, least: int, most: int) -> bool:
    """Is `text` between `least` and `most` hex digits? (No regular expressions here:
    importing re costs the hook a third of the interpreter's start-up.)"""
    return least <= len(text) <= most and not text.lstrip(_HEX_CHARS)


def _split_address(text: str) -> tuple[str, str, str, str] | None:
    """(domain, bus, slot, function) hex fields of any spelling, or None.

    0000:03:00.0, 03:00.0, 10000:e1:00.0 (VMD and other 32-bit PCI domains), and
    libvirt node-device names pci_0000_03_00_0.
    """
    if text.startswith("pci_"):
        parts = text[4:].split("_")
        if (
            len(parts) == 4
            and hex_digits(parts[0], 4, 8)
            and all(hex_digits(p, 2, 2) for p in parts[1:3])
        ):
            return parts[0], parts[1], parts[2], parts[3]
        return None
    head, dot, function = text.rpartition(".")
    fields = head.split(":")
    if not dot or len(fields) not in (2, 3):
        return None
    domain = fields[0] if len(fields) == 3 else "0"
    bus, slot = fields[-2], fields[-1]
    if hex_digits(domain, 1, 8) and hex_digits(bus, 1, 2) and hex_digits(slot, 1, 2):
        return domain, bus, slot, function
    return None


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
        if text[:2] in ("0x", "0X"):
            if not hex_digits(text[2:], 1, 16):
                raise ValueError(text)
            return int(text[2:], 16)
        if not decimal_digits(text):
            raise ValueError(text)
        if len(text) > 1 and text.startswith("0"):
            return int(text[1:], 8)  # ValueError for 8 and 9, as strtoul stops there
        return int(text, 10)
    except ValueError:
        raise InputError(
            f"{name}={shown(value)} is not a number",
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
        if (
            0 <= self.domain <= 0xFFFFFFFF
            and 0 <= self.bus <= 0xFF
            and 0 <= self.slot <= 0x1F
            and 0 <= self.function <= 0x7
        ):
            return  # the common case, without a loop: addresses are made by the thousand
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
        if (
            len(text) == 12
            and text[4] == ":"
            and text[7] == ":"
            and text[10] == "."
            and text[11] in "01234567"
            and hex_digits(text[:4], 4, 4)
            and hex_digits(text[5:7], 2, 2)
            and hex_digits(text[8:10], 2, 2)
        ):
            # 0000:03:00.0, as the kernel names every device: read without splitting
            domain, bus, slot, function = (
                int(text[:4], 16),
                int(text[5:7], 16),
                int(text[8:10], 16),
                int(text[11]),
            )
        else:
            fields = _split_address(text.strip())
            if fields is None or len(fields[3]) != 1 or fields[3] not in "01234567":
                raise InputError(f"{text!r} is not a PCI address", where=where, fix=_FORMS)
            domain, bus, slot, function = (int(f, 16) for f in fields)
        try:
            return cls(domain, bus, slot, function)
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
