"""The hook's operations (SPEC §6), imported by `hook.main` only for domains with `hr` metadata.

Kept apart from `hook` so that the no-metadata path loads nothing but `os` and `sys`;
this module may import the package, but never lxml, xmlschema,
libvirt, argparse or pyudev.
"""

from __future__ import annotations

import os

from .records import frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO, TextIO

    from .scsi import ScsiInventory
    from .store import Store
    from .sysfs import SysfsInventory
    from .vfio import Writer
    from .xmldoc import Document

CONFIG_PATH = "/etc/hostdev-resolver/hook.toml"
CONFIG_ENV = "HOSTDEV_RESOLVER_CONFIG"
DEFAULT_STORE = "/etc/hostdev-resolver/mappings.xml"
DEFAULT_STATE_DIR = "/run/hostdev-resolver"
_KEYS = {
    "store": str,
    "node": str,
    "sysfs": str,
    "dev_root": str,
    "state_dir": str,
    "trust_any_owner": bool,
    "cache_max_age": int,
}

if TYPE_CHECKING:
    WriterFactory = Callable[[str], Writer]


@frozen
class HookConfig:
    store: str = DEFAULT_STORE
    node: str | None = None  # None: this host's short name
    sysfs: str = "/sys"
    dev_root: str = "/dev"  # where /dev/disk/by-id lives, for LUN disks
    state_dir: str = DEFAULT_STATE_DIR
    trust_any_owner: bool = False
    # An agent's cache (docs/cluster.md) older than this many seconds is logged.
    cache_max_age: int = 300
    path: str | None = None  # the file it came from, None when there was none


def load_config(environ: dict[str, str] | os._Environ[str]) -> HookConfig:
    """The hook's TOML config; a missing file means the defaults (SPEC §6)."""
    from .errors import InputError, Location

    path = environ.get(CONFIG_ENV) or CONFIG_PATH
    try:
        if os.geteuid() == 0:
            # The config decides what the hook trusts (trust_any_owner relaxes only the
            # store), so as root it is always read the trusted way.
            from .store import read_trusted

            data = read_trusted(path, "hook config")
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except FileNotFoundError:
        return HookConfig()
    except OSError as exc:
        raise InputError(
            f"cannot read the hook config: {exc.strerror}", where=Location(path)
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"the hook config is not UTF-8: {exc}", where=Location(path)) from None
    table = flat_toml(text)
    if table is None:
        table = _full_toml(text, path)
    values: dict[str, object] = {}
    for key, value in table.items():
        kind = _KEYS.get(key)
        if kind is None:
            raise InputError(
                f"unknown key {key!r} in the hook config",
                where=Location(path),
                fix=f"the keys are {', '.join(_KEYS)}",
            )
        if not isinstance(value, kind):
            raise InputError(f"{key} = {value!r} must be a {kind.__name__}", where=Location(path))
        values[key] = value
    return HookConfig(
        store=str(values.get("store", DEFAULT_STORE)),
        node=str(values["node"]) if "node" in values else None,
        sysfs=str(values.get("sysfs", "/sys")),
        dev_root=str(values.get("dev_root", "/dev")),
        state_dir=str(values.get("state_dir", DEFAULT_STATE_DIR)),
        trust_any_owner=bool(values.get("trust_any_owner", False)),
        cache_max_age=int(str(values.get("cache_max_age", 300))),
        path=path,
    )


def _full_toml(text: str, path: str) -> dict[str, object]:
    import tomllib

    from .errors import InputError, Location

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(
            f"the hook config is not valid TOML: {exc}",
            where=Location(path),
            fix="see docs/hook.md for its keys",
        ) from None


