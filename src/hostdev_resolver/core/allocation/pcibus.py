"""The guest's PCI buses as libvirt 9.0 models them: connect flags, what each
controller model accepts, and the address set the passes reserve slots on
(src/conf/domain_addr.c, virDomainPCIAddressSet and friends).
"""

from __future__ import annotations

from ...model.pciaddress import PciAddress
from .model import (
    AddressConflictError,
    Device,
    InvalidAddressError,
    LibvirtRefusalError,
    UnsatisfiableError,
)

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

_CONNECT_MODELS = (
    (PCIE_ROOT_PORT, "pcie-root-port"),
    (PCIE_SWITCH_UPSTREAM_PORT, "pcie-switch-upstream-port"),
    (PCIE_SWITCH_DOWNSTREAM_PORT, "pcie-switch-downstream-port"),
    (DMI_TO_PCI_BRIDGE, "dmi-to-pci-bridge"),
    (PCIE_EXPANDER_BUS, "pcie-expander-bus"),
    (PCI_EXPANDER_BUS, "pci-expander-bus"),
    (PCI_BRIDGE, "pci-bridge"),
)


def line_of(dev: Device | None, devices_line: int | None) -> int | None:
    """The device's line, or for a device libvirt adds, the line of <devices>."""
    if dev is not None and dev.line is not None:
        return dev.line
    return devices_line


class Work:
    """A device while it is being placed (mutable; never leaves the allocation engine)."""

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


def slot_address(bus: int, slot: int, function: int) -> PciAddress:
    """A domain-0 address the search found: slot <= 31 and function <= 7 by construction,
    so only the bus needs PciAddress's range check. Building it without the check is
    most of what an address costs in a 256-device guest."""
    if bus > 0xFF:
        return PciAddress(0, bus, slot, function)  # raises: out of range
    address = object.__new__(PciAddress)
    address.__dict__.update(domain=0, bus=bus, slot=slot, function=function)
    return address


def owner_name(owner: str | Work) -> str:
    return owner if isinstance(owner, str) else owner.label


class Bus:
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


def compatible(bus_index: int, bus_flags: int, dev_flags: int, from_config: bool) -> str | None:
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


class AddressSet:
    """virDomainPCIAddressSet: buses, reserved functions, and the dry-run growth."""

    def __init__(self, source: str | None, line: int | None, nbuses: int, dry_run: bool) -> None:
        self.source = source  # the domain file, for messages
        self.line = line  # the line of <devices>, for devices libvirt adds
        self.buses = [Bus() for _ in range(nbuses)]
        self.dry_run = dry_run
        # who holds each function; labels are made only for a message (they cost)
        self.owners: dict[tuple[int, int, int], str | Work] = {}
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
            raise self.cannot_grow(flags, asker)
        first = len(self.buses)
        self.buses.extend(Bus() for _ in range(add))
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
        why = compatible(addr.bus, bus.flags, flags, from_config)
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
        owner: str | Work,
        from_config: bool,
        device: Device | None = None,
    ) -> None:
        """virDomainPCIAddressReserveAddrInternal()."""
        if self.dry_run:
            self.grow(addr.bus, flags, device)
        why = self.validate(addr, flags, from_config)
        if why is not None:
            if device is not None and from_config:
                raise InvalidAddressError(device, why, self.source)
            raise UnsatisfiableError(
                f"{owner_name(owner)}: {why}",
                self.source,
                self.line_of(device),
            )
        bus = self.buses[addr.bus]
        key = (addr.bus, addr.slot, addr.function)
        if bus.functions[addr.slot] & (1 << addr.function):
            first = self.owners.get(key, "another device")
            first_line = first.dev.line if isinstance(first, Work) else None
            line = device.line if device is not None else None
            raise AddressConflictError(
                addr,
                owner_name(first),
                owner_name(owner),
                self.source,
                next((n for n in (line, first_line, self.line) if n is not None), None),
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
            if compatible(bus_index, bus.flags, flags, False) is not None:
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
                    return slot_address(bus_index, slot, want)
                if flags & AGGREGATE_SLOT and aggregate[slot]:
                    if not used & (1 << want):
                        self._resume[(flags, function)] = (bus_index, slot)
                        return slot_address(bus_index, slot, want)
                    if function == -1:
                        for fn in range(8):
                            if not used & (1 << fn):
                                self._resume[(flags, function)] = (bus_index, slot)
                                return slot_address(bus_index, slot, fn)
                slot += 1
        if not self.dry_run:
            what = asker.label if asker is not None else "a device"
            raise UnsatisfiableError(
                f"no free guest PCI slot is left for {what}",
                self.source,
                self.line_of(asker),
            )
        self._resume[(flags, function)] = (len(self.buses), -1)
        bus_index = self.grow(len(self.buses), flags, asker)
        return slot_address(bus_index, self.buses[bus_index].min_slot, want)

    def reserve_next(
        self, flags: int, owner: str | Work, function: int = -1, asker: Device | None = None
    ) -> PciAddress:
        """virDomainPCIAddressReserveNextAddr()."""
        addr = self.next_address(flags, function, asker)
        self.reserve(addr, flags, owner, False, asker)
        return addr

    def line_of(self, dev: Device | None) -> int | None:
        return line_of(dev, self.line)

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
