"""The host inventory: what devices a node has, as data.

Resolution and verification take a `HostInventory` and never touch the host
themselves. There are two kinds of it:

- `IndexedInventory`, one value holding everything a source read, indexed once (PCI
  devices by address, IOMMU groups, USB devices, the PCI facts and the SCSI view where
  the source has them), as nova's `update_devices_from_hypervisor_resources` receives a
  host's devices. Sources that read the whole host anyway build it: a JSON snapshot
  (`host.snapshot.HostSnapshot`) and libvirt node devices (`host.nodedev`).
- sources that read a device only when asked about it: sysfs (`host.sysfs.SysfsInventory`)
  and udev (`host.udev.UdevInventory`). The hook uses sysfs so: its cost must not grow
  with the host's size (thousands of functions with SR-IOV), and it must see each device
  as it is at that moment.

Either is read once per run and handed to the core.
"""

from __future__ import annotations

from .records import field, frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .identity import PciIdentity, UsbIdentity
    from .pciaddress import PciAddress
    from .pcifacts import PciFacts
    from .scsi import ScsiInventory

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


@frozen
class IndexedInventory:
    """A `HostInventory` as one value: a host's devices as a source read them, indexed once.

    `unobserved_pci` / `unobserved_usb` name the fields the source cannot see (libvirt
    shows no subsystem IDs; `core.locate` leaves them out of comparisons). `groups` are
    the IOMMU groups as the source lists them (libvirt's `<iommuGroup>`); without them
    a group is the devices whose `iommu_group` is its number. `facts` and `scsi` are
    there only for a source that has them (a JSON snapshot and a libvirt connection
    have no PCI facts: callers leave those checks to the hook, on the node itself).
    """

    node: str | None = None
    pci: tuple[PciDevice, ...] = ()
    usb: tuple[UsbDevice, ...] = ()
    unobserved_pci: frozenset[str] = frozenset()
    unobserved_usb: frozenset[str] = frozenset()
    groups: Mapping[int, Sequence[PciAddress]] | None = field(default=None, compare=False)
    facts: PciFacts | None = field(default=None, compare=False)
    scsi: ScsiInventory | None = field(default=None, compare=False)
    _by_address: dict[PciAddress, PciDevice] = field(default_factory=dict, compare=False)
    _by_group: dict[int, Sequence[PciAddress]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self._by_address.update({d.address: d for d in self.pci})
        if self.groups is not None:
            self._by_group.update(self.groups)
            return
        members: dict[int, list[PciAddress]] = {}
        for dev in self.pci:
            if dev.iommu_group is not None:
                members.setdefault(dev.iommu_group, []).append(dev.address)
        # Lists, sorted, as the sysfs source lists a group's devices directory.
        self._by_group.update((g, sorted(m)) for g, m in members.items())

    def pci_device(self, address: PciAddress) -> PciDevice | None:
        return self._by_address.get(address)

    def pci_devices(self) -> Sequence[PciDevice]:
        return self.pci

    def iommu_group_members(self, group: int) -> Sequence[PciAddress]:
        found = self._by_group.get(group)
        if found is not None:
            return found
        return () if self.groups is not None else []

    def usb_devices(self) -> Sequence[UsbDevice]:
        return self.usb

    def pci_facts(self) -> PciFacts | None:
        """The PCI facts (`model.pcifacts.facts_of` asks for them), if the source has them."""
        return self.facts

    def scsi_inventory(self) -> ScsiInventory | None:
        """The SCSI/FC view, or None for a source without one."""
        return self.scsi


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

    # What the source says besides its devices is the source's: a view through libvirt
    # cannot see some fields (`core.locate` leaves them out of comparisons), and a sysfs
    # view has PCI facts (SR-IOV, mdev types). Hidden, `validate` would judge a
    # reference other than `resolve` does on the same host.
    @property
    def unobserved_pci(self) -> frozenset[str]:
        value: frozenset[str] = getattr(self.inner, "unobserved_pci", frozenset())
        return value

    @property
    def unobserved_usb(self) -> frozenset[str]:
        value: frozenset[str] = getattr(self.inner, "unobserved_usb", frozenset())
        return value

    def pci_facts(self) -> PciFacts | None:
        from .pcifacts import facts_of

        return facts_of(self.inner)


def iommu_off(inventory: HostInventory) -> str | None:
    """Why the IOMMU is seen to be off on this host, or None when it is on.

    An inventory with PCI facts says (the kernel lists /sys/kernel/iommu_groups only with
    an IOMMU enabled). A view without them (a snapshot, a libvirt connection) shows it
    the same way: no PCI device has an IOMMU group.
    """
    from .pcifacts import facts_of

    facts = facts_of(inventory)
    if facts is not None:
        return facts.iommu_off()
    if any(d.iommu_group is not None for d in inventory.pci_devices()):
        return None
    return "no PCI device has an IOMMU group"
