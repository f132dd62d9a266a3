"""Guest PCI address assignment exactly as libvirt 9.0 does it at `virsh define`.

This is a re-implementation (not a translation) of the rules in libvirt's
src/qemu/qemu_domain_address.c (qemuDomainAssignPCIAddresses and friends) and
src/conf/domain_addr.c (the virDomainPCIAddressSet), for x86_64 `pc` and `q35`
machines, checked device by device against a real libvirtd
(tests/allocation/test_differential.py). Function names in comments point at the
libvirt code each rule comes from.

The shape of libvirt's algorithm, which we keep because its quirks follow from it:

1. post-parse adds implicit devices (USB and SATA controllers, the PCI root,
   memballoon, controllers for disks and virtio channels, video for graphics);
2. a *dry run* assigns every device on an address set that grows a bus whenever
   nothing fits (a pcie-root-port per PCIe device, a pcie-root-port +
   pcie-to-pci-bridge for the first conventional PCI device of a q35 guest,
   pci-bridges on pc), plus one spare root port for q35 guests that had no PCI
   controllers; the buses it grew become controllers;
3. the real pass assigns addresses on that fixed set of buses: PCI controllers
   first, then devices in libvirt's fixed type order;
4. multifunction='on' is set on function 0 of any slot with several functions,
   and controller options (model name, chassis/port, busNr) get defaults.
"""

from __future__ import annotations

import re

from ...model.pciaddress import PciAddress
from ...model.records import frozen, replace
from .model import (
    AddressConflictError,
    Allocation,
    Device,
    DeviceKind,
    DomainDevices,
    InvalidAddressError,
    LibvirtRefusalError,
    MachineType,
    PciControllerOptions,
    UnsatisfiableError,
    UnsupportedDomainError,
)

# Not typing.TYPE_CHECKING: importing typing costs the allocate command ~0.2x a bare start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

# virDomainPCIConnectFlags (src/conf/domain_addr.h). Plain ints: this code runs
# per device per bus, and enum.Flag arithmetic is an order of magnitude slower.
PCI_DEVICE = 1 << 0
PCIE_DEVICE = 1 << 1
PCIE_ROOT_PORT = 1 << 2
PCIE_SWITCH_UPSTREAM_PORT = 1 << 3
PCIE_SWITCH_DOWNSTREAM_PORT = 1 << 4
DMI_TO_PCI_BRIDGE = 1 << 5
PCIE_EXPANDER_BUS = 1 << 6
PCI_EXPANDER_BUS = 1 << 7
PCI_BRIDGE = 1 << 8
PCIE_TO_PCI_BRIDGE = 1 << 9
HOTPLUGGABLE = 1 << 10
AUTOASSIGN = 1 << 11
AGGREGATE_SLOT = 1 << 12
INTEGRATED = 1 << 13
TYPES_MASK = (1 << 10) - 1
TYPES_ENDPOINT = PCI_DEVICE | PCIE_DEVICE

SLOT_LAST = 31

# virDomainPCIControllerModelToConnectType()
_CONTROLLER_CONNECT = {
    "pci-root": 0,
    "pcie-root": 0,
    "pci-bridge": PCI_BRIDGE,
    "pci-expander-bus": PCI_EXPANDER_BUS,
    "pcie-expander-bus": PCIE_EXPANDER_BUS,
    "dmi-to-pci-bridge": DMI_TO_PCI_BRIDGE,
    "pcie-to-pci-bridge": PCIE_TO_PCI_BRIDGE,
    "pcie-root-port": PCIE_ROOT_PORT | AGGREGATE_SLOT,
    "pcie-switch-upstream-port": PCIE_SWITCH_UPSTREAM_PORT,
    "pcie-switch-downstream-port": PCIE_SWITCH_DOWNSTREAM_PORT,
}

_CONNECT_MODELS = (
    (PCIE_ROOT_PORT, "pcie-root-port"),
    (PCIE_SWITCH_UPSTREAM_PORT, "pcie-switch-upstream-port"),
    (PCIE_SWITCH_DOWNSTREAM_PORT, "pcie-switch-downstream-port"),
    (DMI_TO_PCI_BRIDGE, "dmi-to-pci-bridge"),
    (PCIE_EXPANDER_BUS, "pcie-expander-bus"),
    (PCI_EXPANDER_BUS, "pci-expander-bus"),
    (PCI_BRIDGE, "pci-bridge"),
)

# qemuDomainPCIControllerSetDefaultModelName()
_MODEL_NAMES = {
    "pci-bridge": "pci-bridge",
    "dmi-to-pci-bridge": "i82801b11-bridge",
    "pcie-to-pci-bridge": "pcie-pci-bridge",
    "pcie-root-port": "pcie-root-port",
    "pcie-switch-upstream-port": "x3130-upstream",
    "pcie-switch-downstream-port": "xio3130-downstream",
    "pci-expander-bus": "pxb",
    "pcie-expander-bus": "pxb-pcie",
}

_USB_PCIE = {"nec-xhci", "qemu-xhci"}
_USB_PCI = {
    "",
    "ehci",
    "ich9-ehci1",
    "ich9-uhci1",
    "ich9-uhci2",
    "ich9-uhci3",
    "vt82c686b-uhci",
    "piix3-uhci",
    "piix4-uhci",
    "pci-ohci",
}
# IS_USB2_CONTROLLER(): companions that share one slot; value = (function, multi)
_USB2_FUNCTION = {
    "ich9-ehci1": (7, None),
    "ich9-uhci1": (0, True),
    "ich9-uhci2": (1, None),
    "ich9-uhci3": (2, None),
}
_SCSI_PCI = {
    "virtio-transitional",
    "auto",
    "buslogic",
    "lsilogic",
    "lsisas1068",
    "vmpvscsi",
    "ibmvscsi",
    "lsisas1078",
    "dc390",
    "am53c974",
}
_VIDEO_PCI = {"vga", "cirrus", "vmvga", "xen", "vbox", "qxl", "parallels"}
_SOUND_PCI = {"es1370", "ac97", "ich6", "ich9"}
_VIRTIO = {"virtio", "virtio-non-transitional", ""}

