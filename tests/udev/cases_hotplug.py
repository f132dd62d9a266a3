"""Cases run inside umockdev-run (see test_udev.py): devices that go away are absent.

Each case unplugs a different device from the testbed, so the order does not matter.
"""

from __future__ import annotations

import pytest

from hostdev_resolver.host.udev import UdevInventory, _Device
from hostdev_resolver.model.identity import PciIdentity
from hostdev_resolver.model.pciaddress import PciAddress

from .testbed import add_kernel_objects, umockdev_sys_root, unplug_pci

NVME = PciAddress.parse("0000:01:00.0")
VF = PciAddress.parse("0000:43:02.0")
AUDIO = PciAddress.parse("0000:41:00.1")


@pytest.fixture(scope="module", autouse=True)
def _kernel_objects() -> None:
    add_kernel_objects(umockdev_sys_root())


def test_unplugged_nvme_is_absent() -> None:
    inventory = UdevInventory()
    assert inventory.pci_device(NVME) is not None
    unplug_pci(umockdev_sys_root(), str(NVME))
    assert inventory.pci_device(NVME) is None
    assert NVME not in [d.address for d in inventory.pci_devices()]
    assert inventory.iommu_group_members(12) == []
    assert inventory.pci_details(NVME) is None
    assert inventory.block_devices(NVME) == ()


class _UnplugAfterLookup(UdevInventory):
    """The device is found, then pulled before its attributes are read."""

    def _by_name(self, subsystem: str, name: str) -> _Device | None:
        device = super()._by_name(subsystem, name)
        unplug_pci(umockdev_sys_root(), name)
        return device


def test_device_vanishing_mid_read_is_absent() -> None:
    inventory = _UnplugAfterLookup()
    assert inventory.pci_device(VF) is None


class _UnplugAfterIdentity(UdevInventory):
    """The uevent keys are read, then the device is pulled before config and links."""

    def _pci_identity(self, device: _Device) -> PciIdentity | None:
        identity = super()._pci_identity(device)
        assert identity is not None
        unplug_pci(umockdev_sys_root(), device.sys_name)
        return identity


def test_device_vanishing_after_its_identity_is_absent_not_changed() -> None:
    inventory = _UnplugAfterIdentity()
    assert inventory.pci_device(AUDIO) is None
