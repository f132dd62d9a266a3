"""The `hostdev-resolver` command line (SPEC §5).

Only this layer (with the hook and the wrapper) turns errors into exit codes:
0 success, 1 refused, 2 malformed input or usage, 3 environment.
"""

from __future__ import annotations

import argparse
import os
import sys

from ... import __doc__ as _package_doc
from ... import __version__
from ...host.storebackend import edit_store, is_url
from ...model.errors import (
    HostAccessError,
    HostdevError,
    InputError,
    Location,
    RefusedError,
    UsageError,
)
from ...model.identity import UsbIdentity, parse_id16
from ...model.pciaddress import PciAddress
from ...model.records import fields, is_record
from ...xml.store import MdevMapping, PciEntry, UsbEntry, VfEntry
from ...xml.xmldoc import parse_file
from .common import (
    add_store_tls_options,
    open_host,
    open_scsi,
    open_store,
    store_for,
    store_path,
    warn,
    write_output,
)
from .common import host_sources as _sources

# Not typing.TYPE_CHECKING: every command pays for what this module imports, and
# typing alone is half a bare interpreter's start-up. Modules only some commands need
# (json, tempfile, the allocator, the store writer) are imported where they are used.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ...host.devicenames import DeviceNames
    from ...host.variants import VariantDrivers
    from ...model.inventory import HostInventory, PciDevice

    Handler = Callable[[argparse.Namespace], int]


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size finds it: $COLUMNS, else stdout's
    terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized without importing shutil: argparse makes one for
    every add_argument (to check its metavar), and shutil (with bz2, lzma and fnmatch)
    costs every command about a tenth of a bare interpreter start."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (SPEC §5)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        # main() prefixes "hostdev-resolver: "; name only the subcommand, if any.
        sub = self.prog.partition(" ")[2]
        raise UsageError(f"{sub}: {message}" if sub else message, fix=f"see '{self.prog} --help'")


