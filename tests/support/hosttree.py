"""Builds real temporary trees laid out like the kernel's /sys (symlinks included).

A tree is described as data (`HostSpec`, loadable from a JSON file) so golden cases,
examples and benchmarks share one builder:

    {"pci": [{"address": "0000:41:00.0", "vendor": "10de", "device": "20b5",
              "subsystem_vendor": "10de", "subsystem_device": "1533",
              "class": "030000", "iommu_group": 31, "numa_node": 0,
              "driver": "nvidia", "serial": "00-11-22-33-44-55-66-77",
              "upstream": "0000:40:01.1", "slot": "3"}],
     "usb": [{"port": "1-2", "busnum": 1, "devnum": 4, "vendor": "1050",
              "product": "0407", "serial": "12345", "controller": "0000:00:14.0"}]}

Layout produced (as on a real kernel):
    devices/pci0000:40/0000:40:01.1/0000:41:00.0/{vendor,device,...,config}
    bus/pci/devices/0000:41:00.0 -> ../../../devices/pci0000:40/0000:40:01.1/0000:41:00.0
    DEV/iommu_group -> ../../../kernel/iommu_groups/31 (relative, depth-adjusted)
    kernel/iommu_groups/31/devices/0000:41:00.0 -> ../../../../devices/...
    DEV/driver -> ../../bus/pci/drivers/nvidia ; bus/pci/drivers/nvidia/0000:41:00.0 -> DEV
    bus/pci/slots/3/address = "0000:41:00"
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostdev_resolver.model.pciaddress import PciAddress


@dataclass
class PciSpec:
    address: str
    vendor: str
    device: str
    subsystem_vendor: str | None = None
    subsystem_device: str | None = None
    klass: str = "000000"
    iommu_group: int | None = None
    numa_node: int = -1
    driver: str | None = None
    serial: str | None = None
    upstream: str | None = None
    slot: str | None = None
    physfn: str | None = None
    # SR-IOV PF: sriov_totalvfs/sriov_numvfs (numvfs defaults to the VFs in the spec)
    sriov_totalvfs: int | None = None
    sriov_numvfs: int | None = None
    # reset_method as the kernel shows it ("flr bus"); "" = the attribute is hidden (no
    # method), as on a device that cannot be reset
    reset_method: str = "flr"
    # mdev parent: {type_id: {"name": …, "available_instances": N, "device_api": …}}
    mdev_types: dict[str, dict[str, Any]] | None = None
    # existing mdevs on this parent: [{"uuid": …, "type": …}]
    mdevs: list[dict[str, str]] = field(default_factory=list)
    # NVIDIA VF vGPU: nvidia/current_vgpu_type
    vgpu_type: str | None = None


@dataclass
class UsbSpec:
    port: str
    busnum: int
    devnum: int
    vendor: str
    product: str
    serial: str | None = None
    manufacturer: str | None = None
    product_name: str | None = None
    controller: str | None = None


@dataclass
class HostSpec:
    pci: list[PciSpec] = field(default_factory=list)
    usb: list[UsbSpec] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostSpec:
        pci = []
        for item in data.get("pci", []):
            item = dict(item)
            if "class" in item:
                item["klass"] = item.pop("class")
            pci.append(PciSpec(**item))
        usb = [UsbSpec(**item) for item in data.get("usb", [])]
        extra = {k: v for k, v in data.items() if k not in ("pci", "usb")}
        return cls(pci, usb, extra)

    @classmethod
    def load(cls, path: Path) -> HostSpec:
        return cls.from_json(json.loads(path.read_text()))


def _rel(target: Path, link: Path) -> str:
    return os.path.relpath(target, link.parent)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def set_uevent_driver(device: Path, driver: str | None) -> None:
    """DEV/uevent as the kernel shows it once DEV is bound to `driver` (or unbound):
    dev_uevent (drivers/base/core.c) writes DRIVER=<name> before the bus's own
    variables exactly while the device has a driver."""
    uevent = device / "uevent"
    if not uevent.exists():  # a tree made without uevent files
        return
    lines = [x for x in uevent.read_text().splitlines() if not x.startswith("DRIVER=")]
    _write(uevent, "\n".join([f"DRIVER={driver}"] * (driver is not None) + lines))


def dsn_config(serial: str | None) -> bytes:
    """4 KiB of config space with a Device Serial Number extended capability."""
    config = bytearray(4096)
    if serial is not None:
        value = int(serial.replace("-", ""), 16)
        # A first extended capability (AER, ID 1) pointing at the DSN at 0x140.
        config[0x100:0x104] = (0x0001 | (1 << 16) | (0x140 << 20)).to_bytes(4, "little")
        config[0x140:0x144] = (0x0003 | (1 << 16)).to_bytes(4, "little")
        config[0x144:0x148] = (value & 0xFFFFFFFF).to_bytes(4, "little")
        config[0x148:0x14C] = (value >> 32).to_bytes(4, "little")
    return bytes(config)


class HostTree:
    """A kernel-like sysfs tree under `root`; `root` is what --sysfs takes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
        (root / "bus" / "pci" / "drivers").mkdir(parents=True, exist_ok=True)
        (root / "bus" / "usb" / "devices").mkdir(parents=True, exist_ok=True)
        (root / "kernel" / "iommu_groups").mkdir(parents=True, exist_ok=True)
        self._pci_paths: dict[str, Path] = {}
        self._numvfs_fixed: dict[str, bool] = {}

    @classmethod
    def build(cls, root: Path, spec: HostSpec) -> HostTree:
        tree = cls(root)
        for pci in spec.pci:
            tree.add_pci(pci)
        for usb in spec.usb:
            tree.add_usb(usb)
        return tree

    def device_path(self, address: str) -> Path:
        return self._pci_paths[str(PciAddress.parse(address))]

    def add_pci(self, spec: PciSpec) -> Path:
        address = PciAddress.parse(spec.address)
        name = str(address)
        if spec.upstream is not None:
            parent = self.device_path(spec.upstream)
        else:
            parent = self.root / "devices" / f"pci{address.domain:04x}:{address.bus:02x}"
        path = parent / name
        path.mkdir(parents=True, exist_ok=True)
        self._pci_paths[name] = path
        _write(path / "vendor", f"0x{spec.vendor}")
        _write(path / "device", f"0x{spec.device}")
        if spec.subsystem_vendor is not None:
            _write(path / "subsystem_vendor", f"0x{spec.subsystem_vendor}")
        if spec.subsystem_device is not None:
            _write(path / "subsystem_device", f"0x{spec.subsystem_device}")
        _write(path / "class", f"0x{spec.klass}")
        # As the kernel writes it (pci_uevent): the same IDs, upper case, class unpadded.
        uevent = [
            f"PCI_CLASS={int(spec.klass, 16):X}",
            f"PCI_ID={spec.vendor}:{spec.device}".upper(),
        ]
        if spec.subsystem_vendor is not None and spec.subsystem_device is not None:
            uevent.append(f"PCI_SUBSYS_ID={spec.subsystem_vendor}:{spec.subsystem_device}".upper())
        uevent.append(f"PCI_SLOT_NAME={name}")
        _write(path / "uevent", "\n".join(uevent))
        _write(path / "numa_node", str(spec.numa_node))
        _write(path / "driver_override", "(null)")
        (path / "config").write_bytes(dsn_config(spec.serial))
        link = self.root / "bus" / "pci" / "devices" / name
        link.symlink_to(_rel(path, link))
        (path / "subsystem").symlink_to(_rel(self.root / "bus" / "pci", path / "subsystem"))
        if spec.iommu_group is not None:
            group = self.root / "kernel" / "iommu_groups" / str(spec.iommu_group)
            (group / "devices").mkdir(parents=True, exist_ok=True)
            (path / "iommu_group").symlink_to(_rel(group, path / "iommu_group"))
            member = group / "devices" / name
            member.symlink_to(_rel(path, member))
        if spec.driver is not None:
            self.bind(name, spec.driver)
        if spec.slot is not None:
            _write(
                self.root / "bus" / "pci" / "slots" / spec.slot / "address",
                f"{address.domain:04x}:{address.bus:02x}:{address.slot:02x}",
            )
        if spec.physfn is not None:
            pf = self.device_path(spec.physfn)
            (path / "physfn").symlink_to(_rel(pf, path / "physfn"))
            index = len([p for p in os.listdir(pf) if p.startswith("virtfn")])
            (pf / f"virtfn{index}").symlink_to(_rel(path, pf / f"virtfn{index}"))
            if (pf / "sriov_numvfs").exists() and not self._numvfs_fixed.get(pf.name):
                _write(pf / "sriov_numvfs", str(index + 1))
        _write(
            path / "modalias",
            f"pci:v0000{spec.vendor.upper()}d0000{spec.device.upper()}"
            f"sv0000{(spec.subsystem_vendor or '0000').upper()}"
            f"sd0000{(spec.subsystem_device or '0000').upper()}"
            f"bc{spec.klass[:2].upper()}sc{spec.klass[2:4].upper()}i{spec.klass[4:].upper()}",
        )
        if spec.reset_method:
            _write(path / "reset_method", spec.reset_method)
            _write(path / "reset", "")
        if spec.sriov_totalvfs is not None:
            _write(path / "sriov_totalvfs", str(spec.sriov_totalvfs))
            _write(path / "sriov_numvfs", str(spec.sriov_numvfs or 0))
            self._numvfs_fixed[name] = spec.sriov_numvfs is not None
        if spec.vgpu_type is not None:
            _write(path / "nvidia" / "current_vgpu_type", spec.vgpu_type)
        if spec.mdev_types:
            # The mdev core links every parent it registers into class/mdev_bus, and
            # registers the mdev bus when it loads (drivers/vfio/mdev/mdev_core.c).
            parent = self.root / "class" / "mdev_bus" / name
            parent.parent.mkdir(parents=True, exist_ok=True)
            parent.symlink_to(_rel(path, parent))
            (self.root / "bus" / "mdev" / "devices").mkdir(parents=True, exist_ok=True)
        for type_id, info in (spec.mdev_types or {}).items():
            t = path / "mdev_supported_types" / type_id
            (t / "devices").mkdir(parents=True, exist_ok=True)
            _write(t / "name", str(info.get("name", type_id)))
            _write(t / "available_instances", str(info.get("available_instances", 1)))
            _write(t / "device_api", str(info.get("device_api", "vfio-pci")))
            _write(t / "create", "")
        for mdev in spec.mdevs:
            self.add_mdev(name, mdev["type"], mdev["uuid"], take=False)
        return path

    def add_mdev(self, parent: str, type_id: str, uuid: str, *, take: bool = True) -> Path:
        """An mdev on `parent` as the kernel lays it out (`take`: one instance fewer)."""
        pdir = self.device_path(parent)
        mdev = pdir / uuid
        mdev.mkdir()
        t = pdir / "mdev_supported_types" / type_id
        (mdev / "mdev_type").symlink_to(_rel(t, mdev / "mdev_type"))
        _write(mdev / "remove", "")
        (t / "devices" / uuid).symlink_to(_rel(mdev, t / "devices" / uuid))
        bus = self.root / "bus" / "mdev" / "devices"
        bus.mkdir(parents=True, exist_ok=True)
        (bus / uuid).symlink_to(_rel(mdev, bus / uuid))
        if take:
            avail = t / "available_instances"
            _write(avail, str(int(avail.read_text()) - 1))
        return mdev

    def remove_mdev(self, uuid: str) -> None:
        import shutil

        link = self.root / "bus" / "mdev" / "devices" / uuid
        mdev = link.resolve()
        t = (mdev / "mdev_type").resolve()
        (t / "devices" / uuid).unlink()
        avail = t / "available_instances"
        _write(avail, str(int(avail.read_text()) + 1))
        link.unlink()
        shutil.rmtree(mdev)

    def bind(self, address: str, driver: str) -> None:
        path = self.device_path(address)
        drv = self.root / "bus" / "pci" / "drivers" / driver
        drv.mkdir(parents=True, exist_ok=True)
        (path / "driver").symlink_to(_rel(drv, path / "driver"))
        (drv / path.name).symlink_to(_rel(path, drv / path.name))
        set_uevent_driver(path, driver)

    def remove_pci(self, address: str) -> None:
        """Hot-unplug: the device's directory and every link to it go away."""
        import shutil

        path = self._pci_paths.pop(str(PciAddress.parse(address)))
        name = path.name
        for link in [
            self.root / "bus" / "pci" / "devices" / name,
            *self.root.glob(f"kernel/iommu_groups/*/devices/{name}"),
            *self.root.glob(f"bus/pci/drivers/*/{name}"),
        ]:
            link.unlink()
        shutil.rmtree(path)

    def add_usb(self, spec: UsbSpec) -> Path:
        if spec.controller is not None:
            base = self.device_path(spec.controller)
        else:
            base = self.root / "devices" / "platform" / "usb-host"
        path = base / f"usb{spec.busnum}" / spec.port
        path.mkdir(parents=True, exist_ok=True)
        _write(path / "idVendor", spec.vendor)
        _write(path / "idProduct", spec.product)
        _write(path / "busnum", str(spec.busnum))
        _write(path / "devnum", str(spec.devnum))
        if spec.serial is not None:
            _write(path / "serial", spec.serial)
        if spec.manufacturer is not None:
            _write(path / "manufacturer", spec.manufacturer)
        if spec.product_name is not None:
            _write(path / "product", spec.product_name)
        link = self.root / "bus" / "usb" / "devices" / spec.port
        link.symlink_to(_rel(path, link))
        return path
