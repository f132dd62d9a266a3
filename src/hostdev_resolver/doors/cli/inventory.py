"""`hostdev-resolver inventory`: the devices a host has (PCI, USB, mdev parents, SCSI),
and a line when vfio cannot work there (IOMMU off, interrupt remapping off)."""

from __future__ import annotations

import os
from operator import attrgetter

from .common import device_names, open_host, open_scsi

# Not typing.TYPE_CHECKING: see main.py.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ...host.sysfs import PciRow
    from ...model.pciaddress import PciAddress

    Subparsers = argparse._SubParsersAction[Any]


def _group_order(row: PciRow) -> tuple[bool, int]:
    return (row[0] is None, row[0] or 0)


def _iommu_off(inventory: object, args: argparse.Namespace) -> str | None:
    """One line when the host's IOMMU is off (only a sysfs view can tell: the kernel
    lists /sys/kernel/iommu_groups only with an IOMMU enabled)."""
    from ...host.sysfs import SysfsInventory

    if not isinstance(inventory, SysfsInventory):
        return None
    why = inventory.pci_facts().iommu_off()
    if why is None:
        return None
    return (
        f"IOMMU: off ({why}): no PCI device can be given to a guest; "
        "enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on"
    )


def _nothing_scsi(inventory: object) -> bool:
    """True when a sysfs host has nothing the text's SCSI section shows: no SCSI device,
    no FC port or target, no device-mapper device. Then the SCSI reader is not even
    imported (it and its values cost ~1.5 ms of every `inventory` on a host without
    SCSI); read, such a host gives no line."""
    from ...host.sysfs import SysfsInventory

    if not isinstance(inventory, SysfsInventory):
        return False
    r = inventory.reader
    if any(r.has_entries(r.path("class", c)) for c in ("scsi_device", "fc_host", "fc_transport")):
        return False
    return not any(name.startswith("dm-") for name in r.listdir(r.path("block")))


def _proc_root(args: argparse.Namespace) -> str:
    """/proc of the host being described: the live one, or for a captured tree given as
    --sysfs ROOT a `proc` directory beside it (ROOT/../proc), as a copy of / has it."""
    if not args.sysfs:
        return "/proc"
    return os.path.join(os.path.dirname(os.path.abspath(args.sysfs)), "proc")


