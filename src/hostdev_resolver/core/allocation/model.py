"""The pure data of guest PCI address allocation (SPEC §8).

A domain is reduced to what placement needs: its machine type, its guest NUMA
cells and an ordered list of `Device`s (controllers included), each with the
guest PCI address it already has, if any. `allocate_addresses()` returns an
`Allocation`: the same list with every PCI device addressed, plus the
controllers (and implicit devices) libvirt would add. Nothing here does I/O.
"""

from __future__ import annotations

from enum import StrEnum

from ...model.errors import ConflictError, Location, RefusedError
from ...model.records import field, frozen

# Not typing.TYPE_CHECKING: importing typing costs the allocate command ~0.2x a bare start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ...model.pciaddress import PciAddress


class MachineType(StrEnum):
    """The x86_64 machine families libvirt addresses differently."""

    PC = "pc"  # i440fx + PIIX3: conventional PCI root bus
    Q35 = "q35"  # ICH9: PCI Express root complex

    @classmethod
    def from_machine(cls, machine: str | None) -> MachineType | None:
        """`pc`, `pc-i440fx-7.2`, `q35`, `pc-q35-7.2`...; None for anything else.

        libvirt's qemuDomainIsQ35() matches "q35" and "pc-q35-*"; qemuDomainIsI440FX()
        matches "pc", "pc-0.*", "pc-1.*" and "pc-i440fx-*". With no machine at all,
        QEMU 7.2's default x86_64 machine is pc-i440fx-7.2.
        """
        if machine is None or machine == "pc" or machine.startswith("pc-i440fx-"):
            return cls.PC
        if machine == "q35" or machine.startswith("pc-q35-"):
            return cls.Q35
        if machine.startswith(("pc-0.", "pc-1.")):
            return cls.PC
        return None


class DeviceKind(StrEnum):
    """Device element names, as in <devices>."""

    DISK = "disk"
    CONTROLLER = "controller"
    FILESYSTEM = "filesystem"
    INTERFACE = "interface"
    SOUND = "sound"
    HOSTDEV = "hostdev"
    VIDEO = "video"
    INPUT = "input"
    WATCHDOG = "watchdog"
    MEMBALLOON = "memballoon"
    RNG = "rng"
    SHMEM = "shmem"
    SERIAL = "serial"
    CHANNEL = "channel"
    CONSOLE = "console"
    VSOCK = "vsock"
    IOMMU = "iommu"
    MEMORY = "memory"  # <memory model='virtio-mem|virtio-pmem|dimm|nvdimm'>
    PANIC = "panic"
    CRYPTO = "crypto"
    GRAPHICS = "graphics"
    OTHER = "other"


@frozen
class PciControllerOptions:
    """The settings of a `<controller type='pci'>` besides its address."""

    model_name: str | None = None  # <model name='pcie-root-port'/>
    chassis_nr: int | None = None  # <target chassisNr=/> (pci-bridge)
    chassis: int | None = None  # <target chassis=/> (root and downstream ports)
    port: int | None = None  # <target port=/>
    bus_nr: int | None = None  # <target busNr=/> (expander buses)
    node: int | None = None  # <target><node>N</node></target> (expander buses)
    hotplug: bool | None = None  # <target hotplug='on|off'/>; None when absent


@frozen
class Device:
    """One device of a domain, as far as PCI placement is concerned.

    `model` is the one attribute that decides how the device connects: the
    controller/interface/sound/video/watchdog/rng/memballoon model, the disk or
    input bus, the serial target type. `type` is the element's own type
    attribute (controller type, interface type, hostdev type, ...).
    """

    kind: DeviceKind
    model: str = ""
    type: str = ""
    index: int | None = None  # controller index
    address: PciAddress | None = None  # guest PCI address
    multifunction: bool | None = None  # multifunction='on|off' of that address
    other_address: str | None = None  # type of a non-PCI <address> (drive, usb, ...)
    attach_controller: int | None = None  # drive / virtio-serial controller index it uses
    disk_target: str | None = None  # <target dev=/> of a disk
    host_address: PciAddress | None = None  # <source><address/> of a PCI hostdev
    primary: bool = False  # <video><model primary='yes'/>
    pci: PciControllerOptions | None = None  # for <controller type='pci'>
    ref: int | None = None  # position in the input device list; None when added
    line: int | None = None  # source line of the element

    @property
    def is_pci_controller(self) -> bool:
        return self.kind is DeviceKind.CONTROLLER and self.type == "pci"

    @property
    def label(self) -> str:
        """How messages name the device: <interface model='e1000'> at line 12."""
        if self.kind is DeviceKind.CONTROLLER:
            name = f"<controller type='{self.type}' index='{self.index}'"
            name += f" model='{self.model}'>" if self.model else ">"
        elif self.kind is DeviceKind.HOSTDEV and self.host_address is not None:
            name = f"<hostdev> for host {self.host_address}"
        elif self.kind is DeviceKind.OTHER:
            name = f"<{self.model}>"  # the element name
        elif self.model:
            name = f"<{self.kind.value} {self.model}>"
        else:
            name = f"<{self.kind.value}>"
        if self.line is not None:
            return f"{name} at line {self.line}"
        if self.ref is None:
            return f"{name} (added)"
        return name