_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def flat_toml(text: str) -> dict[str, object] | None:
    """The flat `key = "string" | 'string' | true | false` TOML the hook config is made of.

    tomllib imports re, typing, string and datetime: more than the hook's whole budget
    for a start. This reads the common case; for anything else (escapes, tables,
    arrays, numbers, malformed lines) it returns None and the caller uses tomllib, so
    every valid TOML file means the same as it would to tomllib, and every error is
    tomllib's.
    """
    # TOML's own rules, narrowed: lines end at "\n" (or "\r\n") only, whitespace is
    # space and tab only, keys are ASCII, and a control character anywhere (tomllib
    # refuses them) or any other line separator sends the file to tomllib instead.
    table: dict[str, object] = {}
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in line):
            return None
        if any(c in line for c in "\x85\u2028\u2029"):
            return None  # valid TOML, but splitlines()-style readers disagree: be sure
        line = line.strip(" \t")
        if not line or line.startswith("#"):
            continue
        key, sep, rest = line.partition("=")
        key, rest = key.strip(" \t"), rest.strip(" \t")
        if not sep or not key or not all(c in _BARE_KEY for c in key) or key in table:
            return None
        if rest[:1] in ('"', "'"):
            quote = rest[0]
            end = rest.find(quote, 1)
            if end < 0 or (quote == '"' and "\\" in rest[:end]):
                return None
            value: object = rest[1:end]
            tail = rest[end + 1 :].strip(" \t")
        else:
            word, _, tail = rest.partition("#")
            word = word.strip(" \t")
            if word.isascii() and word.isdigit() and (word == "0" or word[0] != "0"):
                value = int(word)
            elif word in ("true", "false"):
                value = word == "true"
            else:
                return None
            tail = "#" + tail if tail else ""
        if tail and not tail.startswith("#"):
            return None
        table[key] = value
    return table


class Log:
    """One line per decision: to syslog when /dev/log exists, else to stderr.

    Problems that refuse a start always go to stderr as well, since that is what
    libvirt shows the user ("Hook script execution failed: ... <stderr>").
    """

    def __init__(self, domain: str, stderr: TextIO, dev_log: str = "/dev/log") -> None:
        self.domain = domain
        self.stderr = stderr
        self.to_syslog = os.path.exists(dev_log)
        if self.to_syslog:
            import syslog

            syslog.openlog("hostdev-resolver", syslog.LOG_PID, syslog.LOG_DAEMON)

    def _syslog(self, line: str, error: bool) -> None:
        import syslog

        syslog.syslog(syslog.LOG_ERR if error else syslog.LOG_INFO, f"{self.domain}: {line}")

    def info(self, line: str) -> None:
        if self.to_syslog:
            self._syslog(line, False)
        else:
            print(f"hostdev-resolver: {self.domain}: {line}", file=self.stderr)

    def problem(self, line: str) -> None:
        """A line that fails the operation: on stderr, and in syslog when there is one."""
        if self.to_syslog:
            self._syslog(line, True)
        print(line, file=self.stderr)

    def warning(self, line: str) -> None:
        """A problem that does not fail the operation (release, reconnect)."""
        if self.to_syslog:
            self._syslog(line, True)
        else:
            print(f"hostdev-resolver: {self.domain}: {line}", file=self.stderr)


@frozen
class _Context:
    config: HookConfig
    doc: Document
    store: Store
    inventory: SysfsInventory
    node: str
    cache: tuple[int, float] | None = None  # an agent cache's (revision, synced time)


def has_resolution(data: bytes, domain: str) -> bool:
    """Does the domain carry an `hr:resolution` record? XML we cannot parse counts as
    ours, so the operation reports it instead of passing it silently."""
    from .errors import InputError
    from .metadata import find_resolution_element
    from .xmldoc import parse_bytes

    try:
        doc = parse_bytes(data, f"domain {domain} (hook stdin)")
    except InputError:
        return True
    return find_resolution_element(doc) is not None


def context(config: HookConfig, data: bytes, domain: str) -> _Context:
    from .cachefile import read_header, select, view_path
    from .errors import InputError, Location
    from .hostsource import this_node
    from .store import parse_store, read_store_bytes, read_trusted
    from .sysfs import SysfsInventory
    from .xmldoc import parse_bytes

    def read(path: str, view: bool = False) -> bytes:
        if config.trust_any_owner:
            if view:  # a missing view is normal: FileNotFoundError, not a store error
                with open(path, "rb") as handle:
                    return handle.read()
            return read_store_bytes(path)
        return read_trusted(path, "mapping store")

    node = config.node or this_node()
    doc = parse_bytes(data, f"domain {domain} (hook stdin)")
    store = None
    try:
        # An agent's view of this node (docs/cluster.md), when there is one and it
        # has every mapping the domain names: only those are parsed. Else the whole
        # store or cache.
        path = view_path(config.store, node)
        store_data = read(path, view=True)
        names = _referenced(doc)
        part = select(store_data, names) if names is not None else None
        if part is not None:
            store = parse_store(parse_bytes(part, path))
    except FileNotFoundError:
        pass
    if store is None:
        try:
            store_data = read(config.store)
        except FileNotFoundError:
            raise InputError(
                "mapping store not found",
                where=Location(config.store),
                fix="set 'store' in the hook config, or create it with 'hostdev-resolver map add'",
            ) from None
        store = parse_store(parse_bytes(store_data, config.store))
    return _Context(config, doc, store, SysfsInventory(config.sysfs), node, read_header(store_data))


