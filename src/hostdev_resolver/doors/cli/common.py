"""What the commands share: where the host devices and the store come from (the
host-source and store options, spelled in doors.options and added by `add_options`),
and how output and warnings leave.

`validate`, `map check` and the cluster commands use these as `main`'s commands do, so
they live below all of them.
"""

from __future__ import annotations

import sys

from ...host.hostsource import HostSource
from ...model.errors import InputError, Location, UsageError
from ..options import SOURCES, SPECS, metavar

# Not typing.TYPE_CHECKING: every command imports this module (see main.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

    from ...host.devicenames import DeviceNames
    from ...model.inventory import HostInventory
    from ...model.scsi import ScsiInventory
    from ...xml.store import Store
    from ...xml.xmldoc import Document
    from ..options import Help


def host_sources(args: argparse.Namespace) -> list[HostSource]:
    if getattr(args, "connect", None):
        out = []
        for spec in args.connect:
            # NODE= is before the scheme; a URI's own "=" (?socket=PATH) comes after it.
            node, _, uri = spec.partition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
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
    sources = host_sources(args)
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
    recorded = getattr(inventory, "scsi_inventory", None)  # a HostSnapshot's own view
    if recorded is not None:
        result: ScsiInventory | None = recorded()
        return result
    if getattr(args, "host", None) or getattr(args, "connect", None):
        return None
    from ...host.scsisysfs import read_scsi_inventory

    dev_root = args.dev_root or (None if args.sysfs else "/dev")
    return read_scsi_inventory(args.sysfs or "/sys", dev_root)


def add_options(container: Any, options: Sequence[Help], *, one_source: bool = False) -> None:
    """Add a door's share of the common options (doors.options) to an argparse parser or
    group. `one_source`: the host sources among them exclude each other (a command that
    looks at one node)."""
    exclusive = None
    for option in options:
        flag, help = option[0], option[1]
        value, repeat = SPECS[flag]
        target = container
        if one_source and flag in SOURCES:
            exclusive = exclusive or container.add_mutually_exclusive_group()
            target = exclusive
        if value is None:
            target.add_argument(flag, action="store_true", help=help)
        elif repeat:
            target.add_argument(flag, metavar=metavar(option), action="append", help=help)
        else:
            target.add_argument(flag, metavar=metavar(option), help=help)


def store_path(args: argparse.Namespace) -> str:
    # Imported here: the store backends bring the store's XML form (and expat) to every
    # command, `inventory` included, which reads no store.
    from ...host.storebackend import store_location

    return store_location(args)


def open_store(args: argparse.Namespace) -> Store:
    from ...host.storebackend import open_store as open_backend

    return open_backend(args)


def store_for(args: argparse.Namespace, doc: Document) -> Store:
    """The store, read only when the domain names a mapping (`hr:wwn` needs none)."""
    from ...core.resolution import needs_store, without_store

    return open_store(args) if needs_store(doc) else without_store(store_path(args))


def write_output(data: bytes, out: str | None) -> None:
    """To stdout, or atomically to OUT (nothing half-written)."""
    if out is None or out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    from ...host.outfile import replace_file

    try:
        replace_file(out, data, ".hostdev-resolver.")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}", where=Location(out)) from None


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def device_names() -> DeviceNames:
    from ...host.devicenames import DeviceNames

    return DeviceNames.from_environment()
