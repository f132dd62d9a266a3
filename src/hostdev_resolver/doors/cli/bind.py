"""`hostdev-resolver bind` and `unbind`: mapped PCI devices to vfio-pci and back, by name.

`bind NAME…` binds by hand; `bind --boot` is what hostdev-resolver-bind.service runs at
boot, for every pci mapping marked vfio='boot' (docs/boot-binding.md). Both decide from
what the hook reads — the hook config (store, node, sysfs, state_dir, trust rules) —
so a boot binding and a guest's start see the same store; `--store`, `--node` and
`--sysfs` override it for a run by hand, and by hand the store may be an etcd URL as
for the other commands (`--boot` never contacts etcd: the network may not be up yet).
The work is hostbinding.py's.

Everything goes to stdout and stderr: under the unit, systemd sends both to the
journal (`journalctl -u hostdev-resolver-bind`), one line per decision.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from ...model.errors import (
    HostAccessError,
    HostdevError,
    InputError,
    Location,
    RefusedError,
    UsageError,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from ...host.hostbinding import GroupPlan
    from ...host.sysfs import SysfsInventory
    from ...host.variants import VariantDrivers
    from ...host.vfio import StateFile, Writer
    from ...xml.store import Store
    from ..hookops import HookConfig

    WriterFactory = Callable[[str], Writer]

UNIT = "hostdev-resolver-bind.service"


def _say(text: str) -> None:
    print(text, flush=True)


def _refuse(command: str, error: HostdevError) -> None:
    print(f"hostdev-resolver: {command}: {error.message}", file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace, *, boot: bool = False) -> tuple[HookConfig, str, str, str]:
    """The hook config, and the store, node and sysfs root this run uses."""
    from ...host.hostsource import this_node
    from ..hookops import load_config

    config = load_config(os.environ)
    store = args.store or os.environ.get("HOSTDEV_RESOLVER_STORE") or config.store
    if boot and "://" in store:
        raise UsageError(
            f"{store}: bind --boot reads the store file the hook reads, never etcd",
            fix="in a cluster, give the agent's cache file (the hook config's 'store')",
        )
    node = args.node or config.node or this_node()
    return config, store, node, args.sysfs or config.sysfs


def _read_store(
    args: argparse.Namespace, config: HookConfig, path: str, *, missing_ok: bool
) -> Store | None:
    """The store: from etcd for a URL, as the other commands read it; else read as the
    hook reads it (root's file unless trust_any_owner)."""
    from ...host.storebackend import etcd_store, is_url
    from ...host.storeread import read_store_bytes, read_trusted
    from ...xml.store import parse_store
    from ...xml.xmldoc import parse_bytes

    if is_url(path):
        return etcd_store(args, path).load()
    try:
        data = read_store_bytes(path) if config.trust_any_owner else read_trusted(path)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise InputError(
            "mapping store not found",
            where=Location(path),
            fix="create it with 'hostdev-resolver map add', or give --store",
        ) from None
    except InputError as exc:
        if missing_ok and exc.what == "mapping store not found":
            return None
        raise
    return parse_store(parse_bytes(data, path))


def _variants(config: HookConfig, sysfs: str) -> VariantDrivers:
    """The vfio variant drivers the hook would pick from (none for a test tree)."""
    from ...host.variants import VariantDrivers, default_path

    if config.modules_alias:
        return VariantDrivers.load(config.modules_alias)
    return VariantDrivers.load(default_path()) if sysfs == "/sys" else VariantDrivers()


def cmd_bind(args: argparse.Namespace) -> int:
    return bind(args, _real_writer)


def cmd_unbind(args: argparse.Namespace) -> int:
    return unbind(args, _real_writer)


def _real_writer(root: str) -> Writer:
    from ...host.vfio import SysfsWriter

    return SysfsWriter(root)


def bind(args: argparse.Namespace, writer_factory: WriterFactory) -> int:
    """`bind NAME…` / `bind --boot`; every sysfs write goes to `writer_factory(root)`."""
    from ...host.hostbinding import (
        StateLock,
        boot_mappings,
        bound_state,
        locate_targets,
        named_mappings,
        plan_groups,
    )
    from ...host.sysfs import SysfsInventory

    if args.boot == bool(args.names):
        raise UsageError("bind takes mapping names, or --boot (every mapping marked vfio='boot')")
    config, store_path, node, sysfs = _settings(args, boot=args.boot)
    store = _read_store(args, config, store_path, missing_ok=args.boot)
    if store is None:
        _say(f"no mapping store at {store_path}: nothing to bind at boot")
        return 0
    if args.boot:
        mappings = boot_mappings(store, node)
        if not mappings:
            _say(f"no mapping in {store_path} is marked vfio='boot' for node {node}")
            return 0
    else:
        mappings = named_mappings(store, args.names, node)
    inventory = SysfsInventory(sysfs)
    targets, refused = locate_targets(mappings, node, inventory)
    for target in targets:
        if target.followed is not None:
            _say(f"{target.followed}; following it")
    plans, refused_groups = plan_groups(targets, inventory, _variants(config, sysfs))
    refused += refused_groups
    for error in refused:
        _refuse("bind", error)
    code = 1 if refused else 0
    if args.dry_run:
        _print_plans(plans, inventory)
        return code
    state = bound_state(config.state_dir)
    writer = writer_factory(inventory.reader.root)
    with StateLock(state):
        for group in plans:
            try:
                _bind_group(group, inventory, state, writer)
            except HostAccessError as exc:
                _refuse("bind", exc)
                code = max(code, exc.exit_code)
    return code


def _print_plans(plans: list[GroupPlan], inventory: SysfsInventory) -> None:
    for group in plans:
        for target in group.already:
            _say(f"{target.name}: {target.device.address} is on {target.device.driver} already")
        writes = group.plan.writes()
        _say(
            f"IOMMU group {group.group} ({', '.join(group.names)}): {len(writes)} sysfs writes"
            + (":" if writes else "")
        )
        for write in writes:
            _say(f"  {write.render(inventory.reader.root)}")


def _bind_group(
    group: GroupPlan, inventory: SysfsInventory, state: StateFile, writer: Writer
) -> None:
    from ...host.vfio import bind_plan

    for target in group.already:
        _say(f"{target.name}: {target.device.address} is on {target.device.driver} already")
    if group.plan.empty:
        return
    bind_plan(group.plan, writer, inventory.reader, state)
    for change in group.plan.changes:
        _say(
            f"{change.reason}: {change.address} bound to {change.vfio_driver} "
            f"(was {change.driver or 'unbound'})"
        )


def unbind(args: argparse.Namespace, writer_factory: WriterFactory) -> int:
    """`unbind NAME…`; every sysfs write goes to `writer_factory(root)`."""
    from ...host.hostbinding import (
        StateLock,
        bound_state,
        give_back,
        group_users,
        recorded_for,
        unbind_writes,
    )
    from ...host.sysfs import SysfsInventory

    config, _store, _node, sysfs = _settings(args)
    inventory = SysfsInventory(sysfs)
    reader = inventory.reader
    state = bound_state(config.state_dir)
    code = 0
    with StateLock(state):
        recorded = state.load()
        for name in args.names:
            changes = recorded_for(recorded, name)
            if not changes:
                _say(f"{name}: nothing bound by 'hostdev-resolver bind' to give back")
                continue
            groups = {
                dev.iommu_group
                for c in changes
                if (dev := inventory.pci_device(c.address)) is not None
                and dev.iommu_group is not None
            }
            users = [u for g in sorted(groups) for u in group_users(g, args.proc)]
            if users:
                _refuse(
                    "unbind",
                    RefusedError(
                        f"{name}: IOMMU group {', '.join(map(str, sorted(groups)))} is open by "
                        f"{', '.join(users)}; nothing given back",
                        fix="shut the guest down first (vfio-pci waits for it, and unbind with it)",
                    ),
                )
                code = max(code, 1)
                continue
            if args.dry_run:
                writes = [w for c in reversed(changes) for w in unbind_writes(c, reader)]
                _say(f"{name}: {len(writes)} sysfs writes" + (":" if writes else ""))
                for write in writes:
                    _say(f"  {write.render(reader.root)}")
                continue
            problems = give_back(changes, state, writer_factory(reader.root), reader)
            for problem in problems:
                _refuse("unbind", HostAccessError(problem))
            code = max(code, 3 if problems else 0)
            for change in changes:
                if not problems:
                    _say(
                        f"{name}: {change.address} given back to "
                        f"{change.driver or 'no driver'} ({change.reason})"
                    )
            recorded = state.load()
    return code


def register(
    sub: argparse._SubParsersAction[Any], name: str, help: str, common: argparse.ArgumentParser
) -> None:
    """Add `bind` or `unbind` (doors.cli.main.COMMANDS). Of the common options only
    --store, --node and --sysfs mean anything here, as the hook reads them: they act on
    this host's sysfs, never a snapshot or a libvirt connection."""
    del common
    import argparse

    from ..options import BIND
    from .common import add_options

    if name == "bind":
        p = sub.add_parser(
            name,
            help=help,
            description="Bind pci mappings' devices, and the other endpoints of their IOMMU "
            "groups, to vfio-pci, wherever each device is found now. --boot binds every "
            f"mapping marked vfio='boot' ({UNIT} runs it at boot).",
        )
        p.add_argument("names", nargs="*", metavar="NAME", help="pci mappings to bind")
        p.add_argument(
            "--boot",
            action="store_true",
            help="bind every pci mapping marked vfio='boot' that has an entry on this node",
        )
        p.add_argument(
            "--dry-run", action="store_true", help="print the sysfs writes, write nothing"
        )
        add_options(p, BIND)
        p.set_defaults(handler=cmd_bind)
    else:
        p = sub.add_parser(name, help=help)
        p.add_argument("names", nargs="+", metavar="NAME", help="pci mappings to give back")
        p.add_argument(
            "--dry-run", action="store_true", help="print the sysfs writes, write nothing"
        )
        # Where to look for processes holding a group open; for tests.
        p.add_argument("--proc", default="/proc", help=argparse.SUPPRESS)
        add_options(p, BIND)
        p.set_defaults(handler=cmd_unbind)
