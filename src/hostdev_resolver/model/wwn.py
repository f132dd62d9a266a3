"""World Wide Names: the one parser and the one spelling of SCSI/FC identities.

A WWN reaches us in many spellings: udev's `ID_WWN` (`0x5000c500a1b2c3d4`), the
kernel's `device/wwid` (`naa.5000c500a1b2c3d4`, `eui.0123456789abcdef`), FC sysfs
attributes (`0x21000024ff3dc1a2`), libvirt node-device XML (`21000024ff3dc1a2`),
switch consoles (`21:00:00:24:ff:3d:c1:a2`), upper or lower case. `Wwn.parse`
accepts all of them and refuses anything else; `str(wwn)` writes the one form
the store and the metadata record use.

Formats (SPC-4 §7.8.6.6, designator types 2 and 3):

- NAA (first hex digit = NAA type): types 1, 2, 3 and 5 are 8 bytes, type 6
  (IEEE Registered Extended) is 16 bytes. Written `0x` + lowercase hex.
- EUI-64: 8 bytes, no type nibble of its own, so it cannot be told from NAA by
  its digits: it is written (and must be given) as `eui.` + hex.

udev's `ID_WWN` keeps only the first 8 bytes of an NAA type 6 name and puts the
rest in `ID_WWN_WITH_EXTENSION` (systemd src/udev/scsi_id/scsi_serial.c,
check_fill_0x83_id). Many LUNs of one array share those first 8 bytes (the
vendor extension carries the LUN serial), so such a *short* type 6 name is
accepted but only ever matched uniquely (`Wwn.covers`); the store always keeps
the full 16 bytes captured from the host.
"""

from __future__ import annotations

import re

from .errors import InputError, Location
from .records import frozen

FORMS = (
    "expected 16 hex digits of an NAA type 1, 2, 3 or 5 name (0x5000c500a1b2c3d4, "
    "naa.5000c500a1b2c3d4, 50:00:c5:00:a1:b2:c3:d4), 32 hex digits of an NAA type 6 "
    "name (0x600a0980…, or its first 16 digits as udev's ID_WWN gives them), "
    "or an EUI-64 as eui.0123456789abcdef"
)

_NAA8 = frozenset("1235")
_HEX = re.compile(r"[0-9a-f]+")
_COLONS = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2})+")

# Not typing.TYPE_CHECKING: see model/scsi.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    WwnScheme = Literal["naa", "eui"]


@frozen(order=True)
class Wwn:
    """A validated WWN: `scheme` and lowercase hex `digits` (16 or 32 of them)."""

    scheme: WwnScheme
    digits: str

    def __post_init__(self) -> None:
        _check(self.scheme, self.digits, self.digits)

    @classmethod
    def parse(cls, text: str, *, name: str = "WWN", where: Location | None = None) -> Wwn:
        """Any accepted spelling (see module doc); InputError naming `text` otherwise."""
        raw = text.strip().lower()
        scheme: WwnScheme = "naa"
        for prefix, kind in (("naa.", "naa"), ("eui.", "eui"), ("0x", "naa")):
            if raw.startswith(prefix):
                raw = raw[len(prefix) :]
                scheme = "eui" if kind == "eui" else "naa"
                break
        if _COLONS.fullmatch(raw):
            raw = raw.replace(":", "")
        try:
            _check(scheme, raw, text)
        except ValueError as exc:
            raise InputError(f"{name} {text!r} {exc}", where=where, fix=FORMS) from None
        return cls(scheme, raw)

    @classmethod
    def from_bytes(cls, data: bytes, scheme: WwnScheme = "naa") -> Wwn:
        """From a binary designator (VPD page 0x83); ValueError when it is not one."""
        digits = data.hex()
        _check(scheme, digits, digits)
        return cls(scheme, digits)

    @property
    def naa_type(self) -> int | None:
        return int(self.digits[0], 16) if self.scheme == "naa" else None

    @property
    def is_short(self) -> bool:
        """An NAA type 6 name cut to its first 8 bytes (udev's ID_WWN without extension)."""
        return self.naa_type == 6 and len(self.digits) == 16

    def covers(self, other: Wwn) -> bool:
        """True when `other` is this name, or this is the short form of `other`."""
        if self == other:
            return True
        return (
            self.is_short
            and other.scheme == "naa"
            and len(other.digits) == 32
            and other.digits.startswith(self.digits)
        )

    @property
    def by_id_name(self) -> str | None:
        """The /dev/disk/by-id link udev makes for this name, or None (EUI-64, short form).

        60-persistent-storage.rules: `SYMLINK+="disk/by-id/wwn-$env{ID_WWN_WITH_EXTENSION}"`,
        and scsi_id sets ID_WWN only for NAA designators.
        """
        if self.scheme != "naa" or self.is_short:
            return None
        return f"wwn-0x{self.digits}"

    @property
    def scsi_id_serial(self) -> str:
        """udev's ID_SERIAL for this designator: the designator type digit + hex.

        scsi_id prefixes the hex with the SPC designator type (3 = NAA, 2 = EUI-64);
        dm-multipath uses that ID_SERIAL as the map's WWID (`dm/uuid` = `mpath-3…`).
        """
        return ("3" if self.scheme == "naa" else "2") + self.digits

    @property
    def nodedev_form(self) -> str:
        """libvirt node-device XML writes FC names as bare hex (`<wwpn>2100…</wwpn>`)."""
        return self.digits

    def __str__(self) -> str:
        return f"0x{self.digits}" if self.scheme == "naa" else f"eui.{self.digits}"


def _check(scheme: str, digits: str, shown: str) -> None:
    if not digits or _HEX.fullmatch(digits) is None:
        raise ValueError("is not hexadecimal")
    if scheme == "eui":
        if len(digits) != 16:
            raise ValueError(f"has {len(digits)} hex digits; an EUI-64 has 16")
        return
    if scheme != "naa":
        raise ValueError(f"has unknown scheme {scheme!r}")
    nibble = digits[0]
    if len(digits) == 16:
        if nibble not in _NAA8 and nibble != "6":
            raise ValueError(
                f"has NAA type {nibble}; 8-byte names are NAA type 1, 2, 3 or 5 "
                "(or the first half of a type 6)"
            )
        return
    if len(digits) == 32:
        if nibble != "6":
            raise ValueError(f"has NAA type {nibble}; 16-byte names are NAA type 6")
        return
    raise ValueError(f"has {len(digits)} hex digits; a WWN has 16 or 32")


def parse_optional(
    text: str | None, *, name: str = "WWN", where: Location | None = None
) -> Wwn | None:
    """`Wwn.parse` for an attribute that may be absent."""
    return None if text is None else Wwn.parse(text, name=name, where=where)


def parse_fc_attribute(text: str | None) -> Wwn | None:
    """An FC sysfs name (`fc_host/*/port_name`, `fabric_name`…), None when unset.

    The FC transport class reports an unknown name as 0 or all ones
    (drivers/scsi/scsi_transport_fc.c initialises fabric_name to -1, and many
    drivers leave it 0 while the port is offline).
    """
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("", "0x0", "0x0000000000000000", "0xffffffffffffffff", "unknown"):
        return None
    return Wwn.parse(value)
