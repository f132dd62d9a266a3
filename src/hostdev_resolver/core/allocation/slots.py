"""Slot assignment: which device gets which guest PCI slot, in libvirt 9.0's order
(qemuDomainAssignDevicePCISlots() and the chipset's fixed slots,
qemuDomainValidateDevicePCISlotsPIIX3()/Q35()), on one address set.
"""

from __future__ import annotations

from ...model.pciaddress import PciAddress
from .devicelist import MEMORY_PCI, DeviceList
from .model import (
    DeviceKind,
    InvalidAddressError,
    LibvirtRefusalError,
    MachineType,
    UnsatisfiableError,
    UnsupportedDomainError,
)
from .pcibus import AUTOASSIGN, PCI_DEVICE, PCIE_DEVICE, AddressSet, Work

# Not typing.TYPE_CHECKING: importing typing costs the allocate command ~0.2x a bare start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable

# IS_USB2_CONTROLLER(): companions that share one slot; value = (function, multi)
_USB2_FUNCTION = {
    "ich9-ehci1": (7, None),
    "ich9-uhci1": (0, True),
    "ich9-uhci2": (1, None),
    "ich9-uhci3": (2, None),
}
# qemuDomainAssignDevicePCISlots() skips these sound models (ISA, PC speaker, USB);
# every other one is given a slot, ich7 included although its connect flags are 0,
# which is why libvirt 9.0 refuses an ich7 sound device on every x86 machine.
_SOUND_NOT_PCI = {"sb16", "pcspk", "usb"}


