"""A seeded generator of varied domains for the differential test against libvirtd.

Each domain mixes what real guests have: NICs of every PCI kind, virtio/SATA/
SCSI/IDE disks, USB/SCSI/virtio-serial controllers, video, sound, watchdog,
rng, balloon, virtio input, PCI host devices (some multifunction), fixed
addresses, and user-given root ports / bridges. Host device addresses are on
buses this machine does not have: libvirt then assumes PCIe, as it would for a
device it cannot read, and `virsh define` accepts them (checked: managed='yes'
or 'no' both define fine; only start needs the device).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


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


def generate(seed: int, prefix: str = "alloc-diff-") -> GeneratedDomain:
    rng = random.Random(seed)
    q35 = rng.random() < 0.6
    machine = rng.choice(["q35", "pc-q35-7.2"]) if q35 else rng.choice(["pc", "pc-i440fx-7.2"])
    devices: list[str] = []
    controllers: list[str] = []
    # slots on bus 0 we may hand out as fixed addresses (never the chipset's)
    free_slots = [s for s in range(3, 0x1F) if not (q35 and s in (0x1A, 0x1B, 0x1D, 0x1E))]
    rng.shuffle(free_slots)

    def fixed() -> str:
        if rng.random() < 0.12 and free_slots:
            return _addr(0, free_slots.pop())
        return ""

    # user-given PCI controllers
    next_index = 1
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 4)):
            model = "pcie-root-port" if q35 else "pci-bridge"
            if q35 and next_index > 1 and rng.random() < 0.15:
                model = "pcie-to-pci-bridge"
            index = next_index + (1 if rng.random() < 0.15 else 0)  # sometimes leave a gap
            next_index = index + 1
            controllers.append(f"<controller type='pci' index='{index}' model='{model}'/>")
    nic_models = ["virtio", "e1000", "e1000e", "rtl8139", "virtio-transitional", None]
    for _ in range(rng.choice([0, 1, 1, 2, 3, 4])):
        model = rng.choice(nic_models)
        m = f"<model type='{model}'/>" if model else ""
        devices.append(f"<interface type='user'>{m}{fixed()}</interface>")
    disk_buses = ["virtio", "virtio", "sata", "scsi"] + ([] if q35 else ["ide"])
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
        devices.append(_disk(prefix_dev + letter, bus, fixed() if bus == "virtio" else ""))
    if rng.random() < 0.35:
        model = rng.choice(["virtio-scsi", "lsilogic", "virtio-scsi"])
        controllers.append(
            f"<controller type='scsi' index='0' model='{model}'>{fixed()}</controller>"
        )
    usb = rng.random()
    if usb < 0.15:
        controllers.append("<controller type='usb' index='0' model='none'/>")
    elif usb < 0.3:
        controllers.append(
            "<controller type='usb' index='0' model='ich9-ehci1'/>"
            "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>"
            "<controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/></controller>"
            "<controller type='usb' index='0' model='ich9-uhci3'><master startport='4'/></controller>"
        )
    elif usb < 0.45:
        model = rng.choice(["qemu-xhci", "nec-xhci", "piix3-uhci" if not q35 else "qemu-xhci"])
        controllers.append(
            f"<controller type='usb' index='0' model='{model}'>{fixed()}</controller>"
        )
    if rng.random() < 0.3:
        devices.append(
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        )
        if rng.random() < 0.5:
            controllers.append(f"<controller type='virtio-serial' index='0'>{fixed()}</controller>")
    video = rng.random()
    if video < 0.6:
        model = rng.choice(["cirrus", "qxl", "virtio", "vga", "bochs", "none"])
        devices.append("<graphics type='vnc' port='-1'/>")
        # libvirt drops the address of a 'none' video, so give it none
        where = fixed() if model != "none" and rng.random() < 0.3 else ""
        devices.append(f"<video><model type='{model}'/>{where}</video>")
    elif video < 0.75:
        devices.append("<graphics type='vnc' port='-1'/>")
    if rng.random() < 0.3:
        devices.append(
            f"<sound model='{rng.choice(['ich6', 'ich9', 'ac97', 'es1370'])}'>{fixed()}</sound>"
        )
    if rng.random() < 0.25:
        devices.append(
            f"<watchdog model='{rng.choice(['i6300esb', 'i6300esb', 'ib700'])}' action='reset'/>"
        )
    if rng.random() < 0.35:
        devices.append(
            f"<rng model='{rng.choice(['virtio', 'virtio-transitional'])}'><backend model='random'>/dev/urandom</backend>{fixed()}</rng>"
        )
    balloon = rng.random()
    if balloon < 0.2:
        devices.append("<memballoon model='none'/>")
    elif balloon < 0.5:
        devices.append(f"<memballoon model='virtio'>{fixed()}</memballoon>")
    if rng.random() < 0.3:
        devices.append(f"<input type='tablet' bus='virtio'>{fixed()}</input>")
    if rng.random() < 0.2 and usb >= 0.15:  # libvirt refuses USB input without USB
        devices.append("<input type='keyboard' bus='usb'/>")
    host_bus = 0x41
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        functions = 2 if rng.random() < 0.3 else 1
        for fn in range(functions):
            managed = rng.choice(["yes", "no"])
            devices.append(
                f"<hostdev mode='subsystem' type='pci' managed='{managed}'><source>"
                f"<address domain='0x0000' bus='{host_bus:#04x}' slot='0x00' function='{fn:#x}'/></source>"
                f"{fixed() if functions == 1 else ''}</hostdev>"
            )
        host_bus += 1
    rng.shuffle(devices)
    body = "\n    ".join(controllers + devices)
    name = f"{prefix}{seed}"
    xml = f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='KiB'>131072</memory>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
  <devices>
    {body}
  </devices>
</domain>
"""
    return GeneratedDomain(name, machine, xml)
