"""The `hostdev-resolver` command line (SPEC §5).

Only this layer (with the hook and the wrapper) turns errors into exit codes:
0 success, 1 refused, 2 malformed input or usage, 3 environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import __doc__ as _package_doc
from .allocation.command import add_allocate_arguments, run_allocate
from .errors import HostdevError, InputError, Location, RefusedError, UsageError
from .hookcmd import register_hook_command
from .hostsource import HostSource
from .identity import UsbIdentity, parse_id16
from .pciaddress import PciAddress
from .records import fields, is_record
from .store import PciEntry, Store, UsbEntry
from .storebackend import edit_store, is_url, store_location
from .xmldoc import parse_file

if TYPE_CHECKING:
    from .inventory import HostInventory, PciDevice
    from .scsi import ScsiInventory

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (SPEC §5)."""

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


def _sources(args: argparse.Namespace) -> list[HostSource]:
    if getattr(args, "connect", None):
        out = []
        for spec in args.connect:
            node, _, uri = spec.rpartition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
            out.append(HostSource("libvirt", uri, node or None))
        return out
    if getattr(args, "host", None):
        return [
            HostSource("snapshot", path, args.node if len(args.host) == 1 else None)
            for path in args.host
        ]
    if getattr(args, "udev", False):
        return [HostSource("udev", "", args.node)]
    return [HostSource("sysfs", args.sysfs or "/sys", args.node)]


def open_host(args: argparse.Namespace) -> tuple[HostInventory, str]:
    sources = _sources(args)
    if len(sources) > 1:
        raise UsageError("this command looks at one node; give --connect or --host once")
    inventory, node = sources[0].open()
    if args.node:
        node = args.node
    return inventory, node


def open_scsi(args: argparse.Namespace, inventory: object = None) -> ScsiInventory | None:
    """The SCSI/FC view of the same host: read from sysfs, or recorded in the snapshot
    `inventory` came from. libvirt connections have none, so LUN references through
    --connect cannot resolve."""
    from .snapshot import HostSnapshot

    if isinstance(inventory, HostSnapshot):
        return inventory.scsi_inventory()
    if getattr(args, "host", None) or getattr(args, "connect", None):
        return None
    from .scsi import read_scsi_inventory

    dev_root = args.dev_root or (None if args.sysfs else "/dev")
    return read_scsi_inventory(args.sysfs or "/sys", dev_root)


def add_store_tls_options(group: Any) -> None:
    group.add_argument("--store-ca", metavar="FILE", help="etcds://: CA bundle of the etcd cluster")
    group.add_argument("--store-cert", metavar="FILE", help="etcds://: client certificate")
    group.add_argument("--store-key", metavar="FILE", help="etcds://: client certificate's key")


def store_path(args: argparse.Namespace) -> str:
    return store_location(args)


def open_store(args: argparse.Namespace) -> Store:
    from .storebackend import open_store as open_backend

    return open_backend(args)


def write_output(data: bytes, out: str | None) -> None:
    """To stdout, or atomically to OUT (nothing half-written)."""
    if out is None or out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(out))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hostdev-resolver.", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}", where=Location(out)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# -- inventory -----------------------------------------------------------------


def _group_of(dev: PciDevice) -> str:
    return "-" if dev.iommu_group is None else str(dev.iommu_group)


def cmd_inventory(args: argparse.Namespace) -> int:
    inventory, node = open_host(args)
    if args.format == "json":
        from .snapshot import inventory_to_json

        data = inventory_to_json(inventory, node)
        scsi = open_scsi(args, inventory)
        if scsi is not None:
            from .scsi import scsi_to_json

            data["scsi"] = scsi_to_json(scsi)
        print(json.dumps(data, indent=2))
        return 0
    pci = sorted(
        inventory.pci_devices(),
        key=lambda d: (d.iommu_group is None, d.iommu_group or 0, d.address),
    )
    print(f"node {node}: {len(pci)} PCI functions, {len(inventory.usb_devices())} USB devices")
    print()
    print(
        f"{'GROUP':>5}  {'ADDRESS':<14} {'CLASS':<6} {'ID':<10} {'SUBSYSTEM':<10} {'NUMA':>4}  {'DRIVER':<14} SERIAL/SLOT"
    )
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
        print(
            f"{_group_of(dev):>5}  {dev.address!s:<14} [{klass}] [{ident.ids}] {ident.subsystem or '-':<10} "
            f"{numa:>4}  {dev.driver or '-':<14} {extra}".rstrip()
        )
    usb = inventory.usb_devices()
    if usb:
        width = max(6, *(len(u.identity.serial or "-") for u in usb))
        print()
        print(
            f"{'BUS':>3} {'DEV':>3}  {'PORT':<10} {'ID':<10} {'DRIVER':<10} {'SERIAL':<{width}}  NAME"
        )
        for u in sorted(usb, key=lambda d: (d.bus, d.device)):
            name = " ".join(x for x in (u.manufacturer, u.product_name) if x)
            print(
                f"{u.bus:>3} {u.device:>3}  {u.port_path:<10} {u.identity.ids:<10} {u.driver or '-':<10} {u.identity.serial or '-':<{width}}  {name}".rstrip()
            )
    scsi = open_scsi(args, inventory)
    if scsi is not None:
        from .scsi import describe_scsi

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
    if args.kind in ("pci", "usb"):
        inventory, node = open_host(args)
        if args.kind == "pci":
            if not args.address:
                raise UsageError("map add pci needs --address BDF")
            entry = _capture_pci(inventory, node, args.address)
        else:
            entry = _capture_usb(inventory, node, args)
        edit_store(
            args,
            args.name,
            lambda editor: editor.add_entry(
                args.kind,
                args.name,
                entry,
                description=args.description,
                allow=tuple(args.allow or ()),
                extra={"vfio": "yes"} if args.kind == "pci" and args.vfio else None,
            ),
        )
        where = str(entry.address) if isinstance(entry, PciEntry) else entry.identity.ids
        print(f"{args.kind} {args.name}: node {entry.node} -> {where} recorded in {path}")
        return 0
    return _map_add_wwn(args, path)


