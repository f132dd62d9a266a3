"""The per-node agent of a cluster store (SPEC §7a, docs/cluster.md).

It keeps a cache file an exact copy of the etcd store in file form (plus this node's
view of it, see `cachefile`), follows the store with an etcd watch, and publishes this
node's inventory under PREFIX/nodes/NODE: at start, every `publish_every` seconds
(so `map check` can tell a live agent from a dead one), and when udev reports a PCI,
USB or SCSI device added, removed or changed. When etcd cannot be reached it keeps
the last good cache and retries with a growing delay; when etcd is back it reads the
whole store again (which includes every write made while it was away).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..host.cachefile import header, indexed, view_path
from ..host.etcd import Compacted, KeyValue, prefix_end
from ..host.etcdstore import EtcdStore, element_spans, file_form
from ..model.errors import HostAccessError, InputError, Location
from ..xml.store import Mapping, PciMapping, UsbMapping
from .cli.mapcheck import NodeView, check_mapping

Inventory = Callable[[], tuple[Any, dict[str, Any]]]  # (HostInventory, its JSON document)


class Agent:
    def __init__(
        self,
        store: EtcdStore,
        cache: str,
        node: str,
        inventory: Inventory,
        *,
        log: TextIO | None = None,
        heartbeat: float = 30.0,
        publish_every: float = 60.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.store = store
        self.cache = cache
        self.node = node
        self.inventory = inventory
        self.out = log or sys.stderr
        self.heartbeat = heartbeat
        self.publish_every = publish_every
        self.max_backoff = max_backoff
        self.revision = 0
        self.elements: dict[str, bytes] = {}
        self.mappings: dict[str, Mapping] = {}
        self.statuses: dict[tuple[str, str], str] = {}
        self.republish = threading.Event()
        self.stop = threading.Event()
        self.last_publish = 0.0
        self.last_sync = 0.0

    def log(self, line: str) -> None:
        print(f"hostdev-resolver agent: {line}", file=self.out, flush=True)

    # -- the cache -------------------------------------------------------------------

    def _accept(self, kvs: list[KeyValue]) -> None:
        """Take the keys that hold a valid mapping; log and skip the others, keeping
        what the cache had for them (one bad key never empties the cache)."""
        good: dict[str, tuple[bytes, Mapping]] = {}
        for kv in kvs:
            name = kv.key[len(self.store.mappings_prefix) :].decode(errors="replace")
            try:
                good[name] = (kv.value, self.store.check_element(kv, schema=False))
            except InputError as exc:
                self.log(f"{exc.message}; keeping the cached version of {name!r}")
        try:
            # store.xsd once for the batch: building the schema is the expensive part.
            self.store.check_schema({n: v for n, (v, _) in good.items()})
        except InputError:
            for kv in kvs:
                name = kv.key[len(self.store.mappings_prefix) :].decode(errors="replace")
                if name in good:
                    try:
                        self.store.check_element(kv)
                    except InputError as exc:
                        self.log(f"{exc.message}; keeping the cached version of {name!r}")
                        del good[name]
        for name, (value, mapping) in good.items():
            self.elements[name] = value
            self.mappings[name] = mapping

    def sync(self) -> None:
        """Read the whole store and rewrite the cache."""
        prefix = self.store.mappings_prefix
        revision, kvs = self.store.client.range(prefix, prefix_end(prefix))
        names = {kv.key[len(prefix) :].decode(errors="replace") for kv in kvs}
        for gone in set(self.elements) - names:
            del self.elements[gone]
            self.mappings.pop(gone, None)
        self._accept(kvs)
        self.revision = revision
        self.write_cache()

    def apply(self, events: list[Any]) -> None:
        prefix = self.store.mappings_prefix
        latest: dict[bytes, Any] = {ev.key: ev for ev in events}  # last change per key
        puts = []
        for ev in latest.values():
            if ev.value is None:
                name = ev.key[len(prefix) :].decode(errors="replace")
                self.elements.pop(name, None)
                self.mappings.pop(name, None)
            else:
                puts.append(KeyValue(ev.key, ev.value, ev.mod_revision, 0))
        self._accept(puts)
        self.revision = max(self.revision, *(ev.mod_revision for ev in events))
        self.write_cache()

    def _on_node(self, mapping: Mapping) -> bool:
        if isinstance(mapping, PciMapping | UsbMapping):
            return any(e.node == self.node for e in mapping.entries)
        return True

    def write_cache(self) -> None:
        now = time.time()
        head = header(self.revision, now, str(self.store.url))
        _replace(self.cache, head + file_form(self.elements))
        view = {n: e for n, e in self.elements.items() if self._on_node(self.mappings[n])}
        body = indexed(file_form(view), element_spans(view))
        _replace(view_path(self.cache, self.node), head + body)
        self.last_sync = now

    # -- the inventory -----------------------------------------------------------------

    def publish(self) -> None:
        inventory, doc = self.inventory()
        self.store.publish(self.node, doc)
        self.last_publish = time.time()
        self.republish.clear()
        self.note_shifts(inventory)

    def note_shifts(self, inventory: Any) -> None:
        """One line per mapped device of this node whose state changed since last time."""
        view = NodeView(self.node, inventory)
        now: dict[tuple[str, str], str] = {}
        details: dict[tuple[str, str], str] = {}
        for mapping in self.mappings.values():
            if not isinstance(mapping, PciMapping | UsbMapping) or not self._on_node(mapping):
                continue
            for row in check_mapping(mapping, [view]):
                key = (row.mapping, row.address or row.detail)
                now[key] = row.status
                details[key] = row.detail
        for key, status in now.items():
            before = self.statuses.get(key)
            if before is not None and before != status:
                self.log(f"{key[0]} on {self.node}: {before} -> {status}: {details[key]}")
            elif before is None and self.statuses and status != "ok":
                self.log(f"{key[0]} on {self.node}: {status}: {details[key]}")
        self.statuses = now

    # -- the loop ------------------------------------------------------------------------

    def once(self) -> None:
        self.sync()
        self.publish()

    def run(self) -> int:
        backoff = 0.2
        down_since: float | None = None
        watch_udev(self.republish, self.log)
        while not self.stop.is_set():
            try:
                self.once()
                if down_since is not None:
                    self.log(
                        f"etcd reachable again after {time.time() - down_since:.0f} s; "
                        f"cache at revision {self.revision}"
                    )
                    down_since = None
                backoff = 0.2
                self._follow()
            except Compacted:
                continue  # read everything again
            except HostAccessError as exc:
                if down_since is None:
                    down_since = time.time()
                    self.log(
                        f"{exc.what}; keeping the cache {self.cache} at revision "
                        f"{self.revision}, retrying"
                    )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        return 0

    def _follow(self) -> None:
        prefix = self.store.mappings_prefix
        while not self.stop.is_set():
            # The watch ends after a second without events, so udev requests and the
            # heartbeat are served at least once a second; re-creating it is cheap.
            for events in self.store.client.watch(
                prefix, prefix_end(prefix), self.revision + 1, idle=1.0
            ):
                self.apply(events)
            now = time.time()
            if self.republish.is_set() or now - self.last_publish >= self.publish_every:
                self.publish()
            if now - self.last_sync >= self.heartbeat:
                # The watch was just re-created, so etcd answered: the cache is current.
                self.write_cache()


def watch_udev(flag: threading.Event, log: Callable[[str], None]) -> None:
    """Set `flag` when udev reports a PCI/USB/SCSI device added, removed or changed."""
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        for subsystem in ("pci", "usb", "scsi"):
            monitor.filter_by(subsystem)
        monitor.start()
    except (ImportError, OSError, ValueError) as exc:
        log(f"udev events unavailable ({exc}); republishing on the timer only")
        return

    def loop() -> None:
        for device in iter(monitor.poll, None):
            if device.action in ("add", "remove", "change"):
                flag.set()

    threading.Thread(target=loop, name="udev", daemon=True).start()


def _replace(path: str, data: bytes) -> None:
    """Atomically, readable and writable by its owner only (the hook runs as root)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".cache.", dir=directory)
    except OSError as exc:
        raise InputError(
            f"cannot write the cache: {exc.strerror}",
            where=Location(path),
            fix="create its directory, writable by root only",
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
