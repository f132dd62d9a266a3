"""The devices allocation works on, as libvirt 9.0 sees them after post-parse.

What libvirt adds (USB and SATA controllers, the PCI root, memballoon, disk and
virtio-serial controllers, video for graphics), the models it defaults, the order it
keeps disks and controllers in, and each device's connect flags
(qemuDomainDeviceCalculatePCIConnectFlags()): the kind of slot it needs.
"""

from __future__ import annotations

import re

from ...model.pciaddress import PciAddress
from .model import (
    Device,
    DeviceKind,
    DomainDevices,
    LibvirtRefusalError,
    MachineType,
    UnsupportedDomainError,
)
from .pcibus import (
    AGGREGATE_SLOT,
    AUTOASSIGN,
    DMI_TO_PCI_BRIDGE,
    INTEGRATED,
    PCI_BRIDGE,
    PCI_DEVICE,
    PCI_EXPANDER_BUS,
    PCIE_DEVICE,
    PCIE_EXPANDER_BUS,
    PCIE_ROOT_PORT,
    PCIE_SWITCH_DOWNSTREAM_PORT,
    PCIE_SWITCH_UPSTREAM_PORT,
    PCIE_TO_PCI_BRIDGE,
    Work,
)

# Not typing.TYPE_CHECKING: importing typing costs the allocate command ~0.2x a bare start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable

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
MEMORY_PCI = {"virtio-pmem", "virtio-mem"}


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


class DeviceList:
    """The domain's devices as libvirt 9.0 holds them when addresses are assigned:
    post-parse has added the implicit devices and defaulted the models, disks and
    controllers are in libvirt's order, and each device has its connect flags."""

    def __init__(self, domain: DomainDevices, conventional_hosts: frozenset[PciAddress]) -> None:
        self.machine = domain.machine
        self.source = domain.source
        # host hostdev addresses that are conventional PCI (libvirt reads it from sysfs)
        self.conventional_hosts = conventional_hosts
        q35 = self.machine is MachineType.Q35
        auto = AUTOASSIGN
        # qemuDomainFillDevicePCIConnectFlagsIterInit(): QEMU 7.2 has virtio
        # transitional/non-transitional models, so virtio devices are PCIe on q35.
        self.pcie_flags = (PCIE_DEVICE if q35 else PCI_DEVICE) | auto
        self.pci_flags = PCI_DEVICE | auto
        self.virtio_flags = self.pcie_flags
        self.works: list[Work] = []
        self.controllers: list[Work] = []  # def->controllers order
        self._disk_keys: dict[int, int | None] = {}
        self._by_kind: dict[DeviceKind, list[Work]] | None = None
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

    def _insert_parsed_controller(self, work: Work) -> None:
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

    def _insert_parsed_disk(self, disks: list[Work], work: Work) -> None:
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

    def add(self, dev: Device) -> Work:
        work = Work(dev, self._normalized_model(dev))
        self.works.append(work)
        self._by_kind = None
        if dev.kind is DeviceKind.CONTROLLER:
            self.controllers.append(work)
        return work

    def find_controller(self, ctype: str, index: int) -> Work | None:
        for c in self.controllers:
            if c.dev.type == ctype and c.index == index:
                return c
        return None

    def _maybe_add_controller(self, ctype: str, index: int, model: str = "") -> None:
        """virDomainDefMaybeAddController(): appended, not sorted."""
        if self.find_controller(ctype, index) is None:
            self.add(Device(DeviceKind.CONTROLLER, model=model, type=ctype, index=index))

    def _post_parse(self, domain: DomainDevices) -> None:
        q35 = self.machine is MachineType.Q35
        disks: list[Work] = []
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
            work = Work(dev, self._normalized_model(dev))
            if dev.kind is DeviceKind.DISK:
                self._insert_parsed_disk(disks, work)
                continue
            self.works.append(work)
            if dev.kind is DeviceKind.CONTROLLER:
                self._insert_parsed_controller(work)
        # disks first: the order of self.works within one kind is libvirt's def order
        self.works[:0] = disks
        # qemuDomainDefAddDefaultDevices(): USB, (q35) SATA, PCI root, memballoon
        if self.find_controller("usb", 0) is None:
            self.add(
                Device(
                    DeviceKind.CONTROLLER,
                    model="qemu-xhci" if q35 else "piix3-uhci",
                    type="usb",
                    index=0,
                )
            )
        if q35:
            self._maybe_add_controller("sata", 0)
        root = self.find_controller("pci", 0)
        root_model = "pcie-root" if q35 else "pci-root"
        if root is None:
            self.add(Device(DeviceKind.CONTROLLER, model=root_model, type="pci", index=0))
        elif root.model != root_model:
            raise UnsupportedDomainError(
                f"the PCI controller with index 0 must be {root_model} on this machine",
                self.source,
                root.dev.line,
            )
        if not any(w.dev.kind is DeviceKind.MEMBALLOON for w in self.works):
            self.add(Device(DeviceKind.MEMBALLOON, model="virtio"))
        # virDomainDefAddImplicitVideo(): graphics without video get the default video
        if any(w.dev.kind is DeviceKind.GRAPHICS for w in self.works) and not any(
            w.dev.kind is DeviceKind.VIDEO for w in self.works
        ):
            self.add(Device(DeviceKind.VIDEO, model="cirrus"))
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
            w.flags = self.connect_flags(w)
        self._by_kind = None

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

    def _disk_controller(self, dev: Device) -> int:
        if dev.attach_controller is not None:
            return dev.attach_controller
        units = _DISK_UNITS.get(dev.model)
        index = disk_name_index(dev.disk_target or "")
        if units is None or index is None:
            return 0
        return index // units

    # qemuDomainDeviceCalculatePCIConnectFlags()
    def connect_flags(self, w: Work) -> int:
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
                if dev.host_address in self.conventional_hosts:
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
            return virtio if model in MEMORY_PCI else 0
        # <panic>: libvirt 9.0 has no PCI panic model (pvpanic-pci came in 9.1);
        # <crypto>: libvirt 9.0's parser does not know the element and drops it.
        return 0

    def of(self, kind: DeviceKind) -> Iterable[Work]:
        if self._by_kind is None:
            by_kind: dict[DeviceKind, list[Work]] = {}
            for w in self.works:
                by_kind.setdefault(w.dev.kind, []).append(w)
            self._by_kind = by_kind
        return self._by_kind.get(kind, ())

    def iterate_order(self) -> list[Work]:
        """virDomainDeviceInfoIterate() order (used when collecting given addresses)."""
        order = (
            DeviceKind.DISK,
            DeviceKind.INTERFACE,
            DeviceKind.SOUND,
            DeviceKind.HOSTDEV,
            DeviceKind.VIDEO,
        )
        out: list[Work] = []
        hostdev_nets = [
            w for w in self.works if w.dev.kind is DeviceKind.HOSTDEV and w.dev.model == "interface"
        ]
        for kind in order:
            if kind is DeviceKind.HOSTDEV:
                out.extend(hostdev_nets)
                out.extend(w for w in self.of(kind) if w.dev.model != "interface")
            else:
                out.extend(self.of(kind))
        out.extend(self.controllers)
        seen = {id(w) for w in out}
        out.extend(w for w in self.works if id(w) not in seen)
        return out

    def max_pci_index(self) -> int:
        return max((c.index or 0 for c in self.controllers if c.dev.type == "pci"), default=-1)