@frozen
class DomainDevices:
    """What allocation reads from a domain."""

    machine: MachineType
    devices: tuple[Device, ...]
    numa_cells: tuple[int, ...] = ()  # guest NUMA cell ids (<cpu><numa><cell id=/>)
    # guest cell id -> host NUMA nodes its memory is bound to (<numatune><memnode>)
    cell_host_nodes: tuple[tuple[int, frozenset[int]], ...] = ()
    source: str | None = None  # file name for messages
    acpi: bool = False  # <features><acpi/></features>
    line: int | None = None  # line of <devices> (or <domain>) for domain-wide messages


@frozen
class HostDeviceInfo:
    """What the allocator may know of a host PCI device (passed in; it reads nothing)."""

    address: PciAddress
    numa_node: int | None = None
    express: bool = True  # libvirt assumes PCIe for devices it cannot inspect


@frozen
class Policy:
    """How to place devices.

    `name='libvirt'` reproduces libvirt 9.0 exactly and ignores the tunables.
    `name='tuned'` starts from the same rules and adds: `spare_ports` empty
    hotplug-capable root ports (instead of libvirt's one-off single spare),
    `numa_aware` placement of host devices behind pcie-expander-bus controllers,
    `group_multifunction` (functions of one host device share one guest slot) and
    `hotplug=False` for the root ports of passthrough devices.
    """

    name: str = "libvirt"
    spare_ports: int | None = None
    numa_aware: bool = False
    group_multifunction: bool = True
    hotplug: bool = True
    host_devices: tuple[HostDeviceInfo, ...] = field(default=())

    def host_device(self, address: PciAddress) -> HostDeviceInfo | None:
        for info in self.host_devices:
            if info.address == address:
                return info
        return None


@frozen
class Allocation:
    """The full device list after placement.

    Devices with a `ref` are the input's (same order); devices without one were
    added (implicit USB/SATA controllers, memballoon, video, PCI controllers).
    """

    machine: MachineType
    devices: tuple[Device, ...]
    notes: tuple[str, ...] = ()

    @property
    def added(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.ref is None)

    def by_ref(self) -> dict[int, Device]:
        return {d.ref: d for d in self.devices if d.ref is not None}


# -- errors ------------------------------------------------------------------


class AddressConflictError(ConflictError):
    """Two devices of the input claim one guest PCI address (exit 1)."""

    def __init__(
        self, address: PciAddress, first: str, second: str, source: str | None, line: int | None
    ) -> None:
        self.address = address
        self.first = first
        self.second = second
        super().__init__(
            f"guest PCI address {address} is claimed by both {first} and {second}",
            where=Location(source, line),
            fix="remove or change the <address> of one of them",
        )


class InvalidAddressError(RefusedError):
    """A given guest address does not fit the bus it names (exit 1)."""

    def __init__(self, device: Device, why: str, source: str | None) -> None:
        self.device = device
        super().__init__(
            f"{device.label}: {why}",
            where=Location(source, device.line),
            fix="change or remove the <address>, or add the controller it needs",
        )


class UnsatisfiableError(RefusedError):
    """No placement exists for a device (exit 1)."""

    def __init__(self, what: str, source: str | None, line: int | None = None) -> None:
        super().__init__(
            what,
            where=Location(source, line),
            fix="remove fixed addresses that fill the buses, or add PCI controllers",
        )


class UnsupportedDomainError(RefusedError):
    """The domain uses something this allocator does not model (exit 1)."""

    def __init__(
        self, what: str, source: str | None, line: int | None = None, fix: str | None = None
    ) -> None:
        super().__init__(
            what,
            where=Location(source, line),
            fix=fix
            or "let libvirt assign this domain's addresses (virsh define), or give the device an <address>",
        )


class UnmodeledMachineError(UnsupportedDomainError):
    """An architecture or machine type whose PCI layout this allocator does not know (exit 1).

    For `--policy libvirt` called implicitly (hostdev-virsh), the caller may leave the
    domain to libvirt untouched: that is exactly what libvirt would do with it.
    """


class LibvirtRefusalError(RefusedError):
    """libvirt 9.0 itself refuses to define this domain; the message is libvirt's (exit 1)."""

    def __init__(self, what: str, source: str | None, line: int | None, fix: str) -> None:
        super().__init__(what, where=Location(source, line), fix=fix)
