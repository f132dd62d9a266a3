"""The cluster view: every mapping on every node, before anyone tries to start there.

`hostdev-resolver map check --connect hv1=qemu+ssh://hv1/system --connect …` opens each
node's inventory (libvirt node devices, snapshots, a sysfs tree) and says, per mapping
and node entry: ok, mismatch (what differs), shifted (to where), missing, ambiguous, no
entry for that node, or node unreachable. Exit 0 only when every row is ok.

`check_mappings` is pure (store + opened nodes in, rows out); only `open_nodes` talks
to hosts. Sources that cannot show a field (libvirt shows no PCI subsystem IDs, DSN or
slot names, see `nodedev`) are compared on what they show; the row lists what was left
unchecked, which the hook verifies on the node at start.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...core.locate import (
    PciExpectation,
    Status,
    UsbExpectation,
    describe_pci,
    describe_usb,
    locate_pci,
    locate_usb,
    observable_pci,
    observable_usb,
    unobserved_pci,
    unobserved_usb,
)
from ...host.hostsource import HostSource, default_store, this_node
from ...host.storeread import load_store
from ...model.errors import HostAccessError, UsageError
from ...model.records import asdict, frozen
from ...xml.store import Mapping, PciEntry, PciMapping, Store, UsbEntry, UsbMapping

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from ...model.inventory import HostInventory

UNREACHABLE = "unreachable"
NO_ENTRY = "no-entry"
NOT_PER_NODE = "not-per-node"
STALE = "stale"  # an agent's inventory older than the bound: shown, not a failure
DEFAULT_MAX_AGE = 300


@frozen
class NodeView:
    """One node as a source showed it, or why it could not be reached."""

    node: str
    inventory: HostInventory | None
    error: str | None = None
    age: float | None = None  # seconds since an agent published it (cluster store)
    stale: bool = False


@frozen
class CheckRow:
    mapping: str
    kind: str
    node: str
    status: str
    detail: str
    address: str | None = None  # where the store expects the device
    found_at: str | None = None  # where it is now, when it moved
    unchecked: tuple[str, ...] = ()  # recorded fields this source cannot show
    age: float | None = None  # seconds since the node's agent published its inventory

    @property
    def ok(self) -> bool:
        return self.status in (Status.OK, NOT_PER_NODE, STALE)


def parse_connect(spec: str) -> tuple[str | None, str]:
    """`hv2=qemu+ssh://hv2/system` -> ("hv2", URI); a bare URI -> (None, URI).

    Only an '=' before the URI scheme's ':' names a node (URIs may hold '=' in queries).
    """
    head = spec.split(":", 1)[0]
    if "=" in head:
        node, _, uri = spec.partition("=")
        if not node or not uri:
            raise UsageError(f"--connect {spec!r}: expected [NODE=]URI")
        return node, uri
    return None, spec


def _recorded_blind(entry: PciEntry, blind: frozenset[str]) -> tuple[str, ...]:
    ident = entry.identity
    recorded = {
        "subsystem": ident.subsystem is not None,
        "serial": ident.serial is not None,
        "physical_slot": entry.physical_slot is not None,
        "port_path": entry.port_path is not None,
    }
    return tuple(sorted(f for f in blind if recorded.get(f)))


def _pci_row(mapping: PciMapping, entry: PciEntry, view: NodeView) -> CheckRow:
    assert view.inventory is not None
    blind = unobserved_pci(view.inventory)
    expected = observable_pci(
        PciExpectation(
            entry.address,
            entry.identity,
            entry.iommu_group,
            entry.physical_slot,
            entry.port_path,
        ),
        blind,
    )
    loc = locate_pci(expected, view.inventory)
    found = loc.found.address if loc.status == Status.SHIFTED and loc.found else None
    return CheckRow(
        mapping.name,
        "pci",
        view.node,
        loc.status,
        describe_pci(mapping.name, view.node, loc),
        str(entry.address),
        str(found) if found else None,
        _recorded_blind(entry, blind),
    )


def _usb_row(mapping: UsbMapping, entry: UsbEntry, view: NodeView) -> CheckRow:
    assert view.inventory is not None
    blind = unobserved_usb(view.inventory)
    expected = observable_usb(UsbExpectation(entry.identity, port_path=entry.port_path), blind)
    loc = locate_usb(expected, view.inventory)
    at = f"bus {loc.found.bus} device {loc.found.device}" if loc.found is not None else None
    recorded = {
        "serial": entry.identity.serial is not None,
        "port_path": entry.port_path is not None,
    }
    # A USB entry records no bus/device (they change on replug), so "shifted" cannot
    # happen here: present is ok.
    return CheckRow(
        mapping.name,
        "usb",
        view.node,
        loc.status,
        describe_usb(mapping.name, view.node, loc) + (f" at {at}" if at else ""),
        None,
        None,
        tuple(sorted(f for f in blind if recorded.get(f))),
    )


def check_mapping(mapping: Mapping, views: Sequence[NodeView]) -> list[CheckRow]:
    if not isinstance(mapping, PciMapping | UsbMapping):
        return [
            CheckRow(
                mapping.name,
                mapping.kind,
                "*",
                NOT_PER_NODE,
                f"{mapping.name}: a {mapping.kind} mapping names storage by WWN on every node; "
                "check it with 'hostdev-resolver validate' on the node",
            )
        ]
    rows: list[CheckRow] = []
    for view in views:
        if view.inventory is None:
            rows.append(
                CheckRow(
                    mapping.name,
                    mapping.kind,
                    view.node,
                    UNREACHABLE,
                    f"node {view.node} is unreachable: {view.error}",
                )
            )
            continue
        entries: Sequence[PciEntry | UsbEntry] = mapping.entries_on(view.node)
        if not entries:
            how = "--address BDF" if mapping.kind == "pci" else "--vendor V --product P"
            rows.append(
                CheckRow(
                    mapping.name,
                    mapping.kind,
                    view.node,
                    NO_ENTRY,
                    f"{mapping.name}: the store has no entry for node {view.node}; "
                    f"add one with 'hostdev-resolver map add {mapping.kind} {mapping.name} "
                    f"--node {view.node} {how}'",
                )
            )
            continue
        for entry in entries:
            if isinstance(mapping, PciMapping) and isinstance(entry, PciEntry):
                rows.append(_pci_row(mapping, entry, view))
            elif isinstance(mapping, UsbMapping) and isinstance(entry, UsbEntry):
                rows.append(_usb_row(mapping, entry, view))
    return rows


def check_mappings(store: Store, views: Sequence[NodeView]) -> list[CheckRow]:
    """One row per mapping and node (per entry, for pools). Pure."""
    rows: list[CheckRow] = []
    by_node = {v.node: v for v in views}
    for mapping in store.mappings.values():
        for row in check_mapping(mapping, views):
            view = by_node.get(row.node)
            if view is not None and view.age is not None:
                row = _aged(row, view)
            rows.append(row)
    return rows


def _aged(row: CheckRow, view: NodeView) -> CheckRow:
    from ...model.records import replace

    age = int(view.age or 0)
    if view.stale:
        return replace(
            row,
            status=STALE,
            detail=f"node {view.node}'s agent last published {age} s ago; "
            f"that inventory said: {row.status}: {row.detail}",
            age=view.age,
        )
    return replace(row, detail=f"{row.detail} (inventory {age} s old)", age=view.age)


def published_views(store: Any, max_age: float, now: float | None = None) -> list[NodeView]:
    """The nodes as their agents last published them under the etcd store."""
    import time

    from ...host.snapshot import HostSnapshot
    from ...model.errors import Location

    now = time.time() if now is None else now
    views = []
    for item in store.inventories():
        inventory = HostSnapshot.from_json(
            item.inventory, Location(f"{store.url} inventory of {item.node}")
        )
        age = max(0.0, now - item.published)
        views.append(NodeView(item.node, inventory, age=age, stale=age > max_age))
    return views


def sources_of(args: argparse.Namespace) -> list[HostSource]:
    out: list[HostSource] = []
    for spec in args.connect or ():
        node, uri = parse_connect(spec)
        out.append(HostSource("libvirt", uri, node))
    hosts = args.host or ()
    for path in hosts:
        out.append(HostSource("snapshot", path, args.node if len(hosts) == 1 else None))
    if args.sysfs:
        out.append(HostSource("sysfs", args.sysfs, args.node))
    if not out:
        out.append(HostSource("sysfs", "/sys", args.node))
    return out


def open_nodes(sources: Sequence[HostSource]) -> list[NodeView]:
    """Open every source; a node that cannot be reached becomes a row, not a failure."""
    views: list[NodeView] = []
    for source in sources:
        try:
            inventory, node = source.open()
        except HostAccessError as exc:
            name = source.node or (source.location if source.kind == "libvirt" else this_node())
            views.append(NodeView(name, None, exc.what))
            continue
        views.append(NodeView(node, inventory))
    return views


def render_text(rows: Sequence[CheckRow]) -> str:
    if not rows:
        return "the store has no mappings\n"
    width_map = max(7, *(len(r.mapping) for r in rows))
    width_node = max(4, *(len(r.node) for r in rows))
    lines = [f"{'MAPPING':<{width_map}}  {'NODE':<{width_node}}  {'STATUS':<12} DETAIL"]
    for r in rows:
        detail = r.detail
        if r.unchecked and r.status in (Status.OK, Status.SHIFTED):
            detail += (
                f" (not visible through this source, verified at start: {', '.join(r.unchecked)})"
            )
        lines.append(f"{r.mapping:<{width_map}}  {r.node:<{width_node}}  {r.status:<12} {detail}")
    bad = sum(1 for r in rows if not r.ok)
    stale = sum(1 for r in rows if r.status == STALE)
    lines.append("")
    lines.append(
        f"{len(rows) - bad - stale} ok, " + (f"{stale} stale, " if stale else "") + f"{bad} not ok"
    )
    return "\n".join(lines) + "\n"


def rows_to_json(rows: Sequence[CheckRow]) -> list[dict[str, Any]]:
    return [asdict(r) | {"ok": r.ok} for r in rows]


def cmd_map_check(args: argparse.Namespace) -> int:
    """Exit 0 all ok; 1 a device is wrong somewhere; 3 nothing was wrong but some node
    could not be looked at (SPEC §5: libvirt unreachable), so scripts can tell apart
    "the devices are wrong" from "we could not look"."""
    from ...host.storebackend import etcd_store, is_etcd

    if is_etcd(args):
        cluster = etcd_store(args)
        store = cluster.load()
        if args.connect or args.host or args.sysfs:
            views = open_nodes(sources_of(args))
        else:
            views = published_views(cluster, args.max_age)
            if not views:
                raise HostAccessError(
                    f"no node has published its inventory under {cluster.url}",
                    fix="start 'hostdev-resolver agent' on the nodes, or give --connect",
                )
    else:
        store = load_store(str(args.store or default_store()))
        views = open_nodes(sources_of(args))
    names = [v.node for v in views]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(
            f"node {', '.join(twice)} is given more than once",
            fix="give each node one source (--connect NODE=URI, --host, --sysfs --node)",
        )
    rows = check_mappings(store, views)
    if args.format == "json":
        print(json.dumps(rows_to_json(rows), indent=2))
    else:
        print(render_text(rows), end="")
    if all(r.ok for r in rows):
        return 0
    if all(r.ok or r.status == UNREACHABLE for r in rows):
        return 3
    return 1


def register(sub: Any, name: str, help: str, common: argparse.ArgumentParser) -> None:
    """Add `map check` to the `map` subcommands (doors.cli.maps.register).

    `common` is deliberately not a parent: there `--host` and `--connect` exclude each
    other, while `map check` looks at several nodes from any mix of sources
    (doors.options.MAP_CHECK_NODES).
    """
    del common
    p = sub.add_parser(
        name,
        help=help,
        description=(
            "Check every mapping against every node given (--connect, --host, --sysfs; "
            "the live host when none is). Exit 0 when every row is ok, 1 otherwise."
        ),
    )
    from ..options import MAP_CHECK_NODES, MAP_CHECK_STORE
    from .common import add_options

    add_options(p, MAP_CHECK_STORE)
    p.add_argument(
        "--max-age",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_MAX_AGE,
        help=f"a published inventory older than this is a 'stale' row (default {DEFAULT_MAX_AGE})",
    )
    add_options(p, MAP_CHECK_NODES)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=cmd_map_check)
