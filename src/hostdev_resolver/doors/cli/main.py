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
from ...model.errors import HostdevError, UsageError
from ..options import COMMON
from .common import add_options

# Not typing.TYPE_CHECKING: every command pays for what this module imports, and
# typing alone is half a bare interpreter's start-up. Modules only some commands need
# (json, tempfile, the allocator, the store writer) are imported where they are used.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

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
    add_options(parser.add_argument_group("common options"), COMMON, one_source=True)


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
    from .maps import cmd_map_add

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
        from .resolve import cmd_resolve

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
        from .resolve import cmd_validate

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
        from .resolve import cmd_verify

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
    from .inventory import cmd_inventory

    p.set_defaults(handler=cmd_inventory)


def _map_parser(sub: Any, common: argparse.ArgumentParser, wanted: bool) -> None:
    from .maps import cmd_map_list, cmd_map_remove, cmd_map_show

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