# virDomainNetModel of libvirt 9.0 (src/conf/domain_conf.c), parsed case-insensitively.
# A model outside this list is kept as a plain string with the enum value UNKNOWN, and
# qemuDomainDeviceCalculatePCIConnectFlags() gives UNKNOWN the *PCI Express* flags (it
# stands for hostdev network pools). So on q35 ne2k_pci, pcnet, i82559er or igb (added
# in 9.3) get their own pcie-root-port, while rtl8139, e1000, vmxnet3... need a
# conventional PCI slot behind a pcie-to-pci-bridge.
_NET_MODELS_9_0 = frozenset(
    m.casefold()
    for m in (
        "netfront",
        "rtl8139",
        "virtio",
        "e1000",
        "e1000e",
        "virtio-transitional",
        "virtio-non-transitional",
        "usb-net",
        "spapr-vlan",
        "lan9118",
        "scm91c111",
        "vlance",
        "vmxnet",
        "vmxnet2",
        "vmxnet3",
        "Am79C970A",
        "Am79C973",
        "82540EM",
        "82545EM",
        "82543GC",
    )
)
# qemuDomainAssignDevicePCISlots() skips these sound models (ISA, PC speaker, USB);
# every other one is given a slot, ich7 included although its connect flags are 0,
# which is why libvirt 9.0 refuses an ich7 sound device on every x86 machine.
_SOUND_NOT_PCI = {"sb16", "pcspk", "usb"}
_MEMORY_PCI = {"virtio-pmem", "virtio-mem"}


@frozen
class EngineOptions:
    """What the tuned policy changes in the libvirt algorithm."""

    # None: libvirt's own rule (one spare root port for q35 guests without PCI
    # controllers; one spare slot on pc). N: exactly N spare hotplug slots/ports.
    spare_ports: int | None = None
    # follower ref -> (leader ref, guest function): functions of one host device
    followers: tuple[tuple[int, int, int], ...] = ()
    # host hostdev address -> is it PCI Express (libvirt reads this from sysfs)
    conventional_hosts: frozenset[PciAddress] = frozenset()


class _Work:
    """A device while it is being placed (mutable; never leaves this module)."""

    __slots__ = ("address", "dev", "flags", "index", "model", "multi", "pci")

    def __init__(self, dev: Device, model: str) -> None:
        self.dev = dev
        self.model = model
        self.index = dev.index
        self.address = dev.address
        self.multi = dev.multifunction
        self.pci = dev.pci
        self.flags = 0

    @property
    def wanted(self) -> bool:
        """virDeviceInfoPCIAddressIsWanted(): no address of any type yet."""
        return self.address is None and self.dev.other_address is None

    @property
    def label(self) -> str:
        return self.dev.label


def _slot_address(bus: int, slot: int, function: int) -> PciAddress:
    """A domain-0 address the search found: slot <= 31 and function <= 7 by construction,
    so only the bus needs PciAddress's range check. Building it without the check is
    most of what an address costs in a 256-device guest."""
    if bus > 0xFF:
        return PciAddress(0, bus, slot, function)  # raises: out of range
    address = object.__new__(PciAddress)
    address.__dict__.update(domain=0, bus=bus, slot=slot, function=function)
    return address


def _name(owner: str | _Work) -> str:
    return owner if isinstance(owner, str) else owner.label


class _Bus:
    __slots__ = ("aggregate", "flags", "functions", "max_slot", "min_slot", "model")

    def __init__(self) -> None:
        self.model = ""
        self.flags = 0
        self.min_slot = 0
        self.max_slot = SLOT_LAST
        self.functions = [0] * (SLOT_LAST + 1)
        self.aggregate = [False] * (SLOT_LAST + 1)

    def set_model(self, model: str, hotplug: bool) -> None:
        """virDomainPCIAddressBusSetModel(): what may plug into this bus."""
        hot = HOTPLUGGABLE if hotplug else 0
        self.model = model
        self.min_slot, self.max_slot = 1, SLOT_LAST
        if model == "pci-root":
            self.flags = AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE | PCI_EXPANDER_BUS | hot
        elif model == "pci-bridge":
            self.flags = AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE | hot
        elif model == "pci-expander-bus":
            self.flags = AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE | hot
            self.min_slot = 0
        elif model == "pcie-root":
            # no AUTOASSIGN: endpoints go on root ports unless the user says otherwise
            self.flags = PCIE_DEVICE | PCIE_ROOT_PORT | DMI_TO_PCI_BRIDGE | PCIE_EXPANDER_BUS
        elif model == "dmi-to-pci-bridge":
            self.flags = PCI_DEVICE | PCI_BRIDGE
            self.min_slot = 0
        elif model == "pcie-to-pci-bridge":
            self.flags = AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE | hot
        elif model in ("pcie-root-port", "pcie-switch-downstream-port"):
            self.flags = (
                AUTOASSIGN | PCIE_DEVICE | PCIE_SWITCH_UPSTREAM_PORT | PCIE_TO_PCI_BRIDGE | hot
            )
            self.min_slot, self.max_slot = 0, 0
        elif model == "pcie-switch-upstream-port":
            self.flags = PCIE_SWITCH_DOWNSTREAM_PORT
            self.min_slot = 0
        elif model == "pcie-expander-bus":
            self.flags = PCIE_ROOT_PORT | DMI_TO_PCI_BRIDGE
            self.min_slot = 0
        else:
            raise ValueError(model)

    def fully_reserved(self) -> bool:
        return all(self.functions[s] for s in range(self.min_slot, self.max_slot + 1))

    def empty(self) -> bool:
        return not any(self.functions[s] for s in range(self.min_slot, self.max_slot + 1))


def _compatible(bus_index: int, bus_flags: int, dev_flags: int, from_config: bool) -> str | None:
    """virDomainPCIAddressFlagsCompatible(); None when compatible, else why not."""
    if dev_flags & INTEGRATED:
        if bus_index != 0:
            return "it must be an integrated device (bus 0)"
        bus_flags |= AUTOASSIGN
    if from_config:
        # a user-given address may put a PCI device in a PCIe slot and vice versa
        if bus_flags & TYPES_ENDPOINT:
            bus_flags |= TYPES_ENDPOINT
        if dev_flags & PCI_BRIDGE:
            dev_flags |= PCI_DEVICE
    elif dev_flags & AUTOASSIGN and not bus_flags & AUTOASSIGN:
        return f"the controller with index {bus_index} does not allow auto-assignment"
    if dev_flags & HOTPLUGGABLE and not bus_flags & HOTPLUGGABLE:
        return f"the controller with index {bus_index} does not support hotplug"
    if not dev_flags & bus_flags & TYPES_MASK:
        return f"the controller with index {bus_index} cannot take this kind of device"
    return None


