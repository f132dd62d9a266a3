"""SCSI Vital Product Data: pages 0x83 (device identification) and 0x80 (unit serial).

Pure parsing of the bytes the kernel exposes as `device/vpd_pg83` and
`device/vpd_pg80` (drivers/scsi/scsi_sysfs.c, since Linux 4.2). Devices return
odd pages (USB bridges are notorious: short pages, lengths that overrun the
buffer, NUL padding), so every structural problem raises `VpdError`; the
inventory reports that one device as unreadable and carries on.

Layout (SPC-4 §7.8.6): a 4-byte header (peripheral byte, page code, 16-bit
big-endian page length) then, for page 0x83, designators of
`[protocol|code set][PIV|association|type][reserved][length]` + `length` bytes.
"""

from __future__ import annotations

from enum import IntEnum

from .errors import InputError, Location
from .records import frozen
from .wwn import Wwn


class VpdError(InputError):
    """A VPD page that is truncated or malformed; `page` and `offset` say where."""

    def __init__(self, what: str, *, page: int, offset: int, where: Location | None = None) -> None:
        self.page = page
        self.offset = offset
        super().__init__(
            f"VPD page {page:#04x} {what} (at byte {offset})",
            where=where,
            fix="the device returns a broken identification page; name it by another "
            "identity or update its firmware",
        )


class CodeSet(IntEnum):
    BINARY = 1
    ASCII = 2
    UTF8 = 3


class Association(IntEnum):
    LOGICAL_UNIT = 0
    TARGET_PORT = 1
    TARGET_DEVICE = 2


class DesignatorType(IntEnum):
    VENDOR_SPECIFIC = 0
    T10_VENDOR_ID = 1
    EUI64 = 2
    NAA = 3
    RELATIVE_TARGET_PORT = 4
    TARGET_PORT_GROUP = 5
    LOGICAL_UNIT_GROUP = 6
    MD5_LOGICAL_UNIT = 7
    SCSI_NAME_STRING = 8


@frozen
class Designator:
    """One identification descriptor of page 0x83."""

    type: int  # DesignatorType value, or a reserved one we keep but do not interpret
    association: int
    code_set: int
    value: bytes

    @property
    def text(self) -> str:
        """ASCII/UTF-8 designators as text, whitespace runs collapsed (as udev does)."""
        decoded = self.value.decode("utf-8", errors="replace").replace("\x00", " ")
        return " ".join(decoded.split())


@frozen
class DeviceIdentification:
    """Page 0x83, parsed."""

    designators: tuple[Designator, ...]

    def _lu(self, kind: DesignatorType) -> list[Designator]:
        # Only logical-unit designators name the LUN. An FC or SAS target answers with
        # its *port* WWN too (association 1); taking that would give every LUN behind
        # the port the same "WWN".
        return [
            d
            for d in self.designators
            if d.type == kind and d.association == Association.LOGICAL_UNIT
        ]

    @property
    def wwn(self) -> Wwn | None:
        """The LUN's WWN: NAA type 6, then 5, then 2/1/3, then EUI-64 (scsi_id's order)."""
        naa = sorted(
            (Wwn.from_bytes(d.value) for d in self._lu(DesignatorType.NAA)),
            key=lambda w: {6: 0, 5: 1, 2: 2, 1: 3, 3: 4}.get(w.naa_type or 0, 9),
        )
        if naa:
            return naa[0]
        for d in self._lu(DesignatorType.EUI64):
            if len(d.value) == 8:
                return Wwn.from_bytes(d.value, "eui")
        return None

    @property
    def t10_vendor_id(self) -> str | None:
        found = self._lu(DesignatorType.T10_VENDOR_ID)
        return (found[0].text or None) if found else None

    @property
    def target_port_wwn(self) -> Wwn | None:
        for d in self.designators:
            if (
                d.type == DesignatorType.NAA
                and d.association == Association.TARGET_PORT
                and len(d.value) == 8
            ):
                return Wwn.from_bytes(d.value)
        return None


def _header(data: bytes, page: int) -> bytes:
    """The page body after the 4-byte header, checked against the header's length."""
    if len(data) < 4:
        raise VpdError(
            f"is truncated: {len(data)} bytes, the header alone is 4", page=page, offset=0
        )
    if data[1] != page:
        raise VpdError(f"has page code {data[1]:#04x}", page=page, offset=1)
    length = int.from_bytes(data[2:4], "big")
    body = data[4:]
    if len(body) < length:
        raise VpdError(
            f"is truncated: header says {length} bytes, {len(body)} present", page=page, offset=2
        )
    return body[:length]


def parse_pg83(data: bytes) -> DeviceIdentification:
    """Parse page 0x83; VpdError on truncation or an NAA/EUI designator of impossible size."""
    body = _header(data, 0x83)
    out: list[Designator] = []
    pos = 0
    while pos < len(body):
        offset = pos + 4
        if pos + 4 > len(body):
            raise VpdError("ends inside a designator header", page=0x83, offset=offset)
        code_set = body[pos] & 0x0F
        association = (body[pos + 1] >> 4) & 0x03
        kind = body[pos + 1] & 0x0F
        length = body[pos + 3]
        value = body[pos + 4 : pos + 4 + length]
        if len(value) < length:
            raise VpdError(
                f"designator of {length} bytes overruns the page", page=0x83, offset=offset
            )
        designator = Designator(kind, association, code_set, value)
        _check_designator(designator, offset)
        out.append(designator)
        pos += 4 + length
    return DeviceIdentification(tuple(out))


def _check_designator(d: Designator, offset: int) -> None:
    if d.type == DesignatorType.NAA:
        if d.code_set != CodeSet.BINARY:
            raise VpdError("has an NAA designator not in binary", page=0x83, offset=offset)
        try:
            Wwn.from_bytes(d.value)
        except ValueError as exc:
            raise VpdError(
                f"has a malformed NAA designator {d.value.hex()}: {exc}", page=0x83, offset=offset
            ) from None
    elif d.type == DesignatorType.EUI64 and len(d.value) not in (8, 12, 16):
        raise VpdError(
            f"has an EUI-64 designator of {len(d.value)} bytes (8, 12 or 16 expected)",
            page=0x83,
            offset=offset,
        )


def parse_pg80(data: bytes) -> str | None:
    """The unit serial number of page 0x80, trimmed; None when the device reports none."""
    body = _header(data, 0x80)
    # SPC pads the serial with spaces on the left or right; USB bridges pad with NULs.
    serial = body.decode("ascii", errors="replace").replace("\x00", " ").strip()
    return serial or None


def parse_wwid(text: str) -> tuple[Wwn | None, str | None]:
    """The kernel's `device/wwid` (drivers/scsi/scsi_lib.c, scsi_vpd_lun_id): (WWN, T10 ID).

    Written as `naa.<hex>`, `eui.<hex>`, `t10.<ascii>` or a SCSI name string; only
    the first two name a WWN. Raises InputError for an `naa.`/`eui.` value that is
    not a WWN. EUI-64 designators of 12 and 16 bytes are not WWNs here.
    """
    value = text.strip()
    lower = value.lower()
    if lower.startswith("naa."):
        return Wwn.parse(value, name="wwid"), None
    if lower.startswith("eui.") and len(value) == 4 + 16:
        return Wwn.parse(value, name="wwid"), None
    if lower.startswith("t10."):
        return None, " ".join(value[4:].split()) or None
    return None, None