def _referenced(doc: Document) -> set[str] | None:
    """The mapping names the domain's resolution record uses (None: no record)."""
    from .metadata import read_resolution

    resolution = read_resolution(doc)
    if resolution is None:
        return None
    return {name for r in resolution.records if (name := getattr(r, "map", None)) is not None}


def note_cache_age(ctx: _Context, log: Log, now: float | None = None) -> None:
    """Say how old an agent's cache is when it is older than the configured bound: the
    node may be cut off from etcd (it still starts guests from the last cache)."""
    if ctx.cache is None:
        return
    import time

    revision, synced = ctx.cache
    age = (time.time() if now is None else now) - synced
    if age > ctx.config.cache_max_age:
        log.warning(
            f"the store cache {ctx.config.store} is {int(age)} s old (etcd revision "
            f"{revision}; bound {ctx.config.cache_max_age} s): is the agent on this node "
            "running and connected to etcd?"
        )


def scsi_inventory(ctx: _Context) -> ScsiInventory | None:
    """The node's SCSI view, read only for domains with LUN or SCSI records: it scans
    every SCSI device, and PCI/USB guests must not pay for that on every start."""
    from .metadata import read_resolution

    resolution = read_resolution(ctx.doc)
    if resolution is None or all(r.kind in ("pci", "usb") for r in resolution.records):
        return None
    from .scsi import read_scsi_inventory

    return read_scsi_inventory(ctx.config.sysfs, ctx.config.dev_root)


def prepare(ctx: _Context, log: Log, writer_factory: WriterFactory) -> int:
    from .sysfs import SysfsReader
    from .verification import verify_domain
    from .vfio import StateFile, bind_plan, plan_binding

    note_cache_age(ctx, log)
    findings = verify_domain(ctx.doc, ctx.store, ctx.inventory, ctx.node, scsi=scsi_inventory(ctx))
    bad = [f for f in findings if not f.ok]
    for f in findings:
        if f.ok:
            log.info(f"{f.map}: ok: {f.message}")
    for f in bad:
        log.problem(f"hostdev-resolver: {f}")
    if bad:
        return 1
    plan = plan_binding(ctx.doc, ctx.store, ctx.inventory)
    if not plan.changes:
        return 0
    writer = writer_factory(ctx.config.sysfs)
    bind_plan(
        plan,
        writer,
        SysfsReader(ctx.config.sysfs),
        StateFile(ctx.config.state_dir, plan.domain),
    )
    for change in plan.changes:
        log.info(
            f"{change.address}: bound to vfio-pci (was {change.driver or 'unbound'}; {change.reason})"
        )
    return 0


def release(config: HookConfig, domain: str, log: Log, writer_factory: WriterFactory) -> int:
    from .sysfs import SysfsReader
    from .vfio import StateFile
    from .vfio import release as give_back

    state = StateFile(config.state_dir, domain)
    if not state.path.exists():
        return 0
    writer = writer_factory(config.sysfs)
    problems = give_back(state, writer, SysfsReader(config.sysfs))
    for problem in problems:
        log.warning(f"release: {problem}")
    if not problems:
        log.info(f"release: original drivers restored ({len(writer_writes(writer))} writes)")
    return 0


def writer_writes(writer: object) -> list[object]:
    writes = getattr(writer, "writes", [])
    return list(writes) if isinstance(writes, list) else []


def filter_xml(ctx: _Context, data: bytes, log: Log, stdout: BinaryIO) -> int:
    from .resolution import resolve_domain

    note_cache_age(ctx, log)
    result = resolve_domain(ctx.doc, ctx.store, ctx.inventory, ctx.node, scsi=scsi_inventory(ctx))
    for warning in result.warnings:
        log.warning(warning)
    if result.data != data:
        stdout.write(result.data)
        stdout.flush()
        log.info(f"re-resolved for node {ctx.node}")
    return 0


def real_writer(root: str) -> Writer:
    from .vfio import SysfsWriter

    return SysfsWriter(root)