def _map_add_wwn(args: argparse.Namespace, path: str) -> int:
    """lun, scsi and vhba mappings: captured from the SCSI/FC view, node-independent."""
    from .scsiresolve import capture_lun, capture_vhba

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
    store = open_store(args)
    if args.format == "json":
        print(json.dumps([_mapping_json(m) for m in store.mappings.values()], indent=2))
        return 0
    for mapping in store.mappings.values():
        nodes = sorted({e.node for e in getattr(mapping, "entries", ())})
        desc = f"  {mapping.description}" if mapping.description else ""
        print(f"{mapping.kind:<4} {mapping.name:<20} nodes: {', '.join(nodes) or '-'}{desc}")
    return 0


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


def cmd_map_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    mapping = store.get(args.name)
    if mapping is None:
        raise InputError(
            f"no mapping named {args.name!r}",
            where=Location(store.path),
            fix="see 'hostdev-resolver map list'",
        )
    if args.format == "json":
        print(json.dumps(_mapping_json(mapping), indent=2))
        return 0
    print(
        f"{mapping.kind} {mapping.name}"
        + (f" — {mapping.description}" if mapping.description else "")
    )
    print(f"  allowed domains: {', '.join(mapping.allow) if mapping.allow else 'any'}")
    for entry in getattr(mapping, "entries", ()):
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
            print(f"  node {entry.node}: {entry.address}  " + "  ".join(b for b in bits if b))
        elif isinstance(entry, UsbEntry):
            serial = f" serial {entry.identity.serial}" if entry.identity.serial else ""
            port = f" port {entry.port_path}" if entry.port_path else ""
            print(f"  node {entry.node}: {entry.identity.ids}{serial}{port}")
    wwn = getattr(mapping, "wwn", None)
    if wwn:
        print(f"  wwn {wwn}")
    return 0


def cmd_map_remove(args: argparse.Namespace) -> int:
    path = store_path(args)
    if not is_url(path) and not os.path.exists(path):
        raise InputError("mapping store not found", where=Location(path), fix="give --store")
    count = edit_store(args, args.name, lambda editor: editor.remove(args.name, args.node))
    what = (
        f"{count} entr{'y' if count == 1 else 'ies'} for node {args.node}"
        if args.node
        else "the mapping"
    )
    print(f"removed {what} of {args.name!r} from {path}")
    return 0


# -- resolve / verify / validate --------------------------------------------------


def cmd_resolve(args: argparse.Namespace) -> int:
    from .resolution import resolve_domain

    doc = parse_file(args.file)
    store = open_store(args)
    inventory, node = open_host(args)
    result = resolve_domain(doc, store, inventory, node, scsi=open_scsi(args, inventory))
    for message in result.warnings:
        warn(message)
    write_output(result.data, args.output)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verification import verify_domain

    doc = parse_file(args.file)
    store = open_store(args)
    inventory, node = open_host(args)
    findings = verify_domain(doc, store, inventory, node, scsi=open_scsi(args, inventory))
    if args.format == "json":
        from .records import asdict

        print(json.dumps([asdict(f) | {"ok": f.ok} for f in findings], indent=2))
    else:
        if not findings:
            print(f"{args.file}: no mapped devices to verify")
        for f in findings:
            print(f"{'ok' if f.ok else f.status.upper()}: {f}" if not f.ok else f"ok: {f.message}")
    if args.dry_run and all(f.ok for f in findings):
        from .sysfs import SysfsInventory
        from .vfio import planned_writes

        if not isinstance(inventory, SysfsInventory):
            raise UsageError("--dry-run needs a sysfs host (the live host or --sysfs ROOT)")
        writes = planned_writes(doc, store, inventory, inventory.reader.root)
        print(f"vfio-pci: {len(writes)} sysfs writes at start" + (":" if writes else ""))
        for line in writes:
            print(f"  {line}")
    return 0 if all(f.ok for f in findings) else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from .validation import validate_files

    report = validate_files(args.files, args, all_nodes=args.all_nodes)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            print(line)
    return report.exit_code


