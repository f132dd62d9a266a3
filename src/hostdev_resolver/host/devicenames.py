"""Device names from the ID databases installed on the host (pci.ids, usb.ids).

Administrators pick devices by name ("NVIDIA Corporation GA102 [GeForce RTX 3090]"),
so `inventory` and `map list/show` show one next to the IDs. The names come from the
files the `pci.ids`/`hwdata` and `usb.ids`/`usbutils` packages install; nothing is
downloaded, and a host without them just shows no names.

pci.ids is over a megabyte and 40,000 lines: it is read once as bytes and only the
blocks of the vendors asked about are parsed (a byte search finds the vendor's line),
so naming a dozen devices costs a few milliseconds, not a full parse.

Format (both files): `VVVV  Vendor name`, then `\tDDDD  Device name` lines, then
`\t\tSSSS SSSS  Subsystem name` lines (pci.ids only); the vendor list ends where the
class lists begin (`C 00  Unclassified device`).
"""

from __future__ import annotations

import os

from ..model.records import frozen

PCI_IDS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")
USB_IDS = ("/usr/share/misc/usb.ids", "/usr/share/hwdata/usb.ids", "/var/lib/usbutils/usb.ids")
# Colon-separated files to use instead of the installed ones ("" for none).
IDS_ENV = "HOSTDEV_RESOLVER_IDS"


@frozen
class _Vendor:
    name: str
    devices: dict[int, str]


class IdsFile:
    """One pci.ids or usb.ids file, parsed vendor by vendor on demand."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._data: bytes | None = None
        self._vendors: dict[int, _Vendor | None] = {}

    def _bytes(self) -> bytes:
        if self._data is None:
            self._data = b""
            if self.path is not None:
                try:
                    with open(self.path, "rb") as handle:
                        self._data = handle.read()
                except OSError:
                    pass  # no database: no names
        return self._data

    def vendor(self, vendor: int) -> _Vendor | None:
        if vendor not in self._vendors:
            self._vendors[vendor] = self._parse_vendor(vendor)
        return self._vendors[vendor]

    def _parse_vendor(self, vendor: int) -> _Vendor | None:
        data = self._bytes()
        key = b"\n%04x  " % vendor
        start = data.find(key)
        if start < 0 and data.startswith(key[1:]):
            start = -1
        elif start < 0:
            return None
        lines = data[start + 1 :].split(b"\n", 1)
        name = lines[0][6:].decode("utf-8", "replace").strip()
        devices: dict[int, str] = {}
        rest = lines[1] if len(lines) > 1 else b""
        for raw in rest.split(b"\n"):
            if raw.startswith(b"\t\t") or raw.startswith(b"#") or not raw.strip():
                continue
            if not raw.startswith(b"\t"):
                break  # the next vendor, or the class lists
            text = raw[1:].decode("utf-8", "replace")
            code, _, label = text.partition("  ")
            try:
                devices[int(code, 16)] = label.strip()
            except ValueError:
                continue
        return _Vendor(name, devices)

    def name(self, vendor: int, device: int) -> str | None:
        """'Vendor Device', 'Vendor' when only the vendor is known, None when neither."""
        entry = self.vendor(vendor)
        if entry is None:
            return None
        device_name = entry.devices.get(device)
        return f"{entry.name} {device_name}" if device_name else entry.name


def _first_existing(paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if os.path.isfile(p)), None)


class DeviceNames:
    """PCI and USB names; `from_environment()` finds the host's databases."""

    def __init__(self, pci_ids: str | None, usb_ids: str | None) -> None:
        self.pci_ids = IdsFile(pci_ids)
        self.usb_ids = IdsFile(usb_ids)

    @classmethod
    def from_environment(
        cls, environ: dict[str, str] | os._Environ[str] = os.environ
    ) -> DeviceNames:
        """The installed databases, or the files named by HOSTDEV_RESOLVER_IDS."""
        listed = environ.get(IDS_ENV)
        if listed is None:
            return cls(_first_existing(PCI_IDS), _first_existing(USB_IDS))
        files = tuple(p for p in listed.split(":") if p)
        pci = tuple(p for p in files if os.path.basename(p) == "pci.ids")
        usb = tuple(p for p in files if os.path.basename(p) == "usb.ids")
        return cls(_first_existing(pci), _first_existing(usb))

    def pci(self, vendor: int, device: int) -> str | None:
        return self.pci_ids.name(vendor, device)

    def usb(self, vendor: int, product: int) -> str | None:
        return self.usb_ids.name(vendor, product)