class _AddressSet:
    """virDomainPCIAddressSet: buses, reserved functions, and the dry-run growth."""

    def __init__(self, engine: _Engine, nbuses: int, dry_run: bool) -> None:
        self.engine = engine
        self.buses = [_Bus() for _ in range(nbuses)]
        self.dry_run = dry_run
        # who holds each function; labels are made only for a message (they cost)
        self.owners: dict[tuple[int, int, int], str | _Work] = {}
        # (flags, function) -> (bus, slot) before which nothing can fit any more:
        # slots only ever fill up, so a search may resume where the last one stopped.
        self._resume: dict[tuple[int, int], tuple[int, int]] = {}

    # virDomainPCIAddressSetGrow()
    def grow(self, bus: int, flags: int, asker: Device | None = None) -> int:
        add = bus - len(self.buses) + 1
        if add <= 0:
            return bus
        need_pcie_to_pci = False
        if flags & PCI_DEVICE:
            model = "pci-bridge"
            # A q35 guest with nowhere to plug a pci-bridge gets a pcie-root-port +
            # pcie-to-pci-bridge pair instead (QEMU 7.2 has pcie-pci-bridge, so the
            # dmi-to-pci-bridge fallback of domain_addr.c is never taken here).
            need_pcie_to_pci = not any(b.flags & PCI_BRIDGE for b in self.buses)
            if need_pcie_to_pci and add == 1:
                add += 1
                bus += 1
        elif flags & (PCIE_DEVICE | PCIE_SWITCH_UPSTREAM_PORT):
            model = "pcie-root-port"
        else:
            raise self.engine.cannot_grow(flags, asker)
        first = len(self.buses)
        self.buses.extend(_Bus() for _ in range(add))
        i = first
        if need_pcie_to_pci:
            # domain_addr.c: the root port carrying the new pcie-to-pci-bridge accepts
            # nothing else, so the spare-port dummy cannot land on it.
            self.buses[i].set_model("pcie-root-port", True)
            self.buses[i].flags = PCIE_TO_PCI_BRIDGE
            self.buses[i + 1].set_model("pcie-to-pci-bridge", True)
            i += 2
        for b in self.buses[i:]:
            b.set_model(model, True)
        return bus

    def slot_in_use(self, bus: int, slot: int) -> bool:
        return bool(self.buses[bus].functions[slot])

    def validate(self, addr: PciAddress, flags: int, from_config: bool) -> str | None:
        """virDomainPCIAddressValidate(); None when valid, else why not."""
        if addr.domain != 0:
            return f"{addr}: only PCI domain 0 is available"
        if addr.bus >= len(self.buses):
            return f"{addr}: only PCI buses up to {len(self.buses) - 1:#04x} exist"
        bus = self.buses[addr.bus]
        why = _compatible(addr.bus, bus.flags, flags, from_config)
        if why is not None:
            return f"{addr}: {why}"
        if bus.min_slot and addr.slot < bus.min_slot:
            return f"{addr}: slot must be >= {bus.min_slot} on this bus"
        if addr.slot > bus.max_slot:
            return f"{addr}: slot must be <= {bus.max_slot} on this bus ({bus.model})"
        return None

    def reserve(
        self,
        addr: PciAddress,
        flags: int,
        owner: str | _Work,
        from_config: bool,
        device: Device | None = None,
    ) -> None:
        """virDomainPCIAddressReserveAddrInternal()."""
        if self.dry_run:
            self.grow(addr.bus, flags, device)
        why = self.validate(addr, flags, from_config)
        if why is not None:
            if device is not None and from_config:
                raise InvalidAddressError(device, why, self.engine.source)
            raise UnsatisfiableError(
                f"{_name(owner)}: {why}",
                self.engine.source,
                self.engine.line_of(device),
            )
        bus = self.buses[addr.bus]
        key = (addr.bus, addr.slot, addr.function)
        if bus.functions[addr.slot] & (1 << addr.function):
            first = self.owners.get(key, "another device")
            first_line = first.dev.line if isinstance(first, _Work) else None
            line = device.line if device is not None else None
            raise AddressConflictError(
                addr,
                _name(first),
                _name(owner),
                self.engine.source,
                next((n for n in (line, first_line, self.engine.line) if n is not None), None),
            )
        if not bus.functions[addr.slot] and flags & AGGREGATE_SLOT:
            bus.aggregate[addr.slot] = True
        bus.functions[addr.slot] |= 1 << addr.function
        self.owners[key] = owner

    def next_address(self, flags: int, function: int, asker: Device | None = None) -> PciAddress:
        """virDomainPCIAddressGetNextAddr() (isolation groups are all 0 on x86)."""
        want = 0 if function == -1 else function
        start_bus, start_slot = self._resume.get((flags, function), (0, -1))
        for bus_index in range(start_bus, len(self.buses)):
            bus = self.buses[bus_index]
            if _compatible(bus_index, bus.flags, flags, False) is not None:
                continue
            slot = (
                bus.min_slot
                if bus_index != start_bus or start_slot < 0
                else max(start_slot, bus.min_slot)
            )
            functions, aggregate = bus.functions, bus.aggregate
            while slot <= bus.max_slot:
                used = functions[slot]
                if not used:
                    self._resume[(flags, function)] = (bus_index, slot)
                    return _slot_address(bus_index, slot, want)
                if flags & AGGREGATE_SLOT and aggregate[slot]:
                    if not used & (1 << want):
                        self._resume[(flags, function)] = (bus_index, slot)
                        return _slot_address(bus_index, slot, want)
                    if function == -1:
                        for fn in range(8):
                            if not used & (1 << fn):
                                self._resume[(flags, function)] = (bus_index, slot)
                                return _slot_address(bus_index, slot, fn)
                slot += 1
        if not self.dry_run:
            what = asker.label if asker is not None else "a device"
            raise UnsatisfiableError(
                f"no free guest PCI slot is left for {what}",
                self.engine.source,
                self.engine.line_of(asker),
            )
        self._resume[(flags, function)] = (len(self.buses), -1)
        bus_index = self.grow(len(self.buses), flags, asker)
        return _slot_address(bus_index, self.buses[bus_index].min_slot, want)

    def reserve_next(
        self, flags: int, owner: str | _Work, function: int = -1, asker: Device | None = None
    ) -> PciAddress:
        """virDomainPCIAddressReserveNextAddr()."""
        addr = self.next_address(flags, function, asker)
        self.reserve(addr, flags, owner, False, asker)
        return addr