# -- parser ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    _common(common)
    parser = _Parser(
        prog="hostdev-resolver",
        description=(_package_doc or "").strip()
        + " Resolve stable device names from a mapping store into libvirt domain XML, verify them, validate offline.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "inventory",
        parents=[common],
        help="list the host's PCI and USB devices with IOMMU groups and drivers",
    )
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: a host snapshot for --host",
    )
    p.set_defaults(handler=cmd_inventory)

    mp = sub.add_parser("map", help="manage the mapping store")
    msub = mp.add_subparsers(dest="map_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    add = msub.add_parser(
        "add",
        parents=[common],
        help="add a mapping (or a node entry to it), capturing the identity from the host",
    )
    add.add_argument("kind", choices=["pci", "usb", "lun", "scsi", "vhba"])
    add.add_argument("name")
    add.add_argument("--address", metavar="BDF", help="PCI address of the device on this node")
    add.add_argument("--vendor", metavar="V", help="USB vendor ID")
    add.add_argument("--product", metavar="P", help="USB product ID")
    add.add_argument(
        "--serial", metavar="S", help="USB serial, to pick one of several identical devices"
    )
    add.add_argument(
        "--port", metavar="PATH", help="USB port path (e.g. 1-2.3) for devices without a serial"
    )
    add.add_argument(
        "--offline",
        action="store_true",
        help="record a USB identity as typed, without the device present",
    )
    add.add_argument("--wwn", metavar="WWN", help="lun/scsi: the LUN's WWN (NAA or EUI-64)")
    add.add_argument("--device", metavar="DEV", help="lun/scsi: capture from sdX, sgN or H:C:T:L")
    add.add_argument("--initiator", metavar="WWPN", help="scsi: FC initiator port")
    add.add_argument("--target", metavar="WWPN", help="scsi: FC target port")
    add.add_argument("--lun", metavar="N", type=int, help="scsi: LUN number behind --target")
    add.add_argument("--wwnn", metavar="WWNN", help="vhba: the virtual port's node name")
    add.add_argument("--wwpn", metavar="WWPN", help="vhba: the virtual port's port name")
    add.add_argument("--parent-wwnn", metavar="WWNN", help="vhba: parent HBA node name")
    add.add_argument("--parent-wwpn", metavar="WWPN", help="vhba: parent HBA port name")
    add.add_argument("--parent-fabric", metavar="WWN", help="vhba: parent by fabric name")
    add.add_argument("--description", metavar="TEXT")
    add.add_argument(
        "--vfio",
        action="store_true",
        help="pci: the hook binds the device and its IOMMU group to vfio-pci at start",
    )
    add.add_argument(
        "--allow",
        metavar="PATTERN",
        action="append",
        help="domain name pattern allowed to use it (repeatable)",
    )
    add.set_defaults(handler=cmd_map_add)
    lst = msub.add_parser("list", parents=[common], help="list mappings")
    lst.add_argument("--format", choices=["text", "json"], default="text")
    lst.set_defaults(handler=cmd_map_list)
    show = msub.add_parser("show", parents=[common], help="show one mapping")
    show.add_argument("name")
    show.add_argument("--format", choices=["text", "json"], default="text")
    show.set_defaults(handler=cmd_map_show)
    rm = msub.add_parser(
        "remove", parents=[common], help="remove a mapping, or its entries on one node (--node)"
    )
    rm.add_argument("name")
    rm.set_defaults(handler=cmd_map_remove)
    from .cluster import register_map_check

    register_map_check(msub, common)

    p = sub.add_parser(
        "resolve",
        parents=[common],
        help="rewrite hr:map references into plain libvirt XML for a node",
    )
    p.add_argument("file")
    p.add_argument(
        "-o", "--output", metavar="OUT", help="write here instead of stdout (atomically)"
    )
    p.set_defaults(handler=cmd_resolve)

    p = sub.add_parser("validate", parents=[common], help="check domain files and stores offline")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--all-nodes", action="store_true", help="check every node in the store, not just one"
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("verify", parents=[common], help="the hook's start-time check, as a dry run")
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
        parents=[common],
        help="assign guest PCI addresses (libvirt-identical, or tuned)",
    )
    add_allocate_arguments(p)
    p.set_defaults(handler=run_allocate)

    register_hook_command(sub, common)
    from .clustercmd import register_cluster_commands

    register_cluster_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
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
