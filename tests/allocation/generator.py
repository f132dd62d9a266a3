"""A seeded generator of varied domains for the differential test against libvirtd.

Each domain mixes what real guests have, on q35 and pc: NICs of every model libvirt
9.0 knows (and some it keeps only as a string, which it treats as PCI Express),
virtio/SATA/SCSI/IDE disks, every USB/SCSI/virtio-serial controller model, every
video, sound, watchdog, rng, balloon, input, filesystem, shmem, vsock, virtio-iommu
and virtio-mem/pmem model, PCI serial ports, PCI and vhost-scsi host devices
(managed or not, some multifunction), and user-given topologies: root ports,
pci-bridge chains, PCIe switches, dmi-to-pci-bridge, pcie-to-pci-bridge and
expander buses on guest NUMA nodes. Addresses are sometimes fixed by the user (on
bus 0 or on a user-given controller, some multifunction) and sometimes empty
`<address type='pci'/>`. A few domains are ones libvirt refuses (an ich7 sound
device, a usb-net NIC, a virtio-iommu without ACPI, a pcie-to-pci-bridge with no
root port to plug into): the test checks we refuse those too.

Host device addresses are on buses this machine does not have: libvirt then assumes
PCIe, as it would for a device it cannot read, and `virsh define` accepts them
(checked: managed='yes' or 'no' both define fine; only start needs the device).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Models libvirt 9.0 has in its enum, and strings it keeps as "unknown" (PCIe).
NIC_MODELS = (
    "virtio",
    "virtio-transitional",
    "virtio-non-transitional",
    "e1000",
    "e1000e",
    "rtl8139",
    "vmxnet3",
    "ne2k_pci",
    "pcnet",
    "i82559er",
    "igb",
    "82540EM",
    "Am79C973",
    "E1000",
    None,
)
SOUND_MODELS = ("ich6", "ich9", "ac97", "es1370", "sb16", "pcspk", "usb")
VIDEO_MODELS = ("cirrus", "qxl", "virtio", "vga", "bochs", "vmvga", "ramfb", "none")
USB_MODELS_Q35 = ("qemu-xhci", "nec-xhci", "ehci", "pci-ohci", "piix4-uhci", "vt82c686b-uhci")
USB_MODELS_PC = (*USB_MODELS_Q35, "piix3-uhci")
SCSI_MODELS = (
    "virtio-scsi",
    "virtio-transitional",
    "virtio-non-transitional",
    "lsilogic",
    "lsisas1068",
    "lsisas1078",
    "vmpvscsi",
    "am53c974",
    "dc390",
)
VIRTIO_MODELS = ("virtio", "virtio-transitional", "virtio-non-transitional")


@dataclass(frozen=True)
class GeneratedDomain:
    name: str
    machine: str
    xml: str


def _disk(dev: str, bus: str, extra: str = "") -> str:
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='/var/lib/libvirt/images/{dev}.img'/><target dev='{dev}' bus='{bus}'/>{extra}</disk>"
    )


def _addr(bus: int, slot: int, function: int = 0, multi: str = "") -> str:
    m = f" multifunction='{multi}'" if multi else ""
    return f"<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' function='{function:#x}'{m}/>"


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.q35 = self.rng.random() < 0.6
        rng = self.rng
        self.machine = (
            rng.choice(["q35", "pc-q35-7.2"]) if self.q35 else rng.choice(["pc", "pc-i440fx-7.2"])
        )
        self.controllers: list[str] = []
        self.devices: list[str] = []
        self.head: list[str] = []
        self.acpi = rng.random() < 0.7
        self.numa = rng.random() < 0.25
        # slots on bus 0 we may hand out as fixed addresses (never the chipset's)
        self.free_bus0 = [
            s for s in range(3, 0x1F) if not (self.q35 and s in (0x1A, 0x1B, 0x1D, 0x1E))
        ]
        rng.shuffle(self.free_bus0)
        # (bus, slot) of user-given controllers that take endpoints, for fixed addresses
        self.free_other: list[tuple[int, int]] = []
        self.next_index = 1

    def index(self) -> int:
        idx = self.next_index
        self.next_index += 1
        return idx

    def fixed(self, chance: float = 0.12) -> str:
        """A user-fixed address now and then, an empty <address type='pci'/> sometimes."""
        roll = self.rng.random()
        if roll < chance:
            if self.free_other and self.rng.random() < 0.5:
                bus, slot = self.free_other.pop(self.rng.randrange(len(self.free_other)))
                return _addr(bus, slot)
            if self.free_bus0:
                return _addr(0, self.free_bus0.pop())
        if roll > 0.95:
            return "<address type='pci'/>"
        return ""

    def controller(self, index: int, model: str, inner: str = "") -> None:
        self.controllers.append(
            f"<controller type='pci' index='{index}' model='{model}'>{inner}</controller>"
        )

    # -- topologies -------------------------------------------------------------------

    def topology(self) -> None:
        rng = self.rng
        if rng.random() > 0.45:
            return
        for _ in range(rng.randint(1, 3)):
            choice = rng.random()
            if self.q35:
                self._q35_piece(choice)
            else:
                self._pc_piece(choice)

    def _q35_piece(self, choice: float) -> None:
        rng = self.rng
        if choice < 0.35:
            for _ in range(rng.randint(1, 3)):
                idx = self.index()
                self.controller(idx, "pcie-root-port")
                if rng.random() < 0.3:
                    self.free_other.append((idx, 0))
        elif choice < 0.5:
            # a PCIe switch: root port, upstream port, downstream ports
            port = self.index()
            self.controller(port, "pcie-root-port")
            up = self.index()
            self.controller(up, "pcie-switch-upstream-port")
            for _ in range(rng.randint(1, 3)):
                down = self.index()
                self.controller(down, "pcie-switch-downstream-port")
                if rng.random() < 0.3:
                    self.free_other.append((down, 0))
        elif choice < 0.65:
            # dmi-to-pci-bridge with a pci-bridge (chain) behind it
            self.controller(self.index(), "dmi-to-pci-bridge")
            for _ in range(rng.randint(1, 2)):
                bridge = self.index()
                self.controller(bridge, "pci-bridge")
                self.free_other += [(bridge, s) for s in rng.sample(range(1, 32), 2)]
        elif choice < 0.8:
            if rng.random() < 0.85:
                self.controller(self.index(), "pcie-root-port")
            # without a root port before it libvirt refuses the bridge (flags 2000)
            bridge = self.index()
            self.controller(bridge, "pcie-to-pci-bridge")
            self.free_other += [(bridge, s) for s in rng.sample(range(1, 32), 2)]
        else:
            node = f"<target busNr='{rng.choice([200, 250, 180])}'><node>{rng.randint(0, 1)}</node></target>"
            if not self.numa:
                node = ""
            self.controller(self.index(), "pcie-expander-bus", node)
            for _ in range(rng.randint(1, 2)):
                self.controller(self.index(), "pcie-root-port")

    def _pc_piece(self, choice: float) -> None:
        rng = self.rng
        if choice < 0.6:
            # a chain of pci-bridges
            for _ in range(rng.randint(1, 3)):
                bridge = self.index()
                self.controller(bridge, "pci-bridge")
                if rng.random() < 0.5:
                    self.free_other += [(bridge, s) for s in rng.sample(range(1, 32), 2)]
        else:
            node = f"<target busNr='{rng.choice([200, 250])}'><node>{rng.randint(0, 1)}</node></target>"
            if not self.numa:
                node = ""
            self.controller(self.index(), "pci-expander-bus", node)
            if rng.random() < 0.6:
                self.controller(self.index(), "pci-bridge")

    # -- devices ----------------------------------------------------------------------

    def devices_all(self) -> None:
        rng = self.rng
        for _ in range(rng.choice([0, 1, 1, 2, 3, 4])):
            model = rng.choice(NIC_MODELS)
            m = f"<model type='{model}'/>" if model else ""
            self.devices.append(f"<interface type='user'>{m}{self.fixed()}</interface>")
        if rng.random() < 0.02:
            self.devices.append("<interface type='user'><model type='usb-net'/></interface>")
        if rng.random() < 0.03:
            self.devices.append("<interface type='user'><model type='spapr-vlan'/></interface>")
        self._disks()
        self._controllers()
        self._video()
        if rng.random() < 0.3:
            model = rng.choice(SOUND_MODELS)
            where = self.fixed() if model not in ("sb16", "pcspk", "usb") else ""
            self.devices.append(f"<sound model='{model}'>{where}</sound>")
        if rng.random() < 0.02:
            self.devices.append("<sound model='ich7'/>")  # libvirt 9.0 refuses it
        if rng.random() < 0.25:
            model = rng.choice(["i6300esb", "i6300esb", "ib700"])
            where = self.fixed() if model == "i6300esb" else ""
            self.devices.append(f"<watchdog model='{model}' action='reset'>{where}</watchdog>")
        for _ in range(rng.choice([0, 0, 1, 2])):
            self.devices.append(
                f"<rng model='{rng.choice(VIRTIO_MODELS)}'><backend model='random'>/dev/urandom</backend>{self.fixed()}</rng>"
            )
        balloon = rng.random()
        if balloon < 0.2:
            self.devices.append("<memballoon model='none'/>")
        elif balloon < 0.5:
            self.devices.append(
                f"<memballoon model='{rng.choice(VIRTIO_MODELS)}'>{self.fixed()}</memballoon>"
            )
        for kind in ("tablet", "keyboard", "mouse"):
            if rng.random() < 0.12:
                self.devices.append(f"<input type='{kind}' bus='virtio'>{self.fixed()}</input>")
        if rng.random() < 0.15:
            model = rng.choice(VIRTIO_MODELS)
            self.devices.append(
                f"<filesystem type='mount' accessmode='mapped' model='{model}'><source dir='/tmp'/>"
                f"<target dir='share{rng.randint(0, 99)}'/>{self.fixed()}</filesystem>"
            )
        if rng.random() < 0.12:
            self.devices.append(
                f"<shmem name='shm{rng.randint(0, 9)}'><model type='ivshmem-plain'/>"
                f"<size unit='M'>4</size>{self.fixed()}</shmem>"
            )
        if rng.random() < 0.15:
            model = rng.choice(["virtio", "virtio-transitional", "virtio-non-transitional"])
            self.devices.append(f"<vsock model='{model}'><cid auto='yes'/>{self.fixed()}</vsock>")
        if rng.random() < 0.12:
            serial = f"<serial type='pty'><target type='pci-serial'/>{self.fixed(0.3)}</serial>"
            self.devices.append(serial)
            if rng.random() < 0.5 and "<address type='pci' domain" in serial:
                # the console that repeats serial 0, as libvirt writes it back
                address = serial[
                    serial.index("<address") : serial.index("/>", serial.index("<address")) + 2
                ]
                self.devices.append(
                    f"<console type='pty'><target type='serial'/>{address}</console>"
                )
        if self.q35 and rng.random() < 0.15:
            self.acpi = self.acpi or rng.random() < 0.8  # without ACPI libvirt refuses it
            self.devices.append(f"<iommu model='virtio'>{self.fixed(0.05)}</iommu>")
        elif not self.q35 and rng.random() < 0.01:
            self.devices.append("<iommu model='virtio'/>")  # refused: q35 only
        if self.numa and rng.random() < 0.4:
            for _ in range(rng.randint(1, 2)):
                if rng.random() < 0.5:
                    self.devices.append(
                        "<memory model='virtio-mem'><target><size unit='KiB'>131072</size>"
                        f"<node>{rng.randint(0, 1)}</node><block unit='KiB'>2048</block>"
                        f"<requested unit='KiB'>0</requested></target>{self.fixed()}</memory>"
                    )
                else:
                    self.devices.append(
                        "<memory model='virtio-pmem' access='shared'><source><path>/tmp/pmem</path>"
                        f"</source><target><size unit='KiB'>131072</size></target>{self.fixed()}</memory>"
                    )
        self._hostdevs()
        if rng.random() < 0.06:
            self._refused()

    def _refused(self) -> None:
        """One thing libvirt 9.0 refuses at define (the test wants its reason from us)."""
        rng = self.rng
        choice = rng.randrange(7)
        if choice == 0:
            # a controller with nothing to plug into: dmi-to-pci-bridge on pc, a
            # downstream port without an upstream port
            model = "dmi-to-pci-bridge" if not self.q35 else "pcie-switch-downstream-port"
            self.controller(self.index(), model)
        elif choice == 1:
            # expander buses belong to one chipset
            model = "pci-expander-bus" if self.q35 else "pcie-expander-bus"
            self.controller(self.index(), model)
        elif choice == 2:
            self.controllers = [c for c in self.controllers if "type='usb'" not in c]
            self.controllers.append("<controller type='usb' index='0' model='none'/>")
            self.devices.append(
                rng.choice(
                    [
                        "<input type='tablet' bus='usb'/>",
                        "<hub type='usb'/>",
                        "<redirdev bus='usb' type='spicevmc'/>",
                        "<sound model='usb'/>",
                    ]
                )
            )
        elif choice == 3:
            self.devices.append(
                "<filesystem type='mount'><driver type='loop'/><source dir='/tmp'/>"
                "<target dir='loop'/></filesystem>"
            )
        elif choice == 4:
            self.devices.append("<memballoon model='xen'/>")
        elif choice == 5:
            self.devices.append(
                _disk("vdz", "virtio", "<address type='drive' controller='0' bus='0' unit='0'/>")
            )
        else:
            # a secondary video device QEMU cannot have
            self.devices.append("<graphics type='vnc' port='-1'/>")
            self.devices.append("<video><model type='qxl' primary='yes'/></video>")
            self.devices.append("<video><model type='vga'/></video>")

    def _disks(self) -> None:
        rng = self.rng
        disk_buses = ["virtio", "virtio", "sata", "scsi"] + ([] if self.q35 else ["ide"])
        letters = {
            "virtio": iter("abcdefgh"),
            "sata": iter("abcdef"),
            "scsi": iter("ghijklmnopqr"),
            "ide": iter("abcd"),
        }
        for _ in range(rng.choice([0, 1, 2, 3, 5])):
            bus = rng.choice(disk_buses)
            prefix_dev = {"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd"}[bus]
            letter = next(letters[bus], None)
            if letter is None:
                continue
            self.devices.append(
                _disk(prefix_dev + letter, bus, self.fixed() if bus == "virtio" else "")
            )

    def _controllers(self) -> None:
        rng = self.rng
        if rng.random() < 0.35:
            for index in range(rng.choice([1, 1, 2])):
                self.controllers.append(
                    f"<controller type='scsi' index='{index}' model='{rng.choice(SCSI_MODELS)}'>{self.fixed()}</controller>"
                )
        usb = rng.random()
        self.has_usb = usb >= 0.15
        if usb < 0.15:
            self.controllers.append("<controller type='usb' index='0' model='none'/>")
        elif usb < 0.3:
            self.controllers.append(
                "<controller type='usb' index='0' model='ich9-ehci1'/>"
                "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>"
                "<controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/></controller>"
                "<controller type='usb' index='0' model='ich9-uhci3'><master startport='4'/></controller>"
            )
        elif usb < 0.5:
            model = rng.choice(USB_MODELS_Q35 if self.q35 else USB_MODELS_PC)
            self.controllers.append(
                f"<controller type='usb' index='0' model='{model}'>{self.fixed()}</controller>"
            )
        if rng.random() < 0.3:
            self.devices.append(
                "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
            )
            if rng.random() < 0.5:
                model = rng.choice(("", *VIRTIO_MODELS))
                m = f" model='{model}'" if model else ""
                self.controllers.append(
                    f"<controller type='virtio-serial' index='0'{m}>{self.fixed()}</controller>"
                )

    def _video(self) -> None:
        rng = self.rng
        video = rng.random()
        if video < 0.6:
            model = rng.choice(VIDEO_MODELS)
            self.devices.append("<graphics type='vnc' port='-1'/>")
            # libvirt drops the address of a 'none' video, so give it none
            where = self.fixed(0.3) if model not in ("none", "ramfb") else ""
            self.devices.append(f"<video><model type='{model}'/>{where}</video>")
            if model not in ("none", "ramfb") and rng.random() < 0.15:
                # secondary video devices must be qxl on QEMU
                self.devices.append(f"<video><model type='qxl'/>{self.fixed()}</video>")
        elif video < 0.75:
            self.devices.append("<graphics type='vnc' port='-1'/>")
        if rng.random() < 0.2 and self.has_usb:  # libvirt refuses USB input without USB
            self.devices.append("<input type='keyboard' bus='usb'/>")

    def _hostdevs(self) -> None:
        rng = self.rng
        host_bus = 0x41
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            functions = 2 if rng.random() < 0.3 else 1
            # the functions of a host multifunction device, given one guest slot by the user
            slot = (
                self.free_bus0.pop()
                if functions > 1 and rng.random() < 0.5 and self.free_bus0
                else None
            )
            for fn in range(functions):
                managed = rng.choice(["yes", "no"])
                if slot is not None:
                    where = _addr(0, slot, fn, "on" if fn == 0 else "")
                elif functions == 1:
                    where = self.fixed()
                else:
                    where = ""
                self.devices.append(
                    f"<hostdev mode='subsystem' type='pci' managed='{managed}'><source>"
                    f"<address domain='0x0000' bus='{host_bus:#04x}' slot='0x00' function='{fn:#x}'/></source>"
                    f"{where}</hostdev>"
                )
            host_bus += 1
        if rng.random() < 0.05:
            self.devices.append(
                "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>"
                f"<address uuid='c2177883-f1bb-47f0-914d-32a22e3a88{rng.randrange(256):02x}'/>"
                f"</source>{self.fixed()}</hostdev>"
            )
        if rng.random() < 0.08:
            model = rng.choice(["", " model='virtio-transitional'"])
            self.devices.append(
                f"<hostdev mode='subsystem' type='scsi_host'{model}>"
                f"<source protocol='vhost' wwpn='naa.50014057{rng.randrange(16**8):08x}'/>{self.fixed()}</hostdev>"
            )

    def head_xml(self) -> str:
        parts = ["<vcpu>2</vcpu>"]
        if self.numa:
            parts.append("<maxMemory slots='8' unit='KiB'>4194304</maxMemory>")
        parts.append(f"<os><type arch='x86_64' machine='{self.machine}'>hvm</type></os>")
        if self.acpi:
            parts.append("<features><acpi/></features>")
        if self.numa:
            parts.append(
                "<cpu><numa><cell id='0' cpus='0' memory='262144' unit='KiB'/>"
                "<cell id='1' cpus='1' memory='262144' unit='KiB'/></numa></cpu>"
            )
        return "\n  ".join(parts)


def generate(seed: int, prefix: str = "alloc-diff-") -> GeneratedDomain:
    b = _Builder(seed)
    b.topology()
    b.devices_all()
    b.rng.shuffle(b.devices)
    body = "\n    ".join(b.controllers + b.devices)
    name = f"{prefix}{seed}"
    memory = "524288" if b.numa else "131072"
    xml = f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='KiB'>{memory}</memory>
  {b.head_xml()}
  <devices>
    {body}
  </devices>
</domain>
"""
    return GeneratedDomain(name, b.machine, xml)
