"""The host inventory: what devices a node has, as data.

Resolution and verification take a `HostInventory` and never touch the host
themselves. Sources (each in its own module) implement it: sysfs
(`sysfs.SysfsInventory`), udev (`udev.UdevInventory`), a JSON snapshot
(`snapshot.HostSnapshot`) and libvirt node devices (`nodedev`).
"""

from __future__ import annotations

from .records import frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .identity import PciIdentity, UsbIdentity
    from .pciaddress import PciAddress

# PCI base class 0x06 = bridge; 0x0600 host, 0x0604 PCI-PCI, 0x0601 ISA...
_BRIDGE_CLASS = 0x06


@frozen
class PciDevice:
    """One PCI function as the host sees it now."""

    address: PciAddress
    identity: PciIdentity
    iommu_group: int | None = None
    numa_node: int | None = None
    driver: str | None = None
    physical_slot: str | None = None
    # The chain of device.function hops from the root bus, e.g. "pci0000:40/01.1/00.0":
    # stable when firmware renumbers buses, since it has no bus numbers in it.
    port_path: str | None = None
    physfn: PciAddress | None = None
    virtfns: tuple[PciAddress, ...] = ()

    @property
    def is_bridge(self) -> bool:
        code = self.identity.class_code
        return code is not None and code >> 16 == _BRIDGE_CLASS


@frozen
class UsbDevice:
    """One USB device (not interface) as the host sees it now."""

    bus: int
    device: int
    identity: UsbIdentity
    port_path: str
    manufacturer: str | None = None
    product_name: str | None = None
    driver: str | None = None


# Annotations only: defining a Protocol needs typing, which the hook does not import.
if TYPE_CHECKING:
    from typing import Protocol

    class HostInventory(Protocol):
        """A source of host devices. Lookups by address read only that device."""

        def pci_device(self, address: PciAddress) -> PciDevice | None: ...

        def pci_devices(self) -> Sequence[PciDevice]: ...

        def iommu_group_members(self, group: int) -> Sequence[PciAddress]: ...

        def usb_devices(self) -> Sequence[UsbDevice]: ...


class RememberedInventory:
    """A `HostInventory` that reads each device once and then answers from memory.

    For commands that look at one host for many documents (`validate` of a fleet's
    files): without it, every reference re-reads its device. Not for the hook or the
    wrapper, which must see the host as it is at that moment.
    """

    def __init__(self, inner: HostInventory) -> None:
        self.inner = inner
        self._pci: dict[PciAddress, PciDevice | None] = {}
        self._all: Sequence[PciDevice] | None = None
        self._groups: dict[int, Sequence[PciAddress]] = {}
        self._usb: Sequence[UsbDevice] | None = None

    def pci_device(self, address: PciAddress) -> PciDevice | None:
        if address not in self._pci:
            self._pci[address] = self.inner.pci_device(address)
        return self._pci[address]

    def pci_devices(self) -> Sequence[PciDevice]:
        if self._all is None:
            self._all = self.inner.pci_devices()
            self._pci.update((d.address, d) for d in self._all)
        return self._all

    def iommu_group_members(self, group: int) -> Sequence[PciAddress]:
        if group not in self._groups:
            self._groups[group] = self.inner.iommu_group_members(group)
        return self._groups[group]

    def usb_devices(self) -> Sequence[UsbDevice]:
        if self._usb is None:
            self._usb = self.inner.usb_devices()
        return self._usb
