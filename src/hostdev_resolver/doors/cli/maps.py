"""`hostdev-resolver map add|list|show|remove`: editing and reading the mapping store.

`map add vf|mdev` captures through `sriov`; `map check` is `mapcheck`."""

from __future__ import annotations

import os
import sys

from ...core.kinds.pci import capture as capture_pci
from ...core.kinds.usb import capture as capture_usb
from ...host.storebackend import edit_store, is_url
from ...model.errors import HostAccessError, InputError, Location, RefusedError, UsageError
from ...model.identity import parse_id16
from ...model.pciaddress import PciAddress
from ...model.records import fields, is_record
from ...xml.store import MdevMapping, PciEntry, UsbEntry, VfEntry
from .common import device_names, host_sources, open_host, open_scsi, open_store, store_path

# Not typing.TYPE_CHECKING: see main.py.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ...host.devicenames import DeviceNames
    from ...model.inventory import HostInventory


def _capture_pci(inventory: HostInventory, node: str, text: str) -> PciEntry:
    return capture_pci(inventory, node, PciAddress.parse(text))


def _capture_usb(inventory: HostInventory, node: str, args: argparse.Namespace) -> UsbEntry:
    if args.vendor is None or args.product is None:
        raise UsageError(
            "map add usb needs --vendor V --product P (and --serial S to pick one of several)"
        )
    vendor = parse_id16(args.vendor, "--vendor")
    product = parse_id16(args.product, "--product")
    return capture_usb(
        inventory, node, vendor, product, serial=args.serial, port=args.port, offline=args.offline
    )


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
    from ...core.kinds.scsi import capture_lun, capture_vhba

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
    names = device_names()
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
    source = host_sources(args)
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
    names = device_names()
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


# -- the parser ------------------------------------------------------------------


# Each kind of `map add` takes only its own options; a kind's parser gets the others as
# None, so cmd_map_add reads one namespace whatever the kind.
_MAP_ADD_DESTS = (
    "address", "vendor", "product", "serial", "port", "offline", "wwn", "device",
    "initiator", "target", "lun", "wwnn", "wwpn", "parent_wwnn", "parent_wwpn",
    "parent_fabric", "vfio", "pool", "pf", "index", "vgpu_type", "parent", "mdev_type",
    "uuid", "require_reset",
)  # fmt: skip


def _add_map_add(msub: Any, common: argparse.ArgumentParser) -> None:
    """`map add KIND NAME …`: one sub-command per kind (the same spelling as before),
    so --help, the man page and completion offer each kind only its options."""
    add = msub.add_parser(
        "add", help="add a mapping (or a node entry to it), capturing the identity from the host"
    )
    kinds = add.add_subparsers(dest="kind", metavar="KIND", parser_class=type(common))
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


def register(sub: Any, name: str, help: str, common: argparse.ArgumentParser) -> None:
    """Add `map add|list|show|remove|check` (doors.cli.main.COMMANDS)."""
    mp = sub.add_parser(name, help=help)
    msub = mp.add_subparsers(dest="map_command", metavar="ACTION", parser_class=type(common))
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
    from . import mapcheck

    mapcheck.register(
        msub,
        "check",
        "every mapping on every node: ok / mismatch / shifted / missing / unreachable",
        common,
    )
