"""Cases run inside umockdev-run (see test_udev.py): the udev source equals the sysfs source.

Not collected by a plain `pytest` run (the file name does not start with test_);
outside a umockdev testbed every case fails rather than skips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hostdev_resolver.host.snapshot import inventory_to_json
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.host.udev import UdevInventory
from hostdev_resolver.model.identity import PciIdentity
from hostdev_resolver.model.pciaddress import PciAddress

from .testbed import add_kernel_objects, build_sysfs_twin, umockdev_sys_root

GPU = PciAddress.parse("0000:41:00.0")
AUDIO = PciAddress.parse("0000:41:00.1")
NVME = PciAddress.parse("0000:01:00.0")


@pytest.fixture(scope="module")
def udev() -> UdevInventory:
    add_kernel_objects(umockdev_sys_root())
    return UdevInventory()


@pytest.fixture(scope="module")
def sysfs(tmp_path_factory: pytest.TempPathFactory) -> SysfsInventory:
    root = tmp_path_factory.mktemp("twin") / "sys"
    build_sysfs_twin(root)
    return SysfsInventory(root)


def test_pci_devices_are_the_sysfs_records(udev: UdevInventory, sysfs: SysfsInventory) -> None:
    from_udev = list(udev.pci_devices())
    assert from_udev == list(sysfs.pci_devices())
    assert len(from_udev) == 7


def test_lookup_by_address_is_the_sysfs_record(udev: UdevInventory, sysfs: SysfsInventory) -> None:
    for dev in sysfs.pci_devices():
        assert udev.pci_device(dev.address) == dev


def test_gpu_identity_in_full(udev: UdevInventory) -> None:
    gpu = udev.pci_device(GPU)
    assert gpu is not None
    assert gpu.identity == PciIdentity(
        vendor=0x10DE,
        device=0x2204,
        subsystem_vendor=0x1458,
        subsystem_device=0x403B,
        class_code=0x030000,
        serial="b2-3a-10-f5-4e-2d-b0-48",
    )
    assert (gpu.iommu_group, gpu.numa_node, gpu.driver) == (31, 1, "nvidia")
    assert (gpu.physical_slot, gpu.port_path) == ("3", "pci0000:40/01.1/00.0")


def test_sriov_links(udev: UdevInventory) -> None:
    pf = udev.pci_device(PciAddress.parse("0000:43:00.0"))
    vf = udev.pci_device(PciAddress.parse("0000:43:02.0"))
    assert pf is not None and vf is not None
    assert pf.virtfns == (vf.address,)
    assert vf.physfn == pf.address


def test_iommu_groups_are_the_sysfs_groups(udev: UdevInventory, sysfs: SysfsInventory) -> None:
    assert udev.iommu_group_members(31) == [GPU, AUDIO]
    for group in (5, 12, 30, 31, 40, 41, 99):
        assert udev.iommu_group_members(group) == sysfs.iommu_group_members(group)


def test_usb_devices_are_the_sysfs_records(udev: UdevInventory, sysfs: SysfsInventory) -> None:
    from_udev = list(udev.usb_devices())
    assert from_udev == list(sysfs.usb_devices())
    # Root hub, external hub, security key; the key's HID interface 1-1.2:1.0 is not a device.
    assert [d.port_path for d in from_udev] == ["1-1", "1-1.2", "usb1"]


def test_usb_serial_is_the_attribute_not_udevs_rewrite(udev: UdevInventory) -> None:
    key = next(d for d in udev.usb_devices() if d.port_path == "1-1.2")
    assert key.identity.serial == "YK 17253849"
    details = udev.usb_details("1-1.2")
    assert details is not None
    assert details.properties["ID_SERIAL_SHORT"] == "YK_17253849"
    assert details.device_node == "/dev/bus/usb/001/003"


def test_snapshots_from_either_source_are_the_same_document(
    udev: UdevInventory, sysfs: SysfsInventory
) -> None:
    assert inventory_to_json(udev, "hv1") == inventory_to_json(sysfs, "hv1")


def test_identity_captured_from_sysfs_verifies_on_udev(
    udev: UdevInventory, sysfs: SysfsInventory
) -> None:
    for dev in sysfs.pci_devices():
        found = udev.pci_device(dev.address)
        assert found is not None
        assert dev.identity.differences(found.identity) == []


class _NoEnumeration:
    """A pyudev context that fails any enumeration; lookups pass through."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def list_devices(self, **match: Any) -> Any:
        raise AssertionError(f"enumerated devices ({match}) for a single lookup")


def test_lookup_by_address_does_not_enumerate() -> None:
    import pyudev

    inventory = UdevInventory(context=_NoEnumeration(pyudev.Context()))
    gpu = inventory.pci_device(GPU)
    assert gpu is not None and gpu.identity.serial == "b2-3a-10-f5-4e-2d-b0-48"
    assert inventory.pci_device(PciAddress.parse("0000:99:00.0")) is None


def test_absent_devices_are_none(udev: UdevInventory) -> None:
    assert udev.pci_device(PciAddress.parse("0000:99:00.0")) is None
    assert udev.pci_details(PciAddress.parse("0000:99:00.0")) is None
    assert udev.usb_details("3-9") is None
    assert udev.details("/sys/devices/pci0000:99/0000:99:00.0") is None
    assert udev.block_devices(PciAddress.parse("0000:99:00.0")) == ()


def test_nvme_namespace_links(udev: UdevInventory) -> None:
    (namespace,) = udev.block_devices(NVME)
    assert namespace.device_node == "/dev/nvme0n1"
    assert namespace.device_type == "disk"
    assert namespace.device_links == (
        "/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNX0T312345K",
        "/dev/disk/by-id/nvme-eui.002538b321a0c5f7",
        "/dev/disk/by-path/pci-0000:01:00.0-nvme-1",
    )
    assert namespace.properties["ID_WWN"] == "eui.002538b321a0c5f7"
    assert udev.details(namespace.sys_path) == namespace
    assert Path(namespace.sys_path).name == "nvme0n1"


def test_pci_details_carry_udev_properties(udev: UdevInventory) -> None:
    details = udev.pci_details(GPU)
    assert details is not None
    assert details.subsystem == "pci"
    assert details.properties["ID_MODEL_FROM_DATABASE"] == "GA102 [GeForce RTX 3090]"
    assert details.device_links == ()