def _interrupt_remapping_off(inventory: object, args: argparse.Namespace) -> str | None:
    """One line when the IOMMU is on but interrupt remapping is not.

    vfio_iommu_type1 then refuses to assign devices unless its allow_unsafe_interrupts
    parameter is set (drivers/vfio/vfio_iommu_type1.c): a guest could forge MSIs to the
    host. The kernel names remapped interrupt domains IR-… in /proc/interrupts
    (IR-PCI-MSI…, IR-IO-APIC on x86, Intel and AMD alike); with remapping off none is
    IR-. Said only when /proc/interrupts is there to tell."""
    from ...host.sysfs import SysfsInventory, read_attribute

    if not isinstance(inventory, SysfsInventory):
        return None
    proc = _proc_root(args)
    try:
        fd = os.open(proc, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # /proc/interrupts grows with CPUs x interrupts: ~1 MiB on a 512-CPU host.
        data = read_attribute(fd, "interrupts", proc, 4 * 1024 * 1024)
    finally:
        os.close(fd)
    if not data or b" IR-" in data:
        return None
    unsafe = inventory.reader.text(
        inventory.reader.path("module", "vfio_iommu_type1", "parameters", "allow_unsafe_interrupts")
    )
    if unsafe == "Y":
        return (
            f"interrupt remapping: off (no IR- interrupt domains in {proc}/interrupts), and "
            "vfio_iommu_type1 allow_unsafe_interrupts=Y: a guest can forge interrupts to the "
            "host; enable interrupt remapping in the firmware and do not boot with intremap=off"
        )
    return (
        f"interrupt remapping: off (no IR- interrupt domains in {proc}/interrupts): vfio "
        "refuses to assign devices; enable it in the firmware and do not boot with "
        "intremap=off (or, unsafely, set vfio_iommu_type1 allow_unsafe_interrupts=1)"
    )


def cmd_inventory(args: argparse.Namespace) -> int:
    inventory, node = open_host(args)
    if args.format == "json":
        from ...host.snapshot import inventory_to_json

        data = inventory_to_json(inventory, node)
        scsi = open_scsi(args, inventory)
        if scsi is not None:
            from ...model.scsi import scsi_to_json

            data["scsi"] = scsi_to_json(scsi)
        from .sriov import mdev_inventory_json

        mdev = mdev_inventory_json(inventory)
        if mdev:
            data["mdev"] = mdev
        import json

        print(json.dumps(data, indent=2))
        return 0
    from ...host.sysfs import SysfsInventory, pci_row, pci_table

    parents: list[PciAddress] | None = None
    if isinstance(inventory, SysfsInventory):
        # Rows straight from sysfs, in address order: no records for thousands of functions.
        rows, parents = pci_table(inventory)
    else:
        rows = [pci_row(dev) for dev in sorted(inventory.pci_devices(), key=attrgetter("address"))]
    # By group, devices without one last; by address within a group (a stable sort).
    rows.sort(key=_group_order)
    names = device_names()
    print(f"node {node}: {len(rows)} PCI functions, {len(inventory.usb_devices())} USB devices")
    iommu_off = _iommu_off(inventory, args)
    if rows and iommu_off:
        print(iommu_off)
    elif rows and (remapping := _interrupt_remapping_off(inventory, args)):
        print(remapping)
    print()
    table = []
    named = False
    # Without a pci.ids there is no name to look up (IdsFile.name would say None).
    pci_name = names.pci if names.pci_ids.path is not None else None
    for group, address, klass, ids, subsystem, numa, driver, serial, slot, pf, vfs, v, d in rows:
        extra = ""
        if serial or slot or pf or vfs:
            extra = " ".join(
                x
                for x in (
                    serial or "",
                    f"slot {slot}" if slot else "",
                    f"VF of {pf}" if pf else "",
                    f"{vfs} VFs" if vfs else "",
                )
                if x
            )
        name = (pci_name(v, d) or "") if pci_name is not None else ""
        named = named or bool(name)
        table.append(
            (
                f"{'-' if group is None else group:>5}  {address:<14} [{klass}] [{ids}] "
                f"{subsystem or '-':<10} {numa:>4}  {driver or '-':<14} ",
                extra,
                name,
            )
        )
    header = f"{'GROUP':>5}  {'ADDRESS':<14} {'CLASS':<6} {'ID':<11} {'SUBSYSTEM':<10} {'NUMA':>4}  {'DRIVER':<14} SERIAL/SLOT"
    # A NAME column only where the host has pci.ids: without it there is nothing to show.
    if named:
        width = max(len("SERIAL/SLOT"), *(len(extra) for _, extra, _ in table))
        header = f"{header:<{len(header) - len('SERIAL/SLOT') + width}}  NAME"
        lines = [f"{row}{extra:<{width}}  {name}".rstrip() for row, extra, name in table]
    else:
        lines = [f"{row}{extra}".rstrip() for row, extra, _ in table]
    # One write for the table, not one per function (stdout may be unbuffered).
    print("\n".join([header, *lines]))
    usb = inventory.usb_devices()
    if usb:
        width = max(6, *(len(u.identity.serial or "-") for u in usb))
        print()
        print(
            f"{'BUS':>3} {'DEV':>3}  {'PORT':<10} {'ID':<10} {'DRIVER':<10} {'SERIAL':<{width}}  NAME"
        )
        for u in sorted(usb, key=lambda d: (d.bus, d.device)):
            name = " ".join(x for x in (u.manufacturer, u.product_name) if x)
            name = name or names.usb(u.identity.vendor, u.identity.product) or ""
            print(
                f"{u.bus:>3} {u.device:>3}  {u.port_path:<10} {u.identity.ids:<10} {u.driver or '-':<10} {u.identity.serial or '-':<{width}}  {name}".rstrip()
            )
    mdev_lines: list[str] = []
    if parents != []:  # none found in the table's pass: nothing to import the lines for
        from .sriov import mdev_inventory_lines

        mdev_lines = mdev_inventory_lines(inventory, parents=parents)
    if mdev_lines:
        print()
        print("\n".join(mdev_lines))
    scsi = None if _nothing_scsi(inventory) else open_scsi(args, inventory)
    if scsi is not None:
        from ...model.scsi import describe_scsi

        lines = describe_scsi(scsi)
        if lines:
            print()
            print("\n".join(lines))
    return 0


def register(sub: Subparsers, name: str, help: str, common: argparse.ArgumentParser) -> None:
    """Add `inventory` (doors.cli.main.COMMANDS)."""
    p = sub.add_parser(name, parents=[common], help=help)
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: a host snapshot for --host",
    )
    p.set_defaults(handler=cmd_inventory)
