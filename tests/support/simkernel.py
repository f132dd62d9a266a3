"""A simulated kernel for the vfio writes: applies PCI driver-core semantics to a HostTree.

`SimKernel` is a `vfio.Writer`: each write to a sysfs attribute changes the tree the
way Linux would (drivers/pci/pci-sysfs.c, drivers/base/bus.c, drivers/pci/pci-driver.c):

- `DEV/driver_override`: stores the string; an empty write (a lone newline) clears it
  and the file reads "(null)" again.
- `drivers/DRV/unbind`: ENODEV unless DEV is bound to DRV; otherwise the DEV/driver
  link and the drivers/DRV/DEV link both go.
- `drivers/DRV/bind`: EBUSY if DEV has a driver; ENODEV if driver_override names another
  driver (pci_match_device only considers the override); otherwise binds.
- `drivers_probe`: nothing if DEV is bound; else binds to the override driver when set
  (only if that driver is loaded, i.e. its directory exists), else to the device's
  native driver (what its ID tables would match, recorded here per device).

`fail_at` injects a failure into the write of that index (0-based): the write is
refused with EIO and changes nothing, as a kernel attribute store returning an error.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from hostdev_resolver.core.vfioplan import SysfsWrite
from hostdev_resolver.model.errors import HostAccessError, Location
from hostdev_resolver.model.pciaddress import PciAddress
from tests.support.hosttree import HostTree, set_uevent_driver


class SimKernel:
    def __init__(
        self, root: Path, native: dict[str, str | None], *, fail_at: int | None = None
    ) -> None:
        self.root = root
        self.native = {str(PciAddress.parse(a)): d for a, d in native.items()}
        self.fail_at = fail_at
        self.writes: list[SysfsWrite] = []

    # -- the tree ----------------------------------------------------------------
    def _device(self, address: str) -> Path:
        link = self.root / "bus" / "pci" / "devices" / str(PciAddress.parse(address.strip()))
        if not link.exists():
            raise OSError(errno.ENODEV, "No such device")
        return link.resolve()

    def driver_of(self, address: str) -> str | None:
        link = self._device(address) / "driver"
        return os.path.basename(os.readlink(link)) if link.is_symlink() else None

    def override_of(self, address: str) -> str:
        return (self._device(address) / "driver_override").read_text().strip()

    def _bind(self, dev: Path, driver: str) -> None:
        drv = self.root / "bus" / "pci" / "drivers" / driver
        (dev / "driver").symlink_to(os.path.relpath(drv, dev))
        (drv / dev.name).symlink_to(os.path.relpath(dev, drv))
        set_uevent_driver(dev, driver)

    def _unbind(self, dev: Path, driver: str) -> None:
        (dev / "driver").unlink()
        (self.root / "bus" / "pci" / "drivers" / driver / dev.name).unlink()
        set_uevent_driver(dev, None)

    def _loaded(self, driver: str) -> bool:
        return (self.root / "bus" / "pci" / "drivers" / driver).is_dir()

    # -- the Writer interface ----------------------------------------------------
    def write(self, write: SysfsWrite) -> None:
        index = len(self.writes)
        self.writes.append(write)
        try:
            if index == self.fail_at:
                raise OSError(errno.EIO, "Input/output error (injected)")
            self._apply(write.path, write.value)
        except OSError as exc:
            raise HostAccessError(
                f"sysfs write failed at step '{write.step}': {exc.strerror}",
                where=Location(str(self.root / write.path)),
            ) from None

    def _apply(self, path: str, value: str) -> None:
        parts = path.split("/")
        if parts[:3] == ["bus", "pci", "devices"] and parts[4:] == ["driver_override"]:
            dev = self._device(parts[3])
            text = value.rstrip("\n")
            (dev / "driver_override").write_text((text or "(null)") + "\n")
            return
        if parts[:3] == ["bus", "pci", "drivers"] and len(parts) == 5:
            driver, action = parts[3], parts[4]
            if not self._loaded(driver):
                raise OSError(errno.ENOENT, "No such file or directory")
            dev = self._device(value)
            current = self.driver_of(value)
            if action == "unbind":
                if current != driver:
                    raise OSError(errno.ENODEV, "No such device")
                self._unbind(dev, driver)
                return
            if action == "bind":
                override = self.override_of(value)
                if current is not None:
                    raise OSError(errno.EBUSY, "Device or resource busy")
                if override != "(null)" and override != driver:
                    raise OSError(errno.ENODEV, "No such device")
                self._bind(dev, driver)
                return
        if parts[:3] == ["bus", "pci", "devices"] and parts[4:7:2] == [
            "mdev_supported_types",
            "create",
        ]:
            self._create_mdev(parts[3], parts[5], value.strip())
            return
        if parts[:3] == ["bus", "mdev", "devices"] and parts[4:] == ["remove"]:
            link = self.root / "bus" / "mdev" / "devices" / parts[3]
            if not link.exists():
                raise OSError(errno.ENOENT, "No such file or directory")
            HostTree(self.root).remove_mdev(parts[3])
            return
        if parts[:3] == ["bus", "pci", "devices"] and parts[-1] == "current_vgpu_type":
            (self._device(parts[3]) / "/".join(parts[4:])).write_text(value.strip() + "\n")
            return
        if path == "bus/pci/drivers_probe":
            dev = self._device(value)
            if self.driver_of(value) is not None:
                return
            override = self.override_of(value)
            wanted = override if override != "(null)" else self.native.get(dev.name)
            if wanted is not None and self._loaded(wanted):
                self._bind(dev, wanted)
            return
        raise OSError(errno.ENOENT, "No such file or directory")

    def _create_mdev(self, parent: str, type_id: str, uuid: str) -> None:
        # drivers/vfio/mdev/mdev_sysfs.c create_store: the UUID must be new; the vendor
        # driver refuses when the type has no instance left.
        dev = self._device(parent)
        t = dev / "mdev_supported_types" / type_id
        if not t.is_dir():
            raise OSError(errno.ENOENT, "No such file or directory")
        if (self.root / "bus" / "mdev" / "devices" / uuid).exists():
            raise OSError(errno.EEXIST, "File exists")
        if int((t / "available_instances").read_text()) <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        tree = HostTree(self.root)
        tree._pci_paths[dev.name] = dev
        tree.add_mdev(dev.name, type_id, uuid)


def mdev_state(root: Path) -> dict[str, object]:
    """The mdevs that exist and each type's free instances."""
    state: dict[str, object] = {}
    bus = root / "bus" / "mdev" / "devices"
    state["mdevs"] = sorted(os.listdir(bus)) if bus.is_dir() else []
    for avail in sorted(root.glob("bus/pci/devices/*/mdev_supported_types/*/available_instances")):
        state[str(avail.relative_to(root))] = avail.read_text()
    return state


def pci_state(root: Path) -> dict[str, object]:
    """Everything the vfio writes can change: each device's driver and override, and
    each driver's device links."""
    state: dict[str, object] = {}
    devices = root / "bus" / "pci" / "devices"
    for name in sorted(os.listdir(devices)):
        dev = (devices / name).resolve()
        link = dev / "driver"
        driver = os.readlink(link) if link.is_symlink() else None
        state[f"dev {name}"] = (driver, (dev / "driver_override").read_text())
    drivers = root / "bus" / "pci" / "drivers"
    for drv in sorted(os.listdir(drivers)):
        state[f"drv {drv}"] = sorted(
            (entry, os.readlink(drivers / drv / entry))
            for entry in os.listdir(drivers / drv)
            if (drivers / drv / entry).is_symlink()
        )
    return state
