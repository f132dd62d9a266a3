"""The refusals of libvirt 9.0's define-time validation that domains with PCI devices
run into (qemuValidateDomainDeviceDef*, virDomainDefValidateInternal()). libvirt checks
them after address assignment (post-parse), so a domain it cannot address is refused
for that first: `validate` runs last.
"""

from __future__ import annotations

from .devicelist import DeviceList
from .model import Device, DeviceKind, LibvirtRefusalError, MachineType
from .pcibus import Work


def validate(devices: DeviceList, acpi: bool) -> None:
    """The first refusal, in libvirt's order: the domain-wide ones, then each device in
    virDomainDeviceInfoIterate() order."""
    usb_off = any(c.dev.type == "usb" and c.model == "none" for c in devices.controllers)
    videos = list(devices.of(DeviceKind.VIDEO))
    primary = next((v for v in videos if v.dev.primary), videos[0] if videos else None)
    if len(videos) > 1 and any(v.model == "none" for v in videos):
        none = next(v for v in videos if v.model == "none")
        raise LibvirtRefusalError(
            f"{none.label}: libvirt 9.0 refuses the domain: a 'none' video type must be "
            "the only video device defined for the domain",
            devices.source,
            none.dev.line,
            "remove the other <video> devices or this one",
        )
    # USB inputs and hubs are refused while the implicit devices are added,
    # before the validation of single devices
    for w in devices.works if usb_off else ():
        dev = w.dev
        if dev.kind is DeviceKind.OTHER and dev.model == "hub":
            raise LibvirtRefusalError(
                f"{w.label}: libvirt 9.0 refuses the domain: Can't add USB hub: USB is "
                "disabled for this domain",
                devices.source,
                dev.line,
                "remove <controller type='usb' model='none'/> or the <hub>",
            )
        if dev.kind is DeviceKind.INPUT and dev.model == "usb":
            raise LibvirtRefusalError(
                f"{w.label}: libvirt 9.0 refuses the domain: Can't add USB input device. "
                "USB bus is disabled",
                devices.source,
                dev.line,
                "remove <controller type='usb' model='none'/> or use a ps2/virtio input",
            )
    # per device, in virDomainDeviceInfoIterate() order, as libvirt validates them
    for w in devices.iterate_order():
        dev = w.dev
        if dev.kind is DeviceKind.IOMMU:
            _validate_iommu(dev, devices.machine, acpi, devices.source)
        elif dev.kind is DeviceKind.VIDEO and w is not primary:
            # qemuValidateDomainDeviceDefVideo(): QEMU has no secondary VGA devices
            if w.model not in ("qxl", "virtio"):
                raise LibvirtRefusalError(
                    f"{w.label}: libvirt 9.0 refuses the domain: video type "
                    f"'{w.model}' is only valid as primary video device",
                    devices.source,
                    dev.line,
                    "make it the first <video> (or primary='yes'), or use qxl or virtio",
                )
        elif usb_off and _is_usb_device(w):
            # virDomainDefValidateInternal() -> virDomainDefCheckUSB...
            raise LibvirtRefusalError(
                f"{w.label}: libvirt 9.0 refuses the domain: USB is disabled for this "
                "domain, but USB devices are present in the domain XML",
                devices.source,
                dev.line,
                "remove <controller type='usb' model='none'/> or the USB device",
            )


def _validate_iommu(dev: Device, machine: MachineType, acpi: bool, source: str | None) -> None:
    """qemuValidateDomainDeviceDefIOMMU() for the x86 machines."""
    why = None
    if dev.model == "virtio" and machine is not MachineType.Q35:
        why = "IOMMU device: 'virtio' is only supported with Q35 and ARM Virt machines"
    elif dev.model == "virtio" and not acpi:
        why = "IOMMU device: 'virtio' requires ACPI"
    elif dev.model == "intel" and machine is not MachineType.Q35:
        why = "IOMMU device: 'intel' is only supported with Q35 machines"
    if why is not None:
        raise LibvirtRefusalError(
            f"libvirt 9.0 refuses the domain: {why}",
            source,
            dev.line,
            "use a q35 machine with <features><acpi/></features>, or remove the <iommu>",
        )


def _is_usb_device(w: Work) -> bool:
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
