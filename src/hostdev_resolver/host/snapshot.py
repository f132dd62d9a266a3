"""A host's inventory as a JSON document: `inventory --format json` writes it, `--host` reads it.

This lets a node be validated anywhere (CI, a laptop) without the node itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..core.locate import unobserved_pci, unobserved_usb
from ..model.errors import InputError, Location
from ..model.identity import PciIdentity, UsbIdentity, parse_class, parse_dsn, parse_id16
from ..model.inventory import IndexedInventory, PciDevice, UsbDevice
from ..model.pciaddress import PciAddress, decimal_digits
from ..model.records import frozen

if TYPE_CHECKING:
    from pathlib import Path

    from ..model.inventory import HostInventory
    from ..model.scsi import ScsiInventory

FORMAT = "hostdev-resolver-host/1"


def _hex(value: int | None, width: int = 4) -> str | None:
    return None if value is None else f"{value:0{width}x}"


def pci_to_json(dev: PciDevice) -> dict[str, Any]:
    ident = dev.identity
    return {
        "address": str(dev.address),
        "vendor": _hex(ident.vendor),
        "device": _hex(ident.device),
        "subsystem_vendor": _hex(ident.subsystem_vendor),
        "subsystem_device": _hex(ident.subsystem_device),
        "class": _hex(ident.class_code, 6),
        "serial": ident.serial,
        "iommu_group": dev.iommu_group,
        "numa_node": dev.numa_node,
        "driver": dev.driver,
        "physical_slot": dev.physical_slot,
        "port_path": dev.port_path,
        "physfn": str(dev.physfn) if dev.physfn else None,
        "virtfns": [str(v) for v in dev.virtfns],
    }


def usb_to_json(dev: UsbDevice) -> dict[str, Any]:
    return {
        "bus": dev.bus,
        "device": dev.device,
        "vendor": _hex(dev.identity.vendor),
        "product": _hex(dev.identity.product),
        "serial": dev.identity.serial,
        "port_path": dev.port_path,
        "manufacturer": dev.manufacturer,
        "product_name": dev.product_name,
        "driver": dev.driver,
    }


def inventory_to_json(inventory: HostInventory, node: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": FORMAT,
        "node": node,
        "pci": [pci_to_json(d) for d in inventory.pci_devices()],
        "usb": [usb_to_json(d) for d in inventory.usb_devices()],
    }
    # A snapshot taken through a source that cannot see some fields (libvirt) says so,
    # or checking a store against it would count those fields as different.
    pci_blind, usb_blind = unobserved_pci(inventory), unobserved_usb(inventory)
    if pci_blind or usb_blind:
        data["unobserved"] = {"pci": sorted(pci_blind), "usb": sorted(usb_blind)}
    return data


@frozen
class HostSnapshot(IndexedInventory):
    """A recorded host: the inventory value (`IndexedInventory`) read from JSON.

    Its SCSI/FC part is kept as JSON and parsed when a LUN needs it: a snapshot of a
    host without LUN references never pays for (or fails on) it.
    """

    scsi_json: Any = None

    def scsi_inventory(self) -> ScsiInventory | None:
        """The node's SCSI/FC view as recorded, or None for a snapshot without one."""
        if self.scsi_json is None:
            return None
        from ..model.scsi import scsi_from_json

        return scsi_from_json(self.scsi_json, Location(f"host snapshot of {self.node or 'a node'}"))

    @classmethod
    def load(cls, path: Path) -> HostSnapshot:
        where = Location(str(path))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(
                "host snapshot not found",
                where=where,
                fix="give --host the output of 'inventory --format json'",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read host snapshot: {exc}", where=where) from None
        except json.JSONDecodeError as exc:
            raise InputError(
                f"not JSON: {exc.msg}", where=Location(str(path), exc.lineno)
            ) from None
        return cls.from_json(data, where)

    @classmethod
    def from_json(cls, data: Any, where: Location) -> HostSnapshot:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(
                f'not a host snapshot (expected "format": "{FORMAT}")',
                where=where,
                fix="write it with 'hostdev-resolver inventory --format json'",
            )
        pci = tuple(
            _pci_from_json(_object(item, f"pci[{i}]", where), f"pci[{i}]", where)
            for i, item in enumerate(_array(data.get("pci"), "pci", where))
        )
        usb = tuple(
            _usb_from_json(_object(item, f"usb[{i}]", where), f"usb[{i}]", where)
            for i, item in enumerate(_array(data.get("usb"), "usb", where))
        )
        node = data.get("node")
        blind = data.get("unobserved") or {}
        if not isinstance(blind, dict):
            raise InputError('"unobserved" must be an object of field lists', where=where)
        scsi = data.get("scsi")
        if scsi is not None:
            _object(scsi, "scsi", where)
        return cls(
            node if isinstance(node, str) else None,
            pci,
            usb,
            frozenset(_strings(blind.get("pci"), "unobserved.pci", where)),
            frozenset(_strings(blind.get("usb"), "unobserved.usb", where)),
            scsi_json=scsi,
        )


# -- reading JSON values, each checked for its type ------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _malformed(what: str, expected: str, value: Any, where: Location) -> InputError:
    return InputError(
        f"malformed host snapshot: {what} must be {expected}, "
        f"not {'an empty string' if value == '' else _json_type(value)}",
        where=where,
        fix="write it again with 'hostdev-resolver inventory --format json'",
    )


def _object(value: Any, what: str, where: Location) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(what, "an object", value, where)
    return value


def _array(value: Any, what: str, where: Location) -> list[Any]:
    """A JSON array; absent (null) is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _malformed(what, "an array", value, where)
    return value


def _strings(value: Any, what: str, where: Location) -> list[str]:
    items = _array(value, what, where)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _malformed(f"{what}[{i}]", "a string", item, where)
    return items


def _text(item: dict[str, Any], key: str, what: str, where: Location) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise _malformed(f"{what}.{key}", "a non-empty string", value, where)
    return value


def _opt(item: dict[str, Any], key: str, what: str, where: Location) -> str | None:
    """An optional string field: null or "" is absent."""
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _malformed(f"{what}.{key}", "a string or null", value, where)
    return value


def _count(item: dict[str, Any], key: str, what: str, where: Location) -> int | None:
    """An optional non-negative integer field (IOMMU group, NUMA node; -1 is none)."""
    value = item.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise _malformed(f"{what}.{key}", "a non-negative integer or null", value, where)
    return None if value == -1 else value


def _number(item: dict[str, Any], key: str, what: str, where: Location) -> int:
    """A required non-negative integer (USB bus and device numbers)."""
    value = item.get(key)
    if isinstance(value, str) and decimal_digits(value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed(f"{what}.{key}", "a non-negative integer", value, where)
    return value


def _pci_from_json(item: dict[str, Any], what: str, where: Location) -> PciDevice:
    sv, sd, klass, serial, physfn = (
        _opt(item, k, what, where)
        for k in ("subsystem_vendor", "subsystem_device", "class", "serial", "physfn")
    )
    return PciDevice(
        address=PciAddress.parse(_text(item, "address", what, where), where),
        identity=PciIdentity(
            vendor=parse_id16(_text(item, "vendor", what, where), "vendor", where),
            device=parse_id16(_text(item, "device", what, where), "device", where),
            subsystem_vendor=parse_id16(sv, "subsystem_vendor", where) if sv else None,
            subsystem_device=parse_id16(sd, "subsystem_device", where) if sd else None,
            class_code=parse_class(klass, where) if klass else None,
            serial=parse_dsn(serial, where) if serial else None,
        ),
        iommu_group=_count(item, "iommu_group", what, where),
        numa_node=_count(item, "numa_node", what, where),
        driver=_opt(item, "driver", what, where),
        physical_slot=_opt(item, "physical_slot", what, where),
        port_path=_opt(item, "port_path", what, where),
        physfn=PciAddress.parse(physfn, where) if physfn else None,
        virtfns=tuple(
            PciAddress.parse(v, where)
            for v in _strings(item.get("virtfns"), f"{what}.virtfns", where)
        ),
    )


def _usb_from_json(item: dict[str, Any], what: str, where: Location) -> UsbDevice:
    return UsbDevice(
        bus=_number(item, "bus", what, where),
        device=_number(item, "device", what, where),
        identity=UsbIdentity(
            parse_id16(_text(item, "vendor", what, where), "vendor", where),
            parse_id16(_text(item, "product", what, where), "product", where),
            _opt(item, "serial", what, where),
        ),
        port_path=_text(item, "port_path", what, where),
        manufacturer=_opt(item, "manufacturer", what, where),
        product_name=_opt(item, "product_name", what, where),
        driver=_opt(item, "driver", what, where),
    )