class SlotAssigner:
    """Places the devices of one `DeviceList` on an address set; the dry run and the
    real pass (see libvirt_policy) each make one set with `create_set`."""

    def __init__(
        self, devices: DeviceList, followers: dict[int, tuple[int, int]], line: int | None
    ) -> None:
        self.devices = devices
        # follower ref -> (leader ref, guest function): functions of one host device
        self.followers = followers
        self.leaders: dict[int, list[tuple[Work, int]]] = {}
        self.line = line  # of <devices>, for devices libvirt adds

    def link_followers(self) -> None:
        by_ref = {w.dev.ref: w for w in self.devices.works if w.dev.ref is not None}
        for ref, (leader_ref, function) in self.followers.items():
            self.leaders.setdefault(id(by_ref[leader_ref]), []).append((by_ref[ref], function))

    def create_set(self, nbuses: int, dry_run: bool) -> AddressSet:
        """qemuDomainPCIAddressSetCreate()."""
        addrs = AddressSet(self.devices.source, self.line, nbuses, dry_run)
        has_pcie_root = False
        for c in self.devices.controllers:
            if c.dev.type != "pci":
                continue
            idx = c.index or 0
            hotplug = c.pci is None or c.pci.hotplug is not False
            try:
                addrs.buses[idx].set_model(c.model, hotplug)
            except ValueError:
                raise UnsupportedDomainError(
                    f"unknown PCI controller model {c.model!r}", self.devices.source, c.dev.line
                ) from None
            has_pcie_root = has_pcie_root or c.model == "pcie-root"
        default = "pcie-root-port" if has_pcie_root else "pci-bridge"
        for bus in addrs.buses[1:]:
            if not bus.model:
                bus.set_model(default, True)
        for w in self.devices.iterate_order():
            if w.address is None:
                continue
            if self._piix3_integrated(w):
                continue
            addrs.reserve(w.address, w.flags or PCI_DEVICE, w, True, w.dev)
        return addrs

    @staticmethod
    def _piix3_integrated(w: Work) -> bool:
        """qemuDomainCollectPCIAddress(): the PIIX3 IDE and USB functions at 00:01.x
        are not collected; the chipset check reserves them."""
        addr = w.address
        if addr is None or w.dev.kind is not DeviceKind.CONTROLLER or w.index != 0:
            return False
        if addr.domain != 0 or addr.bus != 0 or addr.slot != 1:
            return False
        if w.dev.type == "ide":
            return addr.function == 1
        return w.dev.type == "usb" and w.model == "piix3-uhci" and addr.function == 2

    def _place_fixed(self, w: Work, addr: PciAddress, must: str) -> None:
        """A device the chipset puts at one address (PIIX3 IDE/USB, q35 SATA)."""
        if w.address is not None:
            if w.address != addr:
                raise InvalidAddressError(
                    w.dev, f"{must} must have guest PCI address {addr}", self.devices.source
                )
        else:
            w.address = addr

    def _primary_video(self, addrs: AddressSet, slot: int, flags: int) -> None:
        videos = list(self.devices.of(DeviceKind.VIDEO))
        primary = next((v for v in videos if v.dev.primary), videos[0] if videos else None)
        if primary is None or primary.model in ("none", "ramfb", "") or not primary.wanted:
            return
        tmp = PciAddress(0, 0, slot, 0)
        why = addrs.validate(tmp, flags, True)
        if why is not None:
            raise UnsatisfiableError(
                f"{primary.label}: {why}", self.devices.source, addrs.line_of(primary.dev)
            )
        if addrs.slot_in_use(0, slot):
            self._reserve_next(addrs, primary)
        else:
            addrs.reserve(tmp, flags, primary, True)
            primary.address = tmp

    def validate_chipset(self, addrs: AddressSet) -> None:
        if self.devices.machine is MachineType.PC:
            self._validate_piix3(addrs)
        else:
            self._validate_q35(addrs)

    def _validate_piix3(self, addrs: AddressSet) -> None:
        """qemuDomainValidateDevicePCISlotsPIIX3()."""
        flags = AUTOASSIGN | PCI_DEVICE
        for c in self.devices.controllers:
            if c.dev.type == "ide" and c.index == 0:
                addr = PciAddress(0, 0, 1, 1)
                self._place_fixed(c, addr, "the primary IDE controller")
            elif c.dev.type == "usb" and c.index == 0 and c.model == "piix3-uhci":
                addr = PciAddress(0, 0, 1, 2)
                self._place_fixed(c, addr, "the PIIX3 USB controller")
            else:
                continue
            addrs.reserve(addr, flags, c, True, c.dev)
        addrs.reserve(PciAddress(0, 0, 1, 0), flags, "the PIIX3 ISA bridge (00:01.0)", True)
        addrs.reserve(PciAddress(0, 0, 1, 3), flags, "the PIIX3 ACPI bridge (00:01.3)", True)
        # QEMU puts the first VGA in the first free slot after the PIIX3: slot 2
        self._primary_video(addrs, 2, flags)

    def _validate_q35(self, addrs: AddressSet) -> None:
        """qemuDomainValidateDevicePCISlotsQ35()."""
        flags = PCIE_DEVICE
        for c in self.devices.controllers:
            if c.dev.type == "sata" and c.index == 0:
                # always present at 00:1f.2 on ICH9; reserved only when collected
                self._place_fixed(c, PciAddress(0, 0, 0x1F, 2), "the primary SATA controller")
            elif c.dev.type == "usb" and c.model == "ich9-uhci1" and c.wanted:
                for slot in (0x1D, 0x1A):  # where real ICH9 hardware has its USB2 controllers
                    if not addrs.slot_in_use(0, slot):
                        addr = PciAddress(0, 0, slot, 0)
                        addrs.reserve(addr, flags, c, True)
                        c.address, c.multi = addr, True
                        break
            elif (
                c.dev.type == "pci"
                and c.model == "dmi-to-pci-bridge"
                and c.wanted
                and not addrs.slot_in_use(0, 0x1E)
            ):
                addr = PciAddress(0, 0, 0x1E, 0)
                addrs.reserve(addr, flags, c, True)
                c.address = addr
        addrs.reserve(PciAddress(0, 0, 0x1F, 0), flags, "the ICH9 LPC/ISA bridge (00:1f.0)", True)
        addrs.reserve(PciAddress(0, 0, 0x1F, 3), flags, "the ICH9 SMBus controller (00:1f.3)", True)
        self._primary_video(addrs, 1, flags)
        if not addrs.slot_in_use(0, 0x1B):
            # real ICH9 has its HD audio at 00:1b.0
            for s in self.devices.of(DeviceKind.SOUND):
                if s.model == "ich9" and s.wanted:
                    addr = PciAddress(0, 0, 0x1B, 0)
                    addrs.reserve(addr, flags, s, True)
                    s.address = addr
                    break

    def _reserve_next(self, addrs: AddressSet, w: Work, function: int = -1) -> PciAddress:
        addr = addrs.reserve_next(w.flags, w, function, w.dev)
        if not addrs.dry_run:
            w.address = addr
        return addr

    def assign_slots(self, addrs: AddressSet) -> None:
        """qemuDomainAssignDevicePCISlots(): the order devices get slots in."""
        for c in self.devices.controllers:
            if c.dev.type == "pci" and c.model not in ("pci-root", "pcie-root") and c.wanted:
                self._reserve_next(addrs, c)
        # Unlike the connect flags, these filters are libvirt's own skip lists: a device
        # that passes one is given a slot even when its connect flags are 0, and then
        # libvirt refuses the domain (see cannot_grow()).
        self._assign_kind(addrs, DeviceKind.FILESYSTEM)
        # spapr-vlan NICs get a spapr-vio address on every architecture
        # (qemuDomainAssignSpaprVIOAddresses), so they never want a PCI one
        self._assign_kind(addrs, DeviceKind.INTERFACE, lambda w: w.model != "spapr-vlan")
        self._assign_kind(addrs, DeviceKind.SOUND, lambda w: w.model not in _SOUND_NOT_PCI)
        for c in self.devices.controllers:
            self._assign_device_controller(addrs, c)
        for d in self.devices.of(DeviceKind.DISK):
            if d.dev.model != "virtio" or d.address is not None:
                continue
            if d.dev.other_address not in (None, "ccw", "virtio-mmio"):
                raise LibvirtRefusalError(
                    f"{d.label}: virtio disk cannot have an address of type '{d.dev.other_address}'",
                    self.devices.source,
                    d.dev.line,
                    "remove the <address> or give it type='pci'",
                )
            if d.wanted:
                self._reserve_next(addrs, d)
        hostdevs = [w for w in self.devices.of(DeviceKind.HOSTDEV) if w.dev.model == "interface"]
        hostdevs += [w for w in self.devices.of(DeviceKind.HOSTDEV) if w.dev.model != "interface"]
        for h in hostdevs:
            if h.dev.ref is not None and h.dev.ref in self.followers:
                continue
            pci_kind = h.dev.type in ("pci", "scsi_host") or (
                h.dev.type == "mdev" and h.dev.model == "vfio-pci"
            )
            if h.wanted and pci_kind:
                leader = self._reserve_next(addrs, h)
                self._place_followers(addrs, h, leader)
        self._assign_kind(addrs, DeviceKind.MEMBALLOON, lambda w: w.model != "none")
        self._assign_kind(addrs, DeviceKind.RNG)
        self._assign_kind(addrs, DeviceKind.WATCHDOG, lambda w: w.model == "i6300esb")
        self._assign_kind(addrs, DeviceKind.VIDEO, lambda w: w.model not in ("none", "ramfb"))
        self._assign_kind(addrs, DeviceKind.SHMEM)
        self._assign_kind(addrs, DeviceKind.INPUT, lambda w: w.dev.model == "virtio")
        self._assign_kind(addrs, DeviceKind.SERIAL, lambda w: w.model == "pci-serial")
        self._assign_kind(addrs, DeviceKind.IOMMU, lambda w: w.model == "virtio")
        self._assign_kind(addrs, DeviceKind.VSOCK)
        self._assign_kind(addrs, DeviceKind.MEMORY, lambda w: w.model in MEMORY_PCI)

    def _place_followers(self, addrs: AddressSet, leader: Work, addr: PciAddress) -> None:
        for follower, function in self.leaders.get(id(leader), ()):
            target = PciAddress(addr.domain, addr.bus, addr.slot, function)
            addrs.reserve(target, follower.flags, follower, False)
            if not addrs.dry_run:
                follower.address = target

    def _assign_kind(
        self, addrs: AddressSet, kind: DeviceKind, placed: Callable[[Work], bool] | None = None
    ) -> None:
        for w in self.devices.of(kind):
            if w.wanted and (placed is None or placed(w)):
                self._reserve_next(addrs, w)

    def _assign_device_controller(self, addrs: AddressSet, c: Work) -> None:
        t = c.dev.type
        if t in ("pci", "fdc", "ccid") or not c.wanted:
            return
        if t == "scsi" and c.model == "ncr53c90":
            return
        if t == "usb" and c.model == "none":
            return
        if t == "ide" and c.index == 0:
            return
        usb2 = _USB2_FUNCTION.get(c.model) if t == "usb" else None
        if usb2 is None:
            self._reserve_next(addrs, c)
            return
        function, multi = usb2
        # all USB2 companions of one index share a slot
        for other in self.devices.controllers:
            if (
                other.dev.type == "usb"
                and other.model in _USB2_FUNCTION
                and other.index == c.index
                and other.address is not None
            ):
                addr = PciAddress(
                    other.address.domain, other.address.bus, other.address.slot, function
                )
                addrs.reserve(addr, c.flags, c, True)
                c.address = addr
                c.multi = multi
                return
        self._reserve_next(addrs, c, function)
        if not addrs.dry_run:
            c.multi = multi
