"""Host inventory read through udev (pyudev), for the live host.

Identities are the same values `sysfs.SysfsInventory` returns for the same device, so
a store captured from one source verifies on the other. udev finds the devices (lookup
by name, enumeration by subsystem, the kernel's uevent keys, the bound driver); what
udev does not carry is read from the device's sysfs directory through
`sysfs.SysfsReader`: binary `config` space, the `iommu_group`/`physfn`/`virtfn*`
links and the kernel objects outside /sys/devices (`kernel/iommu_groups`,
`bus/pci/slots`).

Beyond the inventory, `details()` gives what only udev knows: the properties set by
udev rules (ID_SERIAL, ID_PATH...) and device links such as /dev/disk/by-id/...

A device that vanishes while we read it (hot-unplug) is absent, not an error.
pyudev is imported when an inventory is made, not with this module, so code paths
that never read udev (the hook on a --sysfs tree) do not pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..model.errors import HostAccessError, InputError, Location
from ..model.identity import PciIdentity, UsbIdentity, parse_class, parse_id16
from ..model.inventory import PciDevice, UsbDevice
from ..model.pciaddress import PciAddress, decimal_digits
from ..model.records import field, frozen
from .sysfs import SysfsReader, port_path_of, read_dsn

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from .pcifacts import SysfsPciFacts

_NO_UDEV_FIX = "install libudev1 and pyudev, or give --sysfs /sys"


@frozen
class UdevDetails:
    """What udev knows about one device beyond its identity."""

    sys_path: str
    subsystem: str | None
    device_type: str | None
    device_node: str | None
    # Symlinks udev made for the node, e.g. /dev/disk/by-id/nvme-Samsung_..._S4EWNX0R
    device_links: tuple[str, ...]
    properties: Mapping[str, str] = field(hash=False)


class _Device:
    """A typed view of one `pyudev.Device` (pyudev ships no type information)."""

    def __init__(self, device: Any) -> None:
        self._device = device

    @property
    def sys_path(self) -> str:
        return str(self._device.sys_path)

    @property
    def sys_name(self) -> str:
        return str(self._device.sys_name)

    @property
    def where(self) -> Location:
        return Location(self.sys_path)

    def subsystem(self) -> str | None:
        return _optional_str(self._device.subsystem)

    def device_type(self) -> str | None:
        return _optional_str(self._device.device_type)

    def device_node(self) -> str | None:
        return _optional_str(self._device.device_node)

    def driver(self) -> str | None:
        # libudev reads the `driver` link, which the kernel switches on bind: a bind to
        # vfio-pci shows here at once, before udev has processed the bind event.
        return _optional_str(self._device.driver)

    def properties(self) -> dict[str, str]:
        props = self._device.properties
        return {str(key): str(props[key]) for key in props}

    def property(self, name: str) -> str | None:
        return _optional_str(self._device.properties.get(name))

    def attribute(self, name: str) -> str | None:
        # libudev strips only the trailing newline; sysfs.SysfsReader strips all
        # surrounding whitespace (USB serials are often space-padded), so do the same.
        value = self._device.attributes.get(name)
        if value is None:
            return None
        return bytes(value).decode("utf-8", errors="replace").strip()

    def device_links(self) -> tuple[str, ...]:
        # libudev builds the DEVLINKS property from the links in its database, so the
        # property and `device_links` agree on a live host; umockdev has no udev
        # database and carries DEVLINKS in the uevent file, which only the property sees.
        links = set(self._device.device_links)
        links.update((self.property("DEVLINKS") or "").split())
        return tuple(sorted(str(link) for link in links))


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


class UdevInventory:
    """`HostInventory` of the live host through udev (libudev via pyudev)."""

    def __init__(self, *, context: Any | None = None) -> None:
        try:
            import pyudev
        except ImportError as exc:
            raise HostAccessError(f"udev is unavailable: {exc}", fix=_NO_UDEV_FIX) from None
        self._pyudev: Any = pyudev
        if context is None:
            try:
                context = pyudev.Context()
            except ImportError as exc:
                # pyudev loads libudev.so.1 with ctypes only when a Context is made.
                raise HostAccessError(f"udev is unavailable: {exc}", fix=_NO_UDEV_FIX) from None
            except OSError as exc:
                raise HostAccessError(
                    f"udev is unavailable: {exc.strerror or exc}", fix=_NO_UDEV_FIX
                ) from None
        self._context: Any = context
        self.reader = SysfsReader(str(context.sys_path))
        if not os.path.isdir(self.reader.root):
            raise HostAccessError(
                f"udev sees no sysfs at {self.reader.root}",
                fix="run on the host itself, or give --sysfs ROOT or --host SNAPSHOT.json",
            )
        self._slots: dict[str, str] | None = None

    # -- udev access -----------------------------------------------------

    def pci_facts(self) -> SysfsPciFacts:
        """SR-IOV counts, reset methods, mdev types of the devices below this root."""
        from .pcifacts import SysfsPciFacts

        return SysfsPciFacts(self.reader)

    def _by_name(self, subsystem: str, name: str) -> _Device | None:
        pyudev = self._pyudev
        try:
            return _Device(pyudev.Devices.from_name(self._context, subsystem, name))
        except pyudev.DeviceNotFoundError:
            return None

    def _by_sys_path(self, sys_path: str) -> _Device | None:
        pyudev = self._pyudev
        try:
            return _Device(pyudev.Devices.from_sys_path(self._context, sys_path))
        except pyudev.DeviceNotFoundError:
            return None

    def _enumerate(self, *, parent: _Device | None = None, **match: str) -> Iterator[_Device]:
        enumerator = self._context.list_devices(**match)
        if parent is not None:
            enumerator = enumerator.match_parent(parent._device)
        try:
            # pyudev skips devices that vanish between the scan and their creation.
            devices = list(enumerator)
        except OSError as exc:
            raise HostAccessError(
                f"udev cannot list {match or 'devices'}: {exc.strerror or exc}",
                fix="run as root, or give --sysfs ROOT",
            ) from None
        return (_Device(device) for device in devices)

    # -- PCI -------------------------------------------------------------
    def pci_device(self, address: PciAddress) -> PciDevice | None:
        device = self._by_name("pci", str(address))
        return None if device is None else self._pci_record(address, device)

    def pci_devices(self) -> Sequence[PciDevice]:
        out = []
        for device in self._enumerate(subsystem="pci"):
            record = self._pci_record(PciAddress.parse(device.sys_name, device.where), device)
            if record is not None:
                out.append(record)
        return sorted(out, key=lambda dev: dev.address)

    def _pci_record(self, address: PciAddress, device: _Device) -> PciDevice | None:
        identity = self._pci_identity(device)
        if identity is None:
            return None
        base = Path(device.sys_path)
        r = self.reader
        group = r.link_name(base / "iommu_group")
        physfn = r.link_name(base / "physfn")
        virtfns = sorted(
            PciAddress.parse(name, device.where)
            for entry in r.listdir(base)
            if entry.startswith("virtfn") and (name := r.link_name(base / entry)) is not None
        )
        record = PciDevice(
            address=address,
            identity=identity,
            iommu_group=int(group) if group is not None and decimal_digits(group) else None,
            numa_node=_numa_node(device.attribute("numa_node")),
            driver=device.driver(),
            physical_slot=self._slot_of(address),
            # libudev's sys_path is already the canonical /sys/devices/... path.
            port_path=port_path_of(device.sys_path),
            physfn=PciAddress.parse(physfn, device.where) if physfn else None,
            virtfns=tuple(virtfns),
        )
        # A function pulled out while we read it leaves a record with its later fields
        # missing (no serial, no group), which verification would report as a changed
        # device. If it is gone now, it is absent; if not, every read above saw it.
        if r.text(base / "uevent") is None:
            return None
        return record

    def _pci_identity(self, device: _Device) -> PciIdentity | None:
        # The kernel's uevent keys (pci_uevent() in drivers/pci/pci-driver.c), which
        # libudev reads from the device's `uevent` file: the same values as the
        # vendor/device/subsystem_*/class attributes, in one read.
        where = device.where
        ids = _id_pair(device, "PCI_ID", where)
        if ids is None:
            # No uevent keys: the device went away under us.
            return None
        subsystem = _id_pair(device, "PCI_SUBSYS_ID", where)
        # PCI_CLASS is written with "%04X", so class 0x030000 is "30000" in the uevent.
        klass = device.property("PCI_CLASS")
        return PciIdentity(
            vendor=ids[0],
            device=ids[1],
            subsystem_vendor=subsystem[0] if subsystem else None,
            subsystem_device=subsystem[1] if subsystem else None,
            class_code=parse_class(klass.zfill(6), where) if klass else None,
            # libudev reads attributes as C strings, cut at the first NUL byte, so the
            # binary config space is read from the file itself.
            serial=read_dsn(self.reader.bytes(Path(device.sys_path) / "config")),
        )

    def _slot_of(self, address: PciAddress) -> str | None:
        # Hotplug slots are kobjects under /sys/bus/pci/slots, not devices: udev has no
        # record of them. NAME/address is "dddd:bb:ss", shared by the slot's functions.
        if self._slots is None:
            slots_dir = Path(self.reader.path("bus", "pci", "slots"))
            self._slots = {}
            for name in self.reader.listdir(slots_dir):
                addr = self.reader.text(slots_dir / name / "address")
                if addr:
                    self._slots[addr.lower()] = name
        return self._slots.get(f"{address.domain:04x}:{address.bus:02x}:{address.slot:02x}")

    def iommu_group_members(self, group: int) -> Sequence[PciAddress]:
        # IOMMU groups are kernel objects, not devices: udev does not know them.
        path = self.reader.path("kernel", "iommu_groups", str(group), "devices")
        where = Location(str(path))
        return sorted(PciAddress.parse(name, where) for name in self.reader.listdir(path))

    # -- USB -------------------------------------------------------------
    def usb_devices(self) -> Sequence[UsbDevice]:
        out = []
        # DEVTYPE tells devices (root hubs included) from their interfaces (1-2:1.0).
        for device in self._enumerate(subsystem="usb", DEVTYPE="usb_device"):
            record = self._usb_record(device)
            if record is not None:
                out.append(record)
        return sorted(out, key=lambda dev: dev.port_path)

    def _usb_record(self, device: _Device) -> UsbDevice | None:
        # The sysfs attributes, not udev's ID_VENDOR_ID/ID_SERIAL_SHORT: usb_id replaces
        # spaces and unsafe characters in ID_SERIAL_SHORT with '_', and ID_* exist only
        # where the udev rules ran, so they would not match what sysfs reads.
        vendor = device.attribute("idVendor")
        product = device.attribute("idProduct")
        busnum = device.attribute("busnum")
        devnum = device.attribute("devnum")
        if vendor is None or product is None or busnum is None or devnum is None:
            return None
        where = device.where
        record = UsbDevice(
            bus=_decimal(busnum, "busnum", where),
            device=_decimal(devnum, "devnum", where),
            identity=UsbIdentity(
                parse_id16(vendor, "idVendor", where),
                parse_id16(product, "idProduct", where),
                device.attribute("serial") or None,
            ),
            port_path=device.sys_name,
            manufacturer=device.attribute("manufacturer"),
            product_name=device.attribute("product"),
            driver=device.driver(),
        )
        # Unplugged while we read it: see _pci_record.
        if self.reader.text(Path(device.sys_path) / "uevent") is None:
            return None
        return record

    # -- udev-only extras ------------------------------------------------
    def details(self, sys_path: str) -> UdevDetails | None:
        """Properties and device links of the device at `sys_path`, or None if absent."""
        device = self._by_sys_path(sys_path)
        return None if device is None else _details(device)

    def pci_details(self, address: PciAddress) -> UdevDetails | None:
        device = self._by_name("pci", str(address))
        return None if device is None else _details(device)

    def usb_details(self, port_path: str) -> UdevDetails | None:
        """By the port path of a `UsbDevice`, e.g. `1-1.2`."""
        device = self._by_name("usb", port_path)
        return None if device is None else _details(device)

    def block_devices(self, address: PciAddress) -> tuple[UdevDetails, ...]:
        """Block devices below a PCI function (NVMe namespaces, disks behind an HBA).

        Their device links (/dev/disk/by-id/...) are the stable names an admin puts
        in a domain for a disk that is not passed through whole. Only the function's
        own subtree is scanned.
        """
        parent = self._by_name("pci", str(address))
        if parent is None:
            return ()
        found = [_details(dev) for dev in self._enumerate(parent=parent, subsystem="block")]
        return tuple(sorted(found, key=lambda d: d.sys_path))


def _details(device: _Device) -> UdevDetails:
    return UdevDetails(
        sys_path=device.sys_path,
        subsystem=device.subsystem(),
        device_type=device.device_type(),
        device_node=device.device_node(),
        device_links=device.device_links(),
        properties=MappingProxyType(device.properties()),
    )


def _id_pair(device: _Device, name: str, where: Location) -> tuple[int, int] | None:
    """A `VVVV:DDDD` uevent key such as PCI_ID or PCI_SUBSYS_ID."""
    value = device.property(name)
    if value is None:
        return None
    first, sep, second = value.partition(":")
    if not sep:
        raise InputError(
            f"udev property {name}={value!r} is not VENDOR:DEVICE",
            where=where,
            fix="report this kernel's uevent format, or use --sysfs",
        )
    return parse_id16(first, f"{name} vendor", where), parse_id16(second, f"{name} device", where)


def _numa_node(value: str | None) -> int | None:
    # -1 means the platform reported no NUMA affinity.
    if value is None or not decimal_digits(value):
        return None
    return int(value)


def _decimal(value: str, name: str, where: Location) -> int:
    if not decimal_digits(value):
        raise InputError(f"{name} {value!r} is not a number", where=where, fix="check the device")
    return int(value)
