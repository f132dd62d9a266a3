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

from ...model.records import frozen, replace
from .devicelist import DeviceList
from .model import (
    Allocation,
    Device,
    DeviceKind,
    DomainDevices,
    LibvirtRefusalError,
    MachineType,
    PciControllerOptions,
    UnsatisfiableError,
)
from .pcibus import AUTOASSIGN, HOTPLUGGABLE, PCI_DEVICE, PCIE_DEVICE, Work, line_of
from .refusals import validate
from .slots import SlotAssigner

# Not typing.TYPE_CHECKING: importing typing costs the allocate command ~0.2x a bare start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ...model.pciaddress import PciAddress

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


class _Engine:
    """qemuDomainAssignPCIAddresses(): the passes over one domain, in libvirt's order.

    The phases live beside it: `devicelist` (post-parse and connect flags), `pcibus`
    (the buses and the address set), `slots` (who gets which slot), `refusals` (the
    define-time validation); what is left here is the sequence and the final defaults.
    """

    def __init__(self, domain: DomainDevices, options: EngineOptions) -> None:
        self.machine = domain.machine
        self.source = domain.source
        self.line = domain.line
        self.acpi = domain.acpi
        self.options = options
        followers = {f: (leader, fn) for f, leader, fn in options.followers}
        self.devices = DeviceList(domain, options.conventional_hosts)
        self.slots = SlotAssigner(self.devices, followers, domain.line)

    def run(self) -> list[Work]:
        """qemuDomainAssignPCIAddresses()."""
        self.slots.link_followers()
        max_idx = self.devices.max_pci_index()
        nbuses = max_idx + 1
        spare = self.options.spare_ports
        # 1st pass: a dry run to find how many buses the devices need
        addrs = self.slots.create_set(nbuses, True)
        self.slots.validate_chipset(addrs)
        # keep one slot free on pc (or push the last device onto a new pci-bridge),
        # so a pc guest can always grow by hotplug
        if (
            self.machine is MachineType.PC
            and spare is None
            and not all(b.fully_reserved() for b in addrs.buses)
        ):
            addrs.reserve_next(AUTOASSIGN | PCI_DEVICE, "a spare slot")
        self.slots.assign_slots(addrs)
        dummy = (PCIE_DEVICE if self.machine is MachineType.Q35 else PCI_DEVICE) | AUTOASSIGN
        if spare is None:
            if max_idx <= 0 and len(addrs.buses) > max_idx + 1 and self.machine is MachineType.Q35:
                # one empty pcie-root-port for hotplug, only for guests whose PCI
                # topology libvirt manages alone (no PCI controllers in the input)
                addrs.reserve_next(dummy, "a spare hotplug port")
        else:
            for _ in range(spare):
                addrs.reserve_next(dummy | HOTPLUGGABLE, "a spare hotplug port")
        present = {c.index for c in self.devices.controllers if c.dev.type == "pci"}
        i = 0
        while i + 1 < len(addrs.buses):
            i += 1
            if i in present:
                continue
            model = addrs.buses[i].model
            c = self.devices.add(Device(DeviceKind.CONTROLLER, model=model, type="pci", index=i))
            c.flags = self.devices.connect_flags(c)
            if model not in ("pci-root", "pcie-root"):
                addrs.reserve_next(c.flags, c)
        nbuses = len(addrs.buses)
        # 2nd pass: the real assignment on the buses found above
        addrs = self.slots.create_set(nbuses, False)
        self.slots.validate_chipset(addrs)
        self.slots.assign_slots(addrs)
        self._set_multifunction()
        self._controller_defaults()
        validate(self.devices, self.acpi)
        return self.devices.works

    def _set_multifunction(self) -> None:
        """virDomainPCIAddressSetAllMulti()."""
        first_function: dict[tuple[int, int, int], Work] = {}
        for w in self.devices.iterate_order():
            if w.address is not None and w.address.function == 0:
                first_function.setdefault((w.address.domain, w.address.bus, w.address.slot), w)
        for w in self.devices.iterate_order():
            if w.address is None or w.address.function == 0:
                continue
            head = first_function.get((w.address.domain, w.address.bus, w.address.slot))
            if head is not None and head.multi is None:
                head.multi = True

    def _controller_defaults(self) -> None:
        """The option defaults at the end of qemuDomainAssignPCIAddresses()."""
        for c in self.devices.controllers:
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
                        line_of(c.dev, self.line),
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

    def _new_bus_nr(self, c: Work) -> int:
        """qemuDomainAddressFindNewBusNr(): two below the lowest busNr in use."""
        lowest = 256
        for other in self.devices.controllers:
            if other.dev.type == "pci" and other.pci is not None and other.pci.bus_nr is not None:
                lowest = min(lowest, other.pci.bus_nr)
        if lowest <= 2:
            raise UnsatisfiableError(
                f"{c.label}: no free busNr below the lowest one in use; give <target busNr=/> yourself",
                self.source,
                line_of(c.dev, self.line),
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