def _common(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand accepts after its name (`map add … --store S --sysfs R`)."""
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--store",
        metavar="PATH",
        help="mapping store: a file, or etcd://HOST:PORT[,...]/PREFIX (default $HOSTDEV_RESOLVER_STORE or /etc/hostdev-resolver/mappings.xml)",
    )
    add_store_tls_options(group)
    group.add_argument("--node", metavar="NAME", help="node name (default: this host's name)")
    group.add_argument(
        "--dev-root",
        metavar="DIR",
        help="where /dev/disk/by-id lives, for LUNs (default /dev on the live host, none with --sysfs)",
    )
    src = group.add_mutually_exclusive_group()
    src.add_argument(
        "--sysfs", metavar="ROOT", help="read devices from a directory laid out like /sys"
    )
    src.add_argument(
        "--host",
        metavar="SNAPSHOT",
        action="append",
        help="read devices from 'inventory --format json' output (repeatable where a command looks at several nodes)",
    )
    src.add_argument("--udev", action="store_true", help="read the live host through udev")
    src.add_argument(
        "--connect",
        metavar="[NODE=]URI",
        action="append",
        help="read node devices through a libvirt connection (repeatable where a command looks at several nodes)",
    )


# -- inventory -----------------------------------------------------------------


def _group_of(dev: PciDevice) -> str:
    return "-" if dev.iommu_group is None else str(dev.iommu_group)


def _device_names() -> DeviceNames:
    from ...host.devicenames import DeviceNames

    return DeviceNames.from_environment()


def _iommu_off(inventory: object, args: argparse.Namespace) -> str | None:
    """One line when the host's IOMMU is off (only a sysfs view can tell: the kernel
    lists /sys/kernel/iommu_groups only with an IOMMU enabled)."""
    from ...host.sysfs import SysfsInventory

    if not isinstance(inventory, SysfsInventory):
        return None
    groups = inventory.reader.path("kernel", "iommu_groups")
    if inventory.reader.listdir(groups):
        return None
    return (
        f"IOMMU: off ({groups} is empty): no PCI device can be given to a guest; "
        "enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on"
    )


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
    pci = sorted(
        inventory.pci_devices(),
        key=lambda d: (d.iommu_group is None, d.iommu_group or 0, d.address),
    )
    names = _device_names()
    print(f"node {node}: {len(pci)} PCI functions, {len(inventory.usb_devices())} USB devices")
    iommu_off = _iommu_off(inventory, args)
    if pci and iommu_off:
        print(iommu_off)
    elif pci and (remapping := _interrupt_remapping_off(inventory, args)):
        print(remapping)
    print()
    rows = []
    for dev in pci:
        ident = dev.identity
        extra = " ".join(
            x
            for x in (
                ident.serial or "",
                f"slot {dev.physical_slot}" if dev.physical_slot else "",
                f"VF of {dev.physfn}" if dev.physfn else "",
                f"{len(dev.virtfns)} VFs" if dev.virtfns else "",
            )
            if x
        )
        klass = f"{ident.class_code >> 8:04x}" if ident.class_code is not None else "----"
        numa = "-" if dev.numa_node is None else str(dev.numa_node)
        row = (
            f"{_group_of(dev):>5}  {dev.address!s:<14} [{klass}] [{ident.ids}] {ident.subsystem or '-':<10} "
            f"{numa:>4}  {dev.driver or '-':<14} "
        )
        rows.append((row, extra, names.pci(ident.vendor, ident.device) or ""))
    header = f"{'GROUP':>5}  {'ADDRESS':<14} {'CLASS':<6} {'ID':<11} {'SUBSYSTEM':<10} {'NUMA':>4}  {'DRIVER':<14} SERIAL/SLOT"
    # A NAME column only where the host has pci.ids: without it there is nothing to show.
    if any(name for _, _, name in rows):
        width = max(len("SERIAL/SLOT"), *(len(extra) for _, extra, _ in rows))
        header = f"{header:<{len(header) - len('SERIAL/SLOT') + width}}  NAME"
        rows = [(row, f"{extra:<{width}}  {name}", "") for row, extra, name in rows]
    # One write for the table, not one per function (stdout may be unbuffered).
    print("\n".join([header, *(f"{row}{extra}".rstrip() for row, extra, _ in rows)]))
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
    from .sriov import mdev_inventory_lines

    mdev_lines = mdev_inventory_lines(inventory)
    if mdev_lines:
        print()
        print("\n".join(mdev_lines))
    scsi = open_scsi(args, inventory)
    if scsi is not None:
        from ...model.scsi import describe_scsi

        lines = describe_scsi(scsi)
        if lines:
            print()
            print("\n".join(lines))
    return 0


# -- map -----------------------------------------------------------------------


def _capture_pci(inventory: HostInventory, node: str, text: str) -> PciEntry:
    address = PciAddress.parse(text)
    dev = inventory.pci_device(address)
    if dev is None:
        raise RefusedError(
            f"no PCI device at {address} on node {node}",
            fix="see 'hostdev-resolver inventory' for the devices this host has",
        )
    if dev.is_bridge:
        raise RefusedError(
            f"{address} is a PCI bridge ({dev.identity.ids}); bridges cannot be passed through"
        )
    return PciEntry(
        node=node,
        address=dev.address,
        identity=dev.identity,
        iommu_group=dev.iommu_group,
        numa_node=dev.numa_node,
        physical_slot=dev.physical_slot,
        port_path=dev.port_path,
    )


def _capture_usb(inventory: HostInventory, node: str, args: argparse.Namespace) -> UsbEntry:
    if args.vendor is None or args.product is None:
        raise UsageError(
            "map add usb needs --vendor V --product P (and --serial S to pick one of several)"
        )
    vendor = parse_id16(args.vendor, "--vendor")
    product = parse_id16(args.product, "--product")
    matches = [
        d
        for d in inventory.usb_devices()
        if (d.identity.vendor, d.identity.product) == (vendor, product)
        and (args.serial is None or d.identity.serial == args.serial)
        and (args.port is None or d.port_path == args.port)
    ]
    wanted = f"{vendor:04x}:{product:04x}" + (f" serial {args.serial}" if args.serial else "")
    if not matches:
        if args.offline:
            return UsbEntry(node, UsbIdentity(vendor, product, args.serial), args.port)
        raise RefusedError(
            f"no USB device {wanted} is plugged in on node {node}",
            fix="plug it in, or pass --offline to record the identity as typed",
        )
    if len(matches) > 1:
        at = ", ".join(f"{m.port_path} (serial {m.identity.serial or 'none'})" for m in matches)
        raise RefusedError(
            f"{len(matches)} USB devices {wanted} on node {node}: {at}",
            fix="pick one with --serial S or --port PATH",
        )
    dev = matches[0]
    # A device without a serial is told apart from its twins by the port it is in.
    twins = [
        d
        for d in inventory.usb_devices()
        if (d.identity.vendor, d.identity.product) == (vendor, product)
    ]
    port = dev.port_path if dev.identity.serial is None and len(twins) > 1 else args.port
    return UsbEntry(node, dev.identity, port)


_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.:+-")


def _check_map_add_text(args: argparse.Namespace) -> None:
    """Refuse what the store cannot hold, naming the option, before anything is written
    (the store's schema would refuse it too, but as a broken store line)."""
    name = args.name
    if not (0 < len(name) <= 128 and name[0] in _NAME_FIRST and all(c in _NAME_REST for c in name)):
        raise UsageError(
            f"NAME {name!r} is not a mapping name",
            fix="use letters, digits and _ . : + - (starting with a letter or digit), at most 128",
        )
    texts = [("--description", args.description), *(("--allow", a) for a in args.allow or ())]
    for option, value in texts:
        if value is None:
            continue
        if option == "--allow" and not value:
            raise UsageError("--allow needs a domain name pattern, not an empty string")
        if any(
            (ord(c) < 0x20 and c not in "\t\n\r")
            or 0xD800 <= ord(c) <= 0xDFFF
            or c in "\ufffe\uffff"
            for c in value
        ):
            raise UsageError(f"{option} {value!r} has a control character an XML file cannot hold")


def cmd_map_add(args: argparse.Namespace) -> int:
    _check_map_add_text(args)
    path = store_path(args)
    entry: PciEntry | UsbEntry
    if args.kind in ("vf", "mdev"):
        return _map_add_sriov_mdev(args, path)
    if args.kind in ("pci", "usb"):
        inventory, node = open_host(args)
        if args.kind == "pci":
            if not args.address:
                raise UsageError("map add pci needs --address BDF")
            from .sriov import vf_suggestion

            vf_suggestion(inventory, PciAddress.parse(args.address), args.name, node)
            entry = _capture_pci(inventory, node, args.address)
        else:
            entry = _capture_usb(inventory, node, args)
        added = edit_store(
            args,
            args.name,
            lambda editor: editor.add_entry(
                args.kind,
                args.name,
                entry,
                description=args.description,
                allow=tuple(args.allow or ()),
                extra=_pci_extra(args) if args.kind == "pci" else None,
                pool=args.pool,
            ),
        )
        where = _entry_text(entry)
        if added.action == "re-mapped" and added.old is not None:
            print(
                f"{args.kind} {args.name}: re-mapped on node {entry.node}: "
                f"{_entry_text(added.old)} → {where}; recorded in {path}"
            )
        elif added.action == "pooled":
            print(
                f"{args.kind} {args.name}: node {entry.node} -> {where} added to the pool; "
                f"recorded in {path}"
            )
        else:
            print(f"{args.kind} {args.name}: node {entry.node} -> {where} recorded in {path}")
        return 0
    return _map_add_wwn(args, path)


def _entry_text(entry: PciEntry | UsbEntry) -> str:
    if isinstance(entry, PciEntry):
        return str(entry.address)
    port = f" port {entry.port_path}" if entry.port_path else ""
    return entry.identity.ids + port


def _pci_extra(args: argparse.Namespace) -> dict[str, str] | None:
    extra = {}
    if args.vfio:
        # --vfio (or --vfio=start) is vfio='yes', as before --vfio took a value
        extra["vfio"] = "boot" if args.vfio == "boot" else "yes"
    if args.require_reset:
        extra["require-reset"] = "yes"
    return extra or None


def _map_add_sriov_mdev(args: argparse.Namespace, path: str) -> int:
    """vf and mdev mappings (issue 14): captured from the host like a pci mapping."""
    from ...core.mdev import new_uuid
    from ...model.identity import parse_uuid
    from ...xml.store import MdevMapping
    from .sriov import capture_mdev_parents, capture_vf

    inventory, node = open_host(args)
    extra = _pci_extra(args) or {}
    if args.kind == "vf":
        entries: list[PciEntry] = [capture_vf(inventory, node, args, _capture_pci)]
        if args.vgpu_type is not None:
            extra["vgpu-type"] = args.vgpu_type
        shown = f"VF {args.index} of PF {entries[0].address}"
    else:
        store = open_store(args) if is_url(path) or os.path.exists(path) else None
        entries = capture_mdev_parents(inventory, node, args, store, _capture_pci)
        existing = store.get(args.name) if store is not None else None
        uuid = parse_uuid(args.uuid) if args.uuid is not None else None
        if isinstance(existing, MdevMapping):
            if existing.mdev_type != args.mdev_type:
                raise RefusedError(
                    f"mdev mapping {args.name!r} is of type {existing.mdev_type}, not {args.mdev_type}",
                    fix="choose another name, or 'map remove' it first",
                )
            # The UUID was fixed when the mapping was made: the guest keeps seeing it.
            uuid = uuid or existing.uuid
        extra |= {"type": args.mdev_type, "uuid": uuid or new_uuid()}
        shown = f"mdev {extra['uuid']} ({args.mdev_type}) on " + ", ".join(
            str(e.address) for e in entries
        )
    edit_store(
        args,
        args.name,
        lambda editor: editor.add_entries(
            args.kind,
            args.name,
            entries,
            description=args.description,
            allow=tuple(args.allow or ()),
            extra=extra,
        ),
    )
    print(f"{args.kind} {args.name}: node {node} -> {shown} recorded in {path}")
    return 0


def _map_add_wwn(args: argparse.Namespace, path: str) -> int:
    """lun, scsi and vhba mappings: captured from the SCSI/FC view, node-independent."""
    from ...core.scsiresolve import capture_lun, capture_vhba

    scsi = open_scsi(args)
    if scsi is None:
        raise UsageError(f"map add {args.kind} needs the host's sysfs (the live host or --sysfs)")
    mapping: Any
    if args.kind == "vhba":
        if not args.wwnn or not args.wwpn:
            raise UsageError("map add vhba needs --wwnn and --wwpn of the virtual port")
        mapping = capture_vhba(
            scsi,
            args.name,
            wwnn=args.wwnn,
            wwpn=args.wwpn,
            parent_wwnn=args.parent_wwnn,
            parent_wwpn=args.parent_wwpn,
            parent_fabric=args.parent_fabric,
            description=args.description,
            allow=tuple(args.allow or ()),
        )
    else:
        mapping = capture_lun(
            scsi,
            args.kind,
            args.name,
            wwn=args.wwn,
            device=args.device,
            initiator=args.initiator,
            target=args.target,
            lun=args.lun,
            description=args.description,
            allow=tuple(args.allow or ()),
        )
    edit_store(
        args,
        mapping.name,
        lambda editor: editor.add_entry(
            mapping.kind,
            mapping.name,
            None,
            description=mapping.description,
            allow=mapping.allow,
            extra=mapping.store_attributes(),
        ),
    )
    print(f"{mapping.kind} {mapping.name} recorded in {path}")
    return 0


def cmd_map_list(args: argparse.Namespace) -> int:
    path = store_path(args)
    if not is_url(path) and not os.path.lexists(path):
        # A fresh host: no mapping yet is not an error.
        print(
            f"hostdev-resolver: no mapping store yet at {path}; "
            "'hostdev-resolver map add' creates it",
            file=sys.stderr,
        )
        if args.format == "json":
            print("[]")
        return 0
    store = open_store(args)
    if args.format == "json":
        import json

        print(json.dumps([_mapping_json(m) for m in store.mappings.values()], indent=2))
        return 0
    names = _device_names()
    for mapping in store.mappings.values():
        entries = getattr(mapping, "entries", ())
        nodes = sorted({e.node for e in entries})
        desc = f"  {mapping.description}" if mapping.description else ""
        device = {n for n in (_entry_name(names, e) for e in entries) if n}
        what = f"  [{device.pop()}]" if len(device) == 1 else ""
        print(f"{mapping.kind:<4} {mapping.name:<20} nodes: {', '.join(nodes) or '-'}{desc}{what}")
    return 0


def _entry_name(names: DeviceNames, entry: object) -> str | None:
    if isinstance(entry, PciEntry):
        return names.pci(entry.identity.vendor, entry.identity.device)
    if isinstance(entry, UsbEntry):
        return names.usb(entry.identity.vendor, entry.identity.product)
    return None


_HEX_FIELDS = {"vendor", "device", "product", "subsystem_vendor", "subsystem_device"}


def _to_json(value: Any, key: str = "") -> Any:
    """Store records as JSON: IDs in hex as in the store, addresses as text, no line numbers."""
    if isinstance(value, PciAddress):
        return str(value)
    if is_record(value) and not isinstance(value, type):
        return {
            f.name: _to_json(getattr(value, f.name), f.name)
            for f in fields(value)
            if f.name != "line"
        }
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        if key in _HEX_FIELDS:
            return f"{value:04x}"
        if key == "class_code":
            return f"{value:06x}"
    return value


def _mapping_json(mapping: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": mapping.kind}
    data.update(_to_json(mapping))
    return data


LOCAL_LIBVIRT = "qemu:///system"


def _holders(args: argparse.Namespace, mapping: Any) -> dict[int, list[str]] | None:
    """For each of the mapping's members on the node libvirt answers for (by index in
    its entries), the running guests that hold it. None when nothing is to be asked (a
    mapping with no device entries, a captured host given with --sysfs or --host) or
    libvirt cannot be reached: that is one line on stderr, and the members are listed
    without it."""
    from ...core.claims import holders

    if not any(isinstance(e, PciEntry | UsbEntry) for e in getattr(mapping, "entries", ())):
        return None
    source = _sources(args)
    if len(source) > 1:
        raise UsageError("map show asks one libvirt for its running guests: give --connect once")
    if source[0].kind == "libvirt":
        uri, node = source[0].location, source[0].node or args.node
    elif args.sysfs or args.host:
        return None  # another host's tree: this host's guests do not hold its devices
    else:
        uri, node = LOCAL_LIBVIRT, args.node
    try:
        from ...host.nodedev import open_running_guests

        node, running = open_running_guests(uri, node)
    except ModuleNotFoundError as exc:
        if exc.name != "libvirt":
            raise
        why = "the libvirt Python module is not installed (python3-libvirt)"
    except HostAccessError as exc:
        why = exc.what
    else:
        return holders(mapping, node, running)
    print(
        f"hostdev-resolver: note: running guests not shown: {why}",
        file=sys.stderr,
    )
    return None


def cmd_map_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    mapping = store.get(args.name)
    if mapping is None:
        raise InputError(
            f"no mapping named {args.name!r}",
            where=Location(store.path),
            fix="see 'hostdev-resolver map list'",
        )
    held = _holders(args, mapping) or {}
    if args.format == "json":
        import json

        data = _mapping_json(mapping)
        for i, guests in held.items():
            data["entries"][i]["held_by"] = guests
        print(json.dumps(data, indent=2))
        return 0
    print(
        f"{mapping.kind} {mapping.name}"
        + (f" — {mapping.description}" if mapping.description else "")
    )
    print(f"  allowed domains: {', '.join(mapping.allow) if mapping.allow else 'any'}")
    entries = getattr(mapping, "entries", ())
    names = _device_names()
    per_node: dict[str, int] = {}
    for entry in entries:
        per_node[entry.node] = per_node.get(entry.node, 0) + 1
    for node, count in per_node.items():
        if count > 1:
            print(f"  pool of {count} on node {node}: a guest gets the first member not in use")
    for i, entry in enumerate(entries):
        use = ""
        if i in held:
            use = f"  held by {', '.join(held[i])}" if held[i] else "  free"
        if isinstance(entry, PciEntry):
            ident = entry.identity
            bits = [
                f"{ident.ids}",
                f"subsystem {ident.subsystem}" if ident.subsystem else "",
                f"group {entry.iommu_group}" if entry.iommu_group is not None else "",
            ]
            bits += [
                f"serial {ident.serial}" if ident.serial else "",
                f"slot {entry.physical_slot}" if entry.physical_slot else "",
            ]
            bits += [f"VF {entry.index}" if isinstance(entry, VfEntry) else ""]
            bits.append(f"[{name}]" if (name := _entry_name(names, entry)) else "")
            print(f"  node {entry.node}: {entry.address}  " + "  ".join(b for b in bits if b) + use)
        elif isinstance(entry, UsbEntry):
            serial = f" serial {entry.identity.serial}" if entry.identity.serial else ""
            port = f" port {entry.port_path}" if entry.port_path else ""
            name = _entry_name(names, entry)
            label = f"  [{name}]" if name else ""
            print(f"  node {entry.node}: {entry.identity.ids}{serial}{port}{label}{use}")
    wwn = getattr(mapping, "wwn", None)
    if wwn:
        print(f"  wwn {wwn}")
    if isinstance(mapping, MdevMapping):
        print(f"  mdev type {mapping.mdev_type}, uuid {mapping.uuid}")
    return 0


def cmd_map_remove(args: argparse.Namespace) -> int:
    path = store_path(args)
    if not is_url(path) and not os.path.exists(path):
        raise InputError("mapping store not found", where=Location(path), fix="give --store")
    address = None
    if args.address is not None:
        if not args.node:
            raise UsageError("--address picks a pool member on one node: give --node as well")
        address = PciAddress.parse(args.address)
    count = edit_store(args, args.name, lambda editor: editor.remove(args.name, args.node, address))
    if address is not None:
        what = f"member {address} on node {args.node}"
    elif args.node:
        what = f"{count} entr{'y' if count == 1 else 'ies'} for node {args.node}"
    else:
        what = "the mapping"
    print(f"removed {what} of {args.name!r} from {path}")
    return 0


# -- resolve / verify / validate --------------------------------------------------


def cmd_resolve(args: argparse.Namespace) -> int:
    from ...core.resolution import resolve_domain, wants_scsi

    doc = parse_file(args.file)
    store = store_for(args, doc)
    inventory, node = open_host(args)
    scsi = open_scsi(args, inventory) if wants_scsi(doc) else None
    result = resolve_domain(doc, store, inventory, node, scsi=scsi)
    for message in result.warnings:
        warn(message)
    write_output(result.data, args.output)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """The hook's `prepare begin` decision for this file, made by the same code without
    a single write; --dry-run adds the sysfs writes the hook would then make."""
    from ...core.resolution import wants_scsi
    from ..hookops import decide_start

    doc = parse_file(args.file)
    store = store_for(args, doc)
    inventory, node = open_host(args)
    sysfs_root = None
    if args.dry_run:
        from ...host.sysfs import SysfsInventory

        if not isinstance(inventory, SysfsInventory):
            raise UsageError("--dry-run needs a sysfs host (the live host or --sysfs ROOT)")
        sysfs_root = inventory.reader.root
    scsi = open_scsi(args, inventory) if wants_scsi(doc) else None
    decision = decide_start(doc, store, inventory, node, scsi, _live_variants(inventory))
    refusal = decision.refusal
    if args.format == "json":
        import json

        from ...core.verification import Finding
        from ...model.records import asdict

        findings = list(decision.findings)
        if refusal is not None:  # binding refused: the domain's, not one device's
            findings.append(Finding("*", node, "refused", refusal.what, refusal.fix, doc.source))
        rows = [asdict(f) | {"ok": f.ok} for f in findings]
        rows += [
            asdict(Finding(w.split(":", 1)[0], node, "warning", w, None, doc.source)) | {"ok": True}
            for w in decision.warnings
        ]
        print(json.dumps(rows, indent=2))
    else:
        if not decision.findings:
            print(f"{args.file}: no mapped devices to verify")
        for f in decision.findings:
            print(f"ok: {f.message}" if f.ok else f"{f.status.upper()}: {f}")
        for warning in decision.warnings:
            print(f"WARNING: {warning}")
        if refusal is not None:
            print(f"REFUSED: {refusal.message}")
    if sysfs_root is not None and decision.plan is not None:
        writes = [w.render(sysfs_root) for w in decision.plan.writes()]
        print(f"vfio-pci: {len(writes)} sysfs writes at start" + (":" if writes else ""))
        for line in writes:
            print(f"  {line}")
    return 0 if decision.ok else 1


def _live_variants(inventory: HostInventory) -> VariantDrivers | None:
    """The running kernel's vfio variant drivers when verifying the live host (as the
    hook would bind); a captured tree (--sysfs) or a snapshot has no kernel to ask."""
    from ...host.sysfs import SysfsInventory
    from ...host.variants import VariantDrivers, default_path

    if isinstance(inventory, SysfsInventory) and inventory.reader.root == "/sys":
        return VariantDrivers.load(default_path())
    return None


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate_files

    report = validate_files(args.files, args, all_nodes=args.all_nodes)
    if args.format == "json":
        import json

        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.errors():
            print(line, file=sys.stderr)
        for line in report.lines():
            print(line)
    return report.exit_code


# -- parser ----------------------------------------------------------------------


# Each kind of `map add` takes only its own options; a kind's parser gets the others as
# None, so cmd_map_add reads one namespace whatever the kind.
_MAP_ADD_DESTS = (
    "address", "vendor", "product", "serial", "port", "offline", "wwn", "device",
    "initiator", "target", "lun", "wwnn", "wwpn", "parent_wwnn", "parent_wwpn",
    "parent_fabric", "vfio", "pool", "pf", "index", "vgpu_type", "parent", "mdev_type",
    "uuid", "require_reset",
)  # fmt: skip


def _add_map_add(msub: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    """`map add KIND NAME …`: one sub-command per kind (the same spelling as before),
    so --help, the man page and completion offer each kind only its options."""
    add = msub.add_parser(
        "add", help="add a mapping (or a node entry to it), capturing the identity from the host"
    )
    kinds = add.add_subparsers(dest="kind", metavar="KIND", parser_class=_Parser)
    kinds.required = True

    def kind(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = kinds.add_parser(name, parents=[common], help=help)
        p.add_argument("name", metavar="NAME", help="the mapping's name")
        return p

    pci = kind("pci", "a PCI device (GPU, NIC, NVMe), by its address on this node")
    pci.add_argument("--address", metavar="BDF", help="PCI address of the device on this node")
    usb = kind("usb", "a USB device, by vendor and product (and serial or port)")
    usb.add_argument("--vendor", metavar="V", help="USB vendor ID")
    usb.add_argument("--product", metavar="P", help="USB product ID")
    usb.add_argument(
        "--serial", metavar="S", help="USB serial, to pick one of several identical devices"
    )
    usb.add_argument(
        "--port", metavar="PATH", help="USB port path (e.g. 1-2.3) for devices without a serial"
    )
    usb.add_argument(
        "--offline",
        action="store_true",
        help="record the identity as typed, without the device present",
    )
    for p in (pci, usb):
        p.add_argument(
            "--pool",
            action="store_true",
            help="add the device as one more member of the mapping's pool on this node "
            "(without it, another device re-maps the name on this node)",
        )
    vf = kind("vf", "an SR-IOV VF, by its PF's identity and its index")
    vf.add_argument("--pf", metavar="BDF", help="the SR-IOV physical function on this node")
    vf.add_argument("--index", metavar="N", type=int, help="the VF index below --pf")
    vf.add_argument(
        "--vgpu-type",
        metavar="T",
        help="NVIDIA VF vGPU: the type current_vgpu_type must hold at start",
    )
    mdev = kind("mdev", "a mediated device (vGPU), by its parent(s) and type")
    mdev.add_argument(
        "--parent",
        metavar="BDF|MAPPING",
        action="append",
        help="parent device, or a pci mapping naming parents (repeatable: a pool)",
    )
    mdev.add_argument("--type", dest="mdev_type", metavar="T", help="the mdev type")
    mdev.add_argument("--uuid", metavar="UUID", help="the mdev's UUID (default: a new one)")
    pci.add_argument(
        "--vfio",
        nargs="?",
        const="start",
        choices=("start", "boot"),
        metavar="start|boot",
        help="the hook binds the device and its IOMMU group to vfio-pci at start; "
        "--vfio=boot: hostdev-resolver-bind.service also binds them at boot, "
        "wherever the device is found (docs/boot-binding.md)",
    )
    # A VF exists only once its PF's sriov_numvfs is written, so it cannot be bound at boot.
    vf.add_argument(
        "--vfio",
        action="store_true",
        help="the hook binds the device and its IOMMU group to vfio-pci at start",
    )
    for p in (pci, vf, mdev):
        p.add_argument(
            "--require-reset",
            action="store_true",
            help="refuse a start when the device has no reset method",
        )
    lun = kind("lun", "a LUN for <disk device='lun'>, by its WWN")
    scsi = kind("scsi", "a SCSI LUN for <hostdev type='scsi'>, by WWN or FC path")
    for p in (lun, scsi):
        p.add_argument("--wwn", metavar="WWN", help="the LUN's WWN (NAA or EUI-64)")
        p.add_argument("--device", metavar="DEV", help="capture from sdX, sgN or H:C:T:L")
    scsi.add_argument("--initiator", metavar="WWPN", help="FC initiator port")
    scsi.add_argument("--target", metavar="WWPN", help="FC target port")
    scsi.add_argument("--lun", metavar="N", type=int, help="LUN number behind --target")
    vhba = kind("vhba", "an NPIV virtual HBA port, by its WWNN/WWPN")
    vhba.add_argument("--wwnn", metavar="WWNN", help="the virtual port's node name")
    vhba.add_argument("--wwpn", metavar="WWPN", help="the virtual port's port name")
    vhba.add_argument("--parent-wwnn", metavar="WWNN", help="parent HBA node name")
    vhba.add_argument("--parent-wwpn", metavar="WWPN", help="parent HBA port name")
    vhba.add_argument("--parent-fabric", metavar="WWN", help="parent by fabric name")
    for p in (pci, usb, vf, mdev, lun, scsi, vhba):
        p.add_argument("--description", metavar="TEXT", help="what the device is for")
        p.add_argument(
            "--allow",
            metavar="PATTERN",
            action="append",
            help="domain name pattern allowed to use it (repeatable)",
        )
        own = {a.dest for a in p._actions}
        p.set_defaults(handler=cmd_map_add, **{d: None for d in _MAP_ADD_DESTS if d not in own})


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `command`, that subcommand's arguments only (the others
    are listed by name). Building all of them, and importing what they need, costs a
    command more than its own work."""

    def want(name: str) -> bool:
        return command is None or command == name

    common = _Parser(add_help=False)
    _common(common)
    parser = _Parser(
        prog="hostdev-resolver",
        description=(_package_doc or "").strip()
        + " Resolve stable device names from a mapping store into libvirt domain XML, verify them, validate offline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "inventory",
        parents=[common] if want("inventory") else [],
        help="list the host's PCI and USB devices with IOMMU groups and drivers",
    )
    if want("inventory"):
        _inventory_arguments(p)
    _map_parser(sub, common, want("map"))
    p = sub.add_parser(
        "resolve",
        parents=[common] if want("resolve") else [],
        help="rewrite hr:map references into plain libvirt XML for a node",
    )
    if want("resolve"):
        p.add_argument("file")
        p.add_argument(
            "-o", "--output", metavar="OUT", help="write here instead of stdout (atomically)"
        )
        p.set_defaults(handler=cmd_resolve)
    p = sub.add_parser(
        "validate",
        parents=[common] if want("validate") else [],
        help="check domain files and stores offline",
    )
    if want("validate"):
        p.add_argument("files", nargs="+", metavar="FILE")
        p.add_argument(
            "--all-nodes", action="store_true", help="check every node in the store, not just one"
        )
        p.add_argument("--format", choices=["text", "json"], default="text")
        p.set_defaults(handler=cmd_validate)
    p = sub.add_parser(
        "verify",
        parents=[common] if want("verify") else [],
        help="the hook's start-time check, as a dry run",
    )
    if want("verify"):
        p.add_argument("file")
        p.add_argument("--format", choices=["text", "json"], default="text")
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="also print the sysfs writes the hook would make to bind vfio-pci",
        )
        p.set_defaults(handler=cmd_verify)
    p = sub.add_parser(
        "allocate",
        parents=[common] if want("allocate") else [],
        help="assign guest PCI addresses (libvirt-identical, or tuned)",
    )
    if want("allocate"):
        from .allocate import add_allocate_arguments, run_allocate

        add_allocate_arguments(p)
        p.set_defaults(handler=run_allocate)
    if want("hook"):
        from .hookinstall import register_hook_command

        register_hook_command(sub, common)
    else:
        sub.add_parser("hook", help="the libvirt qemu hook")
    if want("bind") or want("unbind"):
        from .bind import register_bind_commands

        register_bind_commands(sub)
    else:
        sub.add_parser("bind", help="bind mapped PCI devices to vfio-pci now (or at boot)")
        sub.add_parser("unbind", help="give devices bound by 'bind' back to their drivers")
    if want("store") or want("agent"):
        from .cluster import register_cluster_commands

        register_cluster_commands(sub, common)
    else:
        sub.add_parser("store", help="convert the store between etcd and its file form")
        sub.add_parser("agent", help="cluster node service (docs/cluster.md)")
    return parser


def _inventory_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: a host snapshot for --host",
    )
    p.set_defaults(handler=cmd_inventory)


def _map_parser(sub: Any, common: argparse.ArgumentParser, wanted: bool) -> None:
    mp = sub.add_parser("map", help="manage the mapping store")
    if not wanted:
        return
    msub = mp.add_subparsers(dest="map_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    _add_map_add(msub, common)
    lst = msub.add_parser("list", parents=[common], help="list mappings")
    lst.add_argument("--format", choices=["text", "json"], default="text")
    lst.set_defaults(handler=cmd_map_list)
    show = msub.add_parser(
        "show",
        parents=[common],
        help="show one mapping, with the running guests holding its members (asked of libvirt)",
    )
    show.add_argument("name")
    show.add_argument("--format", choices=["text", "json"], default="text")
    show.set_defaults(handler=cmd_map_show)
    rm = msub.add_parser(
        "remove",
        parents=[common],
        help="remove a mapping, its entries on one node (--node), or one pool member (--address)",
    )
    rm.add_argument("name")
    rm.add_argument(
        "--address", metavar="BDF", help="with --node: only the pool member at this PCI address"
    )
    rm.set_defaults(handler=cmd_map_remove)
    from .mapcheck import register_map_check

    register_map_check(msub, common)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        given = list(sys.argv[1:] if argv is None else argv)
        command = next((a for a in given if not a.startswith("-")), None)
        args = build_parser(command).parse_args(given)
        handler: Handler = args.handler
        return handler(args)
    except HostdevError as exc:
        print(f"hostdev-resolver: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hostdev-resolver: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
