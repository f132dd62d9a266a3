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