def disk_name_index(name: str) -> int | None:
    """virDiskNameToIndex(): sda -> 0, hdb -> 1, vdaa -> 26."""
    match = re.fullmatch(r"(?:fd|hd|vd|sd|xvd|ubd)([a-z]+)\d*", name)
    if match is None:
        return None
    index = 0
    for ch in match.group(1):
        index = index * 26 + (ord(ch) - ord("a") + 1)
    return index - 1


# virDomainDiskDefAssignAddress(): units per controller for the drive address
# libvirt gives a disk without one (QEMU is not "wide SCSI": 7 units per bus).
_DISK_UNITS = {"scsi": 7, "sata": 6, "ide": 4}
_DISK_CONTROLLER_TYPES = ("scsi", "fdc", "ide", "sata")


class _Engine:
    def __init__(self, domain: DomainDevices, options: EngineOptions) -> None:
        self.machine = domain.machine
        self.source = domain.source
        self.line = domain.line
        self.acpi = domain.acpi
        self.options = options
        q35 = self.machine is MachineType.Q35
        auto = AUTOASSIGN
        # qemuDomainFillDevicePCIConnectFlagsIterInit(): QEMU 7.2 has virtio
        # transitional/non-transitional models, so virtio devices are PCIe on q35.
        self.pcie_flags = (PCIE_DEVICE if q35 else PCI_DEVICE) | auto
        self.pci_flags = PCI_DEVICE | auto
        self.virtio_flags = self.pcie_flags
        self.works: list[_Work] = []
        self.controllers: list[_Work] = []  # def->controllers order
        self.followers = {f: (leader, fn) for f, leader, fn in options.followers}
        self.leaders: dict[int, list[tuple[_Work, int]]] = {}
        self._disk_keys: dict[int, int | None] = {}
        self._by_kind: dict[DeviceKind, list[_Work]] | None = None
        self._post_parse(domain)

    # -- post-parse: what libvirt adds and defaults before addresses ---------

    def _normalized_model(self, dev: Device) -> str:
        q35 = self.machine is MachineType.Q35
        if dev.kind is DeviceKind.CONTROLLER:
            if dev.type == "usb" and not dev.model:
                return "qemu-xhci" if q35 else "piix3-uhci"  # qemuDomainControllerDefPostParse
            if dev.type == "scsi" and not dev.model:
                return "lsilogic"  # qemuDomainGetSCSIControllerModel(): QEMU has lsi
        if dev.kind is DeviceKind.VIDEO and not dev.model:
            return "cirrus"  # qemuDomainDeviceVideoDefPostParse() for x86 pc/q35
        if dev.kind is DeviceKind.INTERFACE and not dev.model:
            return "rtl8139"  # qemuDomainDeviceNetDefPostParse() default NIC on x86
        if dev.kind is DeviceKind.VSOCK and not dev.model:
            return "virtio"
        return dev.model

    def _insert_parsed_controller(self, work: _Work) -> None:
        """virDomainControllerInsertPreAlloced(): keep each type sorted by index."""
        insert_at = -1
        for pos in range(len(self.controllers) - 1, -1, -1):
            cur = self.controllers[pos]
            if cur.dev.type != work.dev.type:
                continue
            if (cur.index or 0) > (work.index or 0):
                insert_at = pos
            elif insert_at == -1:
                insert_at = pos + 1
        if insert_at == -1:
            self.controllers.append(work)
        else:
            self.controllers.insert(insert_at, work)

    def _insert_parsed_disk(self, disks: list[_Work], work: _Work) -> None:
        """virDomainDiskInsert(): disks on one bus are kept sorted by target name."""
        insert_at = -1
        key = self._disk_keys[id(work)] = disk_name_index(work.dev.disk_target or "")
        for pos in range(len(disks) - 1, -1, -1):
            cur = disks[pos]
            if cur.dev.model != work.dev.model:
                continue
            cur_key = self._disk_keys[id(cur)]
            if (cur_key if cur_key is not None else -1) > (key if key is not None else -1):
                insert_at = pos
            elif insert_at == -1:
                insert_at = pos + 1
        if insert_at == -1:
            disks.append(work)
        else:
            disks.insert(insert_at, work)

    def _add(self, dev: Device) -> _Work:
        work = _Work(dev, self._normalized_model(dev))
        self.works.append(work)
        self._by_kind = None
        if dev.kind is DeviceKind.CONTROLLER:
            self.controllers.append(work)
        return work

    def _find_controller(self, ctype: str, index: int) -> _Work | None:
        for c in self.controllers:
            if c.dev.type == ctype and c.index == index:
                return c
        return None

    def _maybe_add_controller(self, ctype: str, index: int, model: str = "") -> None:
        """virDomainDefMaybeAddController(): appended, not sorted."""
        if self._find_controller(ctype, index) is None:
            self._add(Device(DeviceKind.CONTROLLER, model=model, type=ctype, index=index))

    def _post_parse(self, domain: DomainDevices) -> None:
        q35 = self.machine is MachineType.Q35
        disks: list[_Work] = []
        has_serial = any(d.kind is DeviceKind.SERIAL for d in domain.devices)
        balloons = [d for d in domain.devices if d.kind is DeviceKind.MEMBALLOON]
        if len(balloons) > 1:
            # virDomainDefParseXML(): def->memballoon is one device
            raise LibvirtRefusalError(
                f"{balloons[1].label}: libvirt 9.0 refuses the domain: only a single memory "
                "balloon device is supported",
                self.source,
                balloons[1].line,
                "keep one <memballoon>",
            )
        first_console = True
        for dev in domain.devices:
            if dev.is_pci_controller:
                self._check_expander(dev)
            if dev.kind is DeviceKind.CONSOLE:
                # virDomainSkipBackcompatConsole(): the first <console> of target type
                # serial *is* serial 0 (libvirt copies serial 0 into it), so its address
                # is serial 0's and is neither collected nor assigned a second time.
                backcompat = first_console and has_serial and dev.type in ("", "serial")
                first_console = False
                if backcompat:
                    continue
            work = _Work(dev, self._normalized_model(dev))
            if dev.kind is DeviceKind.DISK:
                self._insert_parsed_disk(disks, work)
                continue
            self.works.append(work)
            if dev.kind is DeviceKind.CONTROLLER:
                self._insert_parsed_controller(work)
        # disks first: the order of self.works within one kind is libvirt's def order
        self.works[:0] = disks
        # qemuDomainDefAddDefaultDevices(): USB, (q35) SATA, PCI root, memballoon
        if self._find_controller("usb", 0) is None:
            self._add(
                Device(
                    DeviceKind.CONTROLLER,
                    model="qemu-xhci" if q35 else "piix3-uhci",
                    type="usb",
                    index=0,
                )
            )
        if q35:
            self._maybe_add_controller("sata", 0)
        root = self._find_controller("pci", 0)
        root_model = "pcie-root" if q35 else "pci-root"
        if root is None:
            self._add(Device(DeviceKind.CONTROLLER, model=root_model, type="pci", index=0))
        elif root.model != root_model:
            raise UnsupportedDomainError(
                f"the PCI controller with index 0 must be {root_model} on this machine",
                self.source,
                root.dev.line,
            )
        if not any(w.dev.kind is DeviceKind.MEMBALLOON for w in self.works):
            self._add(Device(DeviceKind.MEMBALLOON, model="virtio"))
        # virDomainDefAddImplicitVideo(): graphics without video get the default video
        if any(w.dev.kind is DeviceKind.GRAPHICS for w in self.works) and not any(
            w.dev.kind is DeviceKind.VIDEO for w in self.works
        ):
            self._add(Device(DeviceKind.VIDEO, model="cirrus"))
        # virDomainDefAddImplicitControllers(): disk controllers, then virtio-serial
        for ctype in _DISK_CONTROLLER_TYPES:
            highest = -1
            for w in self.works:
                if w.dev.kind is DeviceKind.DISK and w.dev.model == ctype:
                    highest = max(highest, self._disk_controller(w.dev))
            for idx in range(highest + 1):
                self._maybe_add_controller(ctype, idx)
        for w in self.works:
            if w.dev.kind in (DeviceKind.CHANNEL, DeviceKind.CONSOLE) and w.dev.type == "virtio":
                self._maybe_add_controller("virtio-serial", w.dev.attach_controller or 0)
        for w in self.works:
            w.flags = self._connect_flags(w)
        self._by_kind = None

    def _disk_controller(self, dev: Device) -> int:
        if dev.attach_controller is not None:
            return dev.attach_controller
        units = _DISK_UNITS.get(dev.model)
        index = disk_name_index(dev.disk_target or "")
        if units is None or index is None:
            return 0
        return index // units

    # qemuDomainDeviceCalculatePCIConnectFlags()
    def _connect_flags(self, w: _Work) -> int:
        dev, model = w.dev, w.model
        pci, pcie, virtio = self.pci_flags, self.pcie_flags, self.virtio_flags
        kind = dev.kind
        if kind is DeviceKind.CONTROLLER:
            t = dev.type
            if t == "pci":
                return _CONTROLLER_CONNECT.get(model, 0)
            if t in ("sata", "ide"):
                return pci
            if t == "usb":
                return pcie if model in _USB_PCIE else pci if model in _USB_PCI else 0
            if t == "scsi":
                if model in ("virtio-scsi", "virtio-non-transitional"):
                    return virtio
                return pci if model in _SCSI_PCI else 0
            if t == "virtio-serial":
                return pci if model == "virtio-transitional" else virtio
            return 0
        if kind is DeviceKind.FILESYSTEM:
            if dev.type == "virtiofs":
                return virtio
            if dev.type in ("", "path", "handle"):
                return pci if model == "virtio-transitional" else virtio
            return 0
        if kind is DeviceKind.INTERFACE:
            net = model.casefold()
            if net not in _NET_MODELS_9_0:
                return pcie  # VIR_DOMAIN_NET_MODEL_UNKNOWN
            if net == "usb-net":
                return 0
            if net in ("virtio", "virtio-non-transitional"):
                return virtio
            if net == "e1000e":
                return pcie
            return pci
        if kind is DeviceKind.SOUND:
            return pci if model in _SOUND_PCI else 0
        if kind is DeviceKind.DISK:
            if model != "virtio":
                return 0
            return pci if dev.type == "virtio-transitional" else virtio
        if kind is DeviceKind.HOSTDEV:
            if dev.type in ("pci", "mdev"):
                if pci == pcie or dev.address is not None or dev.type == "mdev":
                    return pcie
                if dev.host_address in self.options.conventional_hosts:
                    return pci
                return pcie  # libvirt assumes PCIe for host devices it cannot read
            if dev.type == "scsi_host":
                return pci if model == "virtio-transitional" else virtio
            return 0
        if kind in (DeviceKind.MEMBALLOON, DeviceKind.RNG, DeviceKind.VSOCK):
            if model == "virtio-transitional":
                return pci
            return virtio if model in ("virtio", "virtio-non-transitional") else 0
        if kind is DeviceKind.WATCHDOG:
            return pci if model == "i6300esb" else 0
        if kind is DeviceKind.VIDEO:
            if model == "virtio":
                return virtio
            if model == "bochs":
                return pcie
            return pci if model in _VIDEO_PCI else 0
        if kind is DeviceKind.SHMEM:
            return pci
        if kind is DeviceKind.INPUT:
            if model != "virtio":
                return 0
            return pci if dev.type == "virtio-transitional" else virtio
        if kind is DeviceKind.SERIAL:
            return pci if model == "pci-serial" else 0
        if kind is DeviceKind.IOMMU:
            # virtio-iommu-pci must sit on the root bus (INTEGRATED): 00:02.0 and up
            return virtio | INTEGRATED if model == "virtio" else 0
        if kind is DeviceKind.MEMORY:
            return virtio if model in _MEMORY_PCI else 0
        # <panic>: libvirt 9.0 has no PCI panic model (pvpanic-pci came in 9.1);
        # <crypto>: libvirt 9.0's parser does not know the element and drops it.
        return 0

    # -- the passes ------------------------------------------------------------

    def _of(self, kind: DeviceKind) -> Iterable[_Work]:
        if self._by_kind is None:
            by_kind: dict[DeviceKind, list[_Work]] = {}
            for w in self.works:
                by_kind.setdefault(w.dev.kind, []).append(w)
            self._by_kind = by_kind
        return self._by_kind.get(kind, ())

    def _iterate_order(self) -> list[_Work]:
        """virDomainDeviceInfoIterate() order (used when collecting given addresses)."""
        order = (
            DeviceKind.DISK,
            DeviceKind.INTERFACE,
            DeviceKind.SOUND,
            DeviceKind.HOSTDEV,
            DeviceKind.VIDEO,
        )
        out: list[_Work] = []
        hostdev_nets = [
            w for w in self.works if w.dev.kind is DeviceKind.HOSTDEV and w.dev.model == "interface"
        ]
        for kind in order:
            if kind is DeviceKind.HOSTDEV:
                out.extend(hostdev_nets)
                out.extend(w for w in self._of(kind) if w.dev.model != "interface")
            else:
                out.extend(self._of(kind))
        out.extend(self.controllers)
        seen = {id(w) for w in out}
        out.extend(w for w in self.works if id(w) not in seen)
        return out

    @staticmethod
    def _piix3_integrated(w: _Work) -> bool:
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

    def _max_pci_index(self) -> int:
        return max((c.index or 0 for c in self.controllers if c.dev.type == "pci"), default=-1)

    def _create_set(self, nbuses: int, dry_run: bool) -> _AddressSet:
        """qemuDomainPCIAddressSetCreate()."""
        addrs = _AddressSet(self, nbuses, dry_run)
        has_pcie_root = False
        for c in self.controllers:
            if c.dev.type != "pci":
                continue
            idx = c.index or 0
            hotplug = c.pci is None or c.pci.hotplug is not False
            try:
                addrs.buses[idx].set_model(c.model, hotplug)
            except ValueError:
                raise UnsupportedDomainError(
                    f"unknown PCI controller model {c.model!r}", self.source, c.dev.line
                ) from None
            has_pcie_root = has_pcie_root or c.model == "pcie-root"
        default = "pcie-root-port" if has_pcie_root else "pci-bridge"
        for bus in addrs.buses[1:]:
            if not bus.model:
                bus.set_model(default, True)
        for w in self._iterate_order():
            if w.address is None:
                continue
            if self._piix3_integrated(w):
                continue
            addrs.reserve(w.address, w.flags or PCI_DEVICE, w, True, w.dev)
        return addrs

    def _place_fixed(self, w: _Work, addr: PciAddress, must: str) -> None:
        """A device the chipset puts at one address (PIIX3 IDE/USB, q35 SATA)."""
        if w.address is not None:
            if w.address != addr:
                raise InvalidAddressError(
                    w.dev, f"{must} must have guest PCI address {addr}", self.source
                )
        else:
            w.address = addr

    def _primary_video(self, addrs: _AddressSet, slot: int, flags: int) -> None:
        videos = list(self._of(DeviceKind.VIDEO))
        primary = next((v for v in videos if v.dev.primary), videos[0] if videos else None)
        if primary is None or primary.model in ("none", "ramfb", "") or not primary.wanted:
            return
        tmp = PciAddress(0, 0, slot, 0)
        why = addrs.validate(tmp, flags, True)
        if why is not None:
            raise UnsatisfiableError(
                f"{primary.label}: {why}", self.source, self.line_of(primary.dev)
            )
        if addrs.slot_in_use(0, slot):
            self._reserve_next(addrs, primary)
        else:
            addrs.reserve(tmp, flags, primary, True)
            primary.address = tmp

    def _validate_chipset(self, addrs: _AddressSet) -> None:
        if self.machine is MachineType.PC:
            self._validate_piix3(addrs)
        else:
            self._validate_q35(addrs)

    def _validate_piix3(self, addrs: _AddressSet) -> None:
        """qemuDomainValidateDevicePCISlotsPIIX3()."""
        flags = AUTOASSIGN | PCI_DEVICE
        for c in self.controllers:
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

    def _validate_q35(self, addrs: _AddressSet) -> None:
        """qemuDomainValidateDevicePCISlotsQ35()."""
        flags = PCIE_DEVICE
        for c in self.controllers:
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
            for s in self._of(DeviceKind.SOUND):
                if s.model == "ich9" and s.wanted:
                    addr = PciAddress(0, 0, 0x1B, 0)
                    addrs.reserve(addr, flags, s, True)
                    s.address = addr
                    break

    def _reserve_next(self, addrs: _AddressSet, w: _Work, function: int = -1) -> PciAddress:
        addr = addrs.reserve_next(w.flags, w, function, w.dev)
        if not addrs.dry_run:
            w.address = addr
        return addr

    def _assign_slots(self, addrs: _AddressSet) -> None:
        """qemuDomainAssignDevicePCISlots(): the order devices get slots in."""
        for c in self.controllers:
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
        for c in self.controllers:
            self._assign_device_controller(addrs, c)
        for d in self._of(DeviceKind.DISK):
            if d.dev.model != "virtio" or d.address is not None:
                continue
            if d.dev.other_address not in (None, "ccw", "virtio-mmio"):
                raise LibvirtRefusalError(
                    f"{d.label}: virtio disk cannot have an address of type '{d.dev.other_address}'",
                    self.source,
                    d.dev.line,
                    "remove the <address> or give it type='pci'",
                )
            if d.wanted:
                self._reserve_next(addrs, d)
        hostdevs = [w for w in self._of(DeviceKind.HOSTDEV) if w.dev.model == "interface"]
        hostdevs += [w for w in self._of(DeviceKind.HOSTDEV) if w.dev.model != "interface"]
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
        self._assign_kind(addrs, DeviceKind.MEMORY, lambda w: w.model in _MEMORY_PCI)

    def _place_followers(self, addrs: _AddressSet, leader: _Work, addr: PciAddress) -> None:
        for follower, function in self.leaders.get(id(leader), ()):
            target = PciAddress(addr.domain, addr.bus, addr.slot, function)
            addrs.reserve(target, follower.flags, follower, False)
            if not addrs.dry_run:
                follower.address = target

    def _assign_kind(
        self, addrs: _AddressSet, kind: DeviceKind, placed: Callable[[_Work], bool] | None = None
    ) -> None:
        for w in self._of(kind):
            if w.wanted and (placed is None or placed(w)):
                self._reserve_next(addrs, w)

    def line_of(self, dev: Device | None) -> int | None:
        """The device's line, or for a device libvirt adds, the line of <devices>."""
        if dev is not None and dev.line is not None:
            return dev.line
        return self.line

    def cannot_grow(self, flags: int, asker: Device | None) -> LibvirtRefusalError:
        """virDomainPCIAddressSetGrow()'s refusal, in libvirt's words.

        libvirt only grows buses for PCI and PCIe endpoints (and upstream switch ports);
        anything else that finds no slot, a device whose connect flags are 0 or a PCI
        controller with nothing to plug into, ends the define. The flags are printed in
        libvirt's numbering (domain_addr.h: AUTOASSIGN 0x1, HOTPLUGGABLE 0x2, the
        connection types from 0x10 up): 00 for a device with no PCI connection, 2000
        for a pcie-to-pci-bridge.
        """
        theirs = (flags & TYPES_MASK) << 4
        theirs |= (1 if flags & AUTOASSIGN else 0) | (2 if flags & HOTPLUGGABLE else 0)
        who = f"{asker.label}: " if asker is not None else ""
        controller = flags & TYPES_MASK & ~TYPES_ENDPOINT
        # virDomainPCIControllerConnectTypeToModel() of 9.0 knows every controller
        # connection but the pcie-to-pci-bridge's, which gets the generic message
        model = next((m for f, m in _CONNECT_MODELS if controller & f), None)
        if model is not None:
            return LibvirtRefusalError(
                f"{who}libvirt 9.0 refuses the domain: a PCI slot is needed to connect a PCI "
                f"controller model='{model}', but none is available, and it cannot be "
                "automatically added",
                self.source,
                self.line_of(asker),
                "add the controller it plugs into (e.g. a pcie-root-port) or free a slot",
            )
        return LibvirtRefusalError(
            f"{who}libvirt 9.0 refuses the domain: Cannot automatically add a new PCI bus "
            f"for a device with connect flags {theirs:02x}",
            self.source,
            self.line_of(asker),
            "add the controller it plugs into (e.g. a pcie-root-port) or free a slot"
            if controller
            else "libvirt 9.0 gives this device model no PCI connection: choose another "
            "model or remove the device",
        )

    def _check_expander(self, dev: Device) -> None:
        """qemuDomainControllerDefPostParse(): expander buses belong to one chipset."""
        why = None
        if dev.model == "pcie-expander-bus" and self.machine is not MachineType.Q35:
            why = "pcie-expander-bus controllers are not supported with this machine type"
        elif dev.model == "pci-expander-bus" and self.machine is not MachineType.PC:
            why = "pci-expander-bus controllers are only supported on 440fx-based machinetypes"
        if why is not None:
            raise LibvirtRefusalError(
                f"libvirt 9.0 refuses the domain: {why}",
                self.source,
                dev.line,
                "use pcie-expander-bus on q35 and pci-expander-bus on pc",
            )

    def _validate_iommu(self, dev: Device) -> None:
        """qemuValidateDomainDeviceDefIOMMU() for the x86 machines."""
        why = None
        if dev.model == "virtio" and self.machine is not MachineType.Q35:
            why = "IOMMU device: 'virtio' is only supported with Q35 and ARM Virt machines"
        elif dev.model == "virtio" and not self.acpi:
            why = "IOMMU device: 'virtio' requires ACPI"
        elif dev.model == "intel" and self.machine is not MachineType.Q35:
            why = "IOMMU device: 'intel' is only supported with Q35 machines"
        if why is not None:
            raise LibvirtRefusalError(
                f"libvirt 9.0 refuses the domain: {why}",
                self.source,
                dev.line,
                "use a q35 machine with <features><acpi/></features>, or remove the <iommu>",
            )

    def _assign_device_controller(self, addrs: _AddressSet, c: _Work) -> None:
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
        for other in self.controllers:
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

    def _link_followers(self) -> None:
        by_ref = {w.dev.ref: w for w in self.works if w.dev.ref is not None}
        for ref, (leader_ref, function) in self.followers.items():
            self.leaders.setdefault(id(by_ref[leader_ref]), []).append((by_ref[ref], function))

    def run(self) -> list[_Work]:
        """qemuDomainAssignPCIAddresses()."""
        self._link_followers()
        max_idx = self._max_pci_index()
        nbuses = max_idx + 1
        spare = self.options.spare_ports
        # 1st pass: a dry run to find how many buses the devices need
        addrs = self._create_set(nbuses, True)
        self._validate_chipset(addrs)
        # keep one slot free on pc (or push the last device onto a new pci-bridge),
        # so a pc guest can always grow by hotplug
        if (
            self.machine is MachineType.PC
            and spare is None
            and not all(b.fully_reserved() for b in addrs.buses)
        ):
            addrs.reserve_next(AUTOASSIGN | PCI_DEVICE, "a spare slot")
        self._assign_slots(addrs)
        dummy = (PCIE_DEVICE if self.machine is MachineType.Q35 else PCI_DEVICE) | AUTOASSIGN
        if spare is None:
            if max_idx <= 0 and len(addrs.buses) > max_idx + 1 and self.machine is MachineType.Q35:
                # one empty pcie-root-port for hotplug, only for guests whose PCI
                # topology libvirt manages alone (no PCI controllers in the input)
                addrs.reserve_next(dummy, "a spare hotplug port")
        else:
            for _ in range(spare):
                addrs.reserve_next(dummy | HOTPLUGGABLE, "a spare hotplug port")
        present = {c.index for c in self.controllers if c.dev.type == "pci"}
        i = 0
        while i + 1 < len(addrs.buses):
            i += 1
            if i in present:
                continue
            model = addrs.buses[i].model
            c = self._add(Device(DeviceKind.CONTROLLER, model=model, type="pci", index=i))
            c.flags = self._connect_flags(c)
            if model not in ("pci-root", "pcie-root"):
                addrs.reserve_next(c.flags, c)
        nbuses = len(addrs.buses)
        # 2nd pass: the real assignment on the buses found above
        addrs = self._create_set(nbuses, False)
        self._validate_chipset(addrs)
        self._assign_slots(addrs)
        self._set_multifunction()
        self._controller_defaults()
        self._validate()
        return self.works

    def _validate(self) -> None:
        """The refusals of libvirt 9.0's define-time validation that domains with PCI
        devices run into; they come after address assignment (post-parse), so a
        domain libvirt cannot address is refused for that first."""
        usb_off = any(c.dev.type == "usb" and c.model == "none" for c in self.controllers)
        videos = list(self._of(DeviceKind.VIDEO))
        primary = next((v for v in videos if v.dev.primary), videos[0] if videos else None)
        if len(videos) > 1 and any(v.model == "none" for v in videos):
            none = next(v for v in videos if v.model == "none")
            raise LibvirtRefusalError(
                f"{none.label}: libvirt 9.0 refuses the domain: a 'none' video type must be "
                "the only video device defined for the domain",
                self.source,
                none.dev.line,
                "remove the other <video> devices or this one",
            )
        # USB inputs and hubs are refused while the implicit devices are added,
        # before the validation of single devices
        for w in self.works if usb_off else ():
            dev = w.dev
            if dev.kind is DeviceKind.OTHER and dev.model == "hub":
                raise LibvirtRefusalError(
                    f"{w.label}: libvirt 9.0 refuses the domain: Can't add USB hub: USB is "
                    "disabled for this domain",
                    self.source,
                    dev.line,
                    "remove <controller type='usb' model='none'/> or the <hub>",
                )
            if dev.kind is DeviceKind.INPUT and dev.model == "usb":
                raise LibvirtRefusalError(
                    f"{w.label}: libvirt 9.0 refuses the domain: Can't add USB input device. "
                    "USB bus is disabled",
                    self.source,
                    dev.line,
                    "remove <controller type='usb' model='none'/> or use a ps2/virtio input",
                )
        # per device, in virDomainDeviceInfoIterate() order, as libvirt validates them
        for w in self._iterate_order():
            dev = w.dev
            if dev.kind is DeviceKind.IOMMU:
                self._validate_iommu(dev)
            elif dev.kind is DeviceKind.VIDEO and w is not primary:
                # qemuValidateDomainDeviceDefVideo(): QEMU has no secondary VGA devices
                if w.model not in ("qxl", "virtio"):
                    raise LibvirtRefusalError(
                        f"{w.label}: libvirt 9.0 refuses the domain: video type "
                        f"'{w.model}' is only valid as primary video device",
                        self.source,
                        dev.line,
                        "make it the first <video> (or primary='yes'), or use qxl or virtio",
                    )
            elif usb_off and self._is_usb_device(w):
                # virDomainDefValidateInternal() -> virDomainDefCheckUSB...
                raise LibvirtRefusalError(
                    f"{w.label}: libvirt 9.0 refuses the domain: USB is disabled for this "
                    "domain, but USB devices are present in the domain XML",
                    self.source,
                    dev.line,
                    "remove <controller type='usb' model='none'/> or the USB device",
                )

    @staticmethod
    def _is_usb_device(w: _Work) -> bool:
        dev = w.dev
        kind = dev.kind
        if kind is DeviceKind.INPUT or kind is DeviceKind.DISK:
            return dev.model == "usb"  # the input's or disk's bus
        if kind is DeviceKind.SOUND:
            return w.model == "usb"
        if kind is DeviceKind.INTERFACE:
            return w.model.casefold() == "usb-net"
        if kind is DeviceKind.HOSTDEV:
            return dev.type == "usb"
        return kind is DeviceKind.OTHER and dev.model == "redirdev"

    def _set_multifunction(self) -> None:
        """virDomainPCIAddressSetAllMulti()."""
        first_function: dict[tuple[int, int, int], _Work] = {}
        for w in self._iterate_order():
            if w.address is not None and w.address.function == 0:
                first_function.setdefault((w.address.domain, w.address.bus, w.address.slot), w)
        for w in self._iterate_order():
            if w.address is None or w.address.function == 0:
                continue
            head = first_function.get((w.address.domain, w.address.bus, w.address.slot))
            if head is not None and head.multi is None:
                head.multi = True

    def _controller_defaults(self) -> None:
        """The option defaults at the end of qemuDomainAssignPCIAddresses()."""
        for c in self.controllers:
            if c.dev.type != "pci":
                continue
            opts = c.pci or PciControllerOptions()
            model_name, chassis_nr, chassis, port, bus_nr = (
                opts.model_name,
                opts.chassis_nr,
                opts.chassis,
                opts.port,
                opts.bus_nr,
            )
            if model_name is None:
                model_name = _MODEL_NAMES.get(c.model)
            idx = c.index or 0
            addr = c.address
            if c.model == "pci-bridge":
                if chassis_nr is None:
                    chassis_nr = idx
                if addr is not None and idx <= addr.bus:
                    # qemuValidateDomainDeviceDefControllerPCI() words it so
                    raise LibvirtRefusalError(
                        f"{c.label}: libvirt 9.0 refuses the domain: PCI controller at index "
                        f"{idx} ({idx:#04x}) has bus='{addr.bus:#04x}', but index must be "
                        "larger than bus",
                        self.source,
                        self.line_of(c.dev),
                        "remove fixed addresses that fill the buses, or add PCI controllers",
                    )
            elif c.model == "pcie-root-port" and addr is not None:
                chassis = idx if chassis is None else chassis
                port = (addr.slot << 3) + addr.function if port is None else port
            elif c.model == "pcie-switch-downstream-port" and addr is not None:
                chassis = idx if chassis is None else chassis
                port = addr.slot if port is None else port
            elif c.model in ("pci-expander-bus", "pcie-expander-bus") and bus_nr is None:
                bus_nr = self._new_bus_nr(c)
            if (model_name, chassis_nr, chassis, port, bus_nr) != (
                opts.model_name,
                opts.chassis_nr,
                opts.chassis,
                opts.port,
                opts.bus_nr,
            ) or c.pci is None:
                opts = PciControllerOptions(
                    model_name, chassis_nr, chassis, port, bus_nr, opts.node, opts.hotplug
                )
            c.pci = opts

    def _new_bus_nr(self, c: _Work) -> int:
        """qemuDomainAddressFindNewBusNr(): two below the lowest busNr in use."""
        lowest = 256
        for other in self.controllers:
            if other.dev.type == "pci" and other.pci is not None and other.pci.bus_nr is not None:
                lowest = min(lowest, other.pci.bus_nr)
        if lowest <= 2:
            raise UnsatisfiableError(
                f"{c.label}: no free busNr below the lowest one in use; give <target busNr=/> yourself",
                self.source,
                self.line_of(c.dev),
            )
        return lowest - 2


def assign(domain: DomainDevices, options: EngineOptions | None = None) -> Allocation:
    """libvirt 9.0's PCI address assignment for `domain` (with tuned-policy hooks)."""
    engine = _Engine(domain, options or EngineOptions())
    works = engine.run()
    devices = []
    for w in works:
        dev = w.dev
        if (
            w.address != dev.address
            or w.multi != dev.multifunction
            or w.pci != dev.pci
            or (dev.ref is None and w.model != dev.model)
        ):
            model = w.model if dev.ref is None else dev.model
            dev = replace(dev, address=w.address, multifunction=w.multi, pci=w.pci, model=model)
        devices.append(dev)
    return Allocation(domain.machine, tuple(devices))
