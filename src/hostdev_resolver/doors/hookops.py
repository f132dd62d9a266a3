"""The hook's operations (SPEC §6), imported by `hook.main` only for domains with `hr` metadata.

Kept apart from `hook` so that the no-metadata path loads nothing but `os` and `sys`;
this module may import the package, but never lxml, xmlschema,
libvirt, argparse or pyudev.
"""

from __future__ import annotations

import os

from ..host.storeread import DEFAULT_PATH as DEFAULT_STORE
from ..model.records import field, frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO, TextIO

    from ..core.verification import Finding
    from ..core.vfioplan import BindingPlan
    from ..host.sysfs import SysfsInventory
    from ..host.variants import VariantDrivers
    from ..host.vfio import Writer
    from ..model.errors import InputError, RefusedError
    from ..model.inventory import HostInventory
    from ..model.scsi import ScsiInventory
    from ..xml.record import Resolution
    from ..xml.store import Store
    from ..xml.xmldoc import Document

CONFIG_PATH = "/etc/hostdev-resolver/hook.toml"
CONFIG_ENV = "HOSTDEV_RESOLVER_CONFIG"
DEFAULT_STATE_DIR = "/run/hostdev-resolver"
DEFAULT_LOG_FILE = "/var/log/hostdev-resolver/hook.log"
_KEYS = {
    "store": str,
    "node": str,
    "sysfs": str,
    "dev_root": str,
    "state_dir": str,
    "trust_any_owner": bool,
    "log_file": str,
    "syslog": bool,
    "modules_alias": str,
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
    log_file: str = DEFAULT_LOG_FILE  # used when there is no syslog socket
    syslog: bool = True  # false: log_file only (hosts without syslog, tests)
    # An agent's cache (docs/cluster.md) older than this many seconds is logged.
    cache_max_age: int = 300
    path: str | None = None  # the file it came from, None when there was none
    # the kernel's modules.alias, for vfio variant drivers; None = the running kernel's
    modules_alias: str | None = None


def load_config(environ: dict[str, str] | os._Environ[str]) -> HookConfig:
    """The hook's TOML config; a missing file means the defaults (SPEC §6)."""
    from ..model.errors import InputError, Location

    path = environ.get(CONFIG_ENV) or CONFIG_PATH
    try:
        if os.geteuid() == 0:
            # The config decides what the hook trusts (trust_any_owner relaxes only the
            # store), so as root it is always read the trusted way.
            from ..host.storeread import read_trusted

            data = read_trusted(path, "hook config")
        else:
            from ..host.storeread import read_regular

            data = read_regular(path, "hook config")
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
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InputError(f"{key} = {value!r} must be a {kind.__name__}", where=Location(path))
        values[key] = value
    return HookConfig(
        store=str(values.get("store", DEFAULT_STORE)),
        node=str(values["node"]) if "node" in values else None,
        sysfs=str(values.get("sysfs", "/sys")),
        dev_root=str(values.get("dev_root", "/dev")),
        state_dir=str(values.get("state_dir", DEFAULT_STATE_DIR)),
        trust_any_owner=bool(values.get("trust_any_owner", False)),
        log_file=str(values.get("log_file", DEFAULT_LOG_FILE)),
        syslog=bool(values.get("syslog", True)),
        cache_max_age=age if isinstance(age := values.get("cache_max_age"), int) else 300,
        path=path,
        modules_alias=str(values["modules_alias"]) if "modules_alias" in values else None,
    )


def _full_toml(text: str, path: str) -> dict[str, object]:
    import tomllib

    from ..model.errors import InputError, Location

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
    lines = text.split("\n")
    for number, raw in enumerate(lines, 1):
        # A CR ends a line only before an LF: the last piece has none after it, and a
        # CR left in a line is a control character (tomllib refuses both).
        line = raw[:-1] if raw.endswith("\r") and number < len(lines) else raw
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
    """One line per decision, naming the program, the domain and the operation.

    To syslog through `dev_log` (facility daemon, ident hostdev-resolver); with no syslog
    socket (containers, minimal hosts) appended to the config's `log_file` (none before
    the config is read: a config that cannot be read names no file); on stderr only when
    neither can be written (the hook run by hand). libvirtd discards a hook's stderr
    when it succeeds, so stderr is no log. A problem that fails the operation also goes
    to stderr, once and plainly: libvirt shows that line to the user.

    The syslog datagram is written here rather than with the `logging` or `socket`
    modules: importing either costs the hook more than the rest of a start (`socket`
    alone pulls in `enum` and `selectors`).
    """

    def __init__(
        self,
        domain: str,
        op: str,
        stderr: TextIO,
        *,
        dev_log: str = "/dev/log",
        log_file: str | None = None,
    ) -> None:
        self.domain = domain
        self.op = op
        self.stderr = stderr
        self.dev_log: str | None = dev_log
        self.log_file = log_file
        self._socket: object = None

    def configure(self, config: HookConfig) -> None:
        self.log_file = config.log_file
        if not config.syslog:
            self.dev_log = None

    def _send(self, severity: int, line: str) -> bool:
        if self.dev_log is None or not os.path.exists(self.dev_log):
            return False
        import _socket
        import time

        # RFC 3164, as glibc's syslog(3) writes it to /dev/log; LOG_DAEMON is 3 << 3.
        stamp = time.strftime("%b %e %H:%M:%S")
        data = f"<{24 + severity}>{stamp} hostdev-resolver[{os.getpid()}]: {line}"
        try:
            if self._socket is None:
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
                sock.connect(self.dev_log)
                self._socket = sock
            self._socket.send(data.encode())  # type: ignore[attr-defined]
        except OSError:
            return False
        return True

    def _append(self, line: str) -> bool:
        if self.log_file is None:
            return False
        import time

        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        try:
            os.makedirs(os.path.dirname(self.log_file) or ".", mode=0o750, exist_ok=True)
            fd = os.open(
                self.log_file,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o640,
            )
        except OSError:
            return False
        try:
            os.write(fd, f"{stamp} hostdev-resolver[{os.getpid()}]: {line}\n".encode())
        except OSError:
            return False
        finally:
            os.close(fd)
        return True

    def _record(self, severity: int, text: str) -> bool:
        line = f"{self.domain}: {self.op}: {text}"
        return self._send(severity, line) or self._append(line)

    def info(self, text: str) -> None:
        if not self._record(6, text):
            print(f"hostdev-resolver: {self.domain}: {self.op}: {text}", file=self.stderr)

    def warning(self, text: str) -> None:
        """A problem that does not fail the operation (release, reconnect)."""
        if not self._record(4, text):
            print(f"hostdev-resolver: {self.domain}: {self.op}: {text}", file=self.stderr)

    def problem(self, text: str, *, logged: str | None = None) -> None:
        """A problem that fails the operation: `text` on stderr for libvirt to show,
        and `logged` (default the same) in the log."""
        self._record(3, logged if logged is not None else text)
        print(f"hostdev-resolver: {text}", file=self.stderr)


@frozen
class _Record:
    """The domain's `hr:resolution`, read once per hook call, where it is first needed
    (so a broken record is reported at the same point as ever)."""

    doc: Document
    read: list[Resolution | None] = field(default_factory=list, compare=False)

    def get(self) -> Resolution | None:
        if not self.read:
            from ..core.metadata import read_resolution

            self.read.append(read_resolution(self.doc))
        return self.read[0]


@frozen
class _Context:
    config: HookConfig
    doc: Document
    store: Store
    inventory: SysfsInventory
    node: str
    cache: tuple[int, float] | None = None  # an agent cache's (revision, synced time)
    record: _Record | None = None

    @property
    def resolution(self) -> Resolution | None:
        return (self.record or _Record(self.doc)).get()


@frozen
class Stdin:
    """The domain XML libvirt gave the hook, parsed once: the document, or the error
    parsing it raised (reported by the operation, not passed silently)."""

    doc: Document | None
    error: InputError | None = None

    @property
    def ours(self) -> bool:
        """Does the domain carry an `hr:resolution` record? XML we cannot parse counts
        as ours."""
        from ..xml.record import find_resolution_element

        return self.doc is None or find_resolution_element(self.doc) is not None


def read_stdin(data: bytes, domain: str) -> Stdin:
    from ..model.errors import InputError
    from ..xml.xmldoc import parse_bytes

    try:
        return Stdin(parse_bytes(data, f"domain {domain} (hook stdin)"))
    except InputError as exc:
        return Stdin(None, exc)


def context(config: HookConfig, data: bytes, domain: str, stdin: Stdin | None = None) -> _Context:
    """What an operation works on: the domain (`stdin`, parsed from `data` when not
    given), the store, the host and the node."""
    from ..host.cachefile import read_header, select, view_path
    from ..host.hostsource import this_node
    from ..host.storeread import read_regular, read_store_bytes, read_trusted
    from ..host.sysfs import SysfsInventory
    from ..model.errors import InputError, Location, RefusedError
    from ..xml.domain import domain_name
    from ..xml.record import needs_store, without_store
    from ..xml.store import parse_store
    from ..xml.xmldoc import parse_bytes

    if stdin is None:
        stdin = read_stdin(data, domain)
    if stdin.doc is None:
        assert stdin.error is not None
        raise stdin.error
    doc = stdin.doc
    record = _Record(doc)
    # <allow> is matched against the XML's <name>; the guest libvirt is starting is
    # the one it names in argv. They are the same for libvirt's own calls.
    named = domain_name(doc)
    if named != domain:
        raise RefusedError(
            f"the domain XML on stdin is named {named!r}, but libvirt runs the hook for "
            f"domain {domain!r}; not checked against another guest's name",
            fix="give the hook the XML of the domain it is run for",
        )
    node = config.node or this_node()
    if not needs_store(doc):  # hr:wwn only: the records name their LUNs themselves
        return _Context(
            config,
            doc,
            without_store(config.store),
            SysfsInventory(config.sysfs),
            node,
            record=record,
        )

    def read(path: str, view: bool = False) -> bytes:
        if config.trust_any_owner:
            if view:  # a missing view is normal: FileNotFoundError, not a store error
                return read_regular(path, "mapping store view")
            return read_store_bytes(path)
        return read_trusted(path, "mapping store")

    store = None
    try:
        # An agent's view of this node (docs/cluster.md), when there is one and it
        # has every mapping the domain names: only those are parsed. Else the whole
        # store or cache.
        path = view_path(config.store, node)
        store_data = read(path, view=True)
        names = _referenced(record.get())
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
    return _Context(
        config,
        doc,
        store,
        SysfsInventory(config.sysfs),
        node,
        read_header(store_data),
        record,
    )


def _referenced(resolution: Resolution | None) -> set[str] | None:
    """The mapping names the domain's resolution record uses (None: no record)."""
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
    from ..core.kinds import of_record

    resolution = ctx.resolution
    if resolution is None or not any(of_record(r).needs_scsi for r in resolution.records):
        return None
    from ..host.scsisysfs import read_scsi_inventory

    return read_scsi_inventory(ctx.config.sysfs, ctx.config.dev_root)


@frozen
class StartDecision:
    """Whether a guest may start: one finding per recorded device, then (when every
    device is fine) the vfio-pci binding plan or why binding is refused."""

    findings: tuple[Finding, ...]
    plan: BindingPlan | None = None
    refusal: RefusedError | None = None
    warnings: tuple[str, ...] = ()  # e.g. a device without a reset method (reset.py)

    @property
    def ok(self) -> bool:
        return self.refusal is None and all(f.ok for f in self.findings)


def decide_start(
    doc: Document,
    store: Store,
    inventory: HostInventory,
    node: str,
    scsi: ScsiInventory | None,
    variants: VariantDrivers | None = None,
    *,
    resolution: Resolution | None = None,
) -> StartDecision:
    """The hook's start-time decision, with no writes: `prepare begin` acts on it and
    `hostdev-resolver verify` prints it, so the two cannot disagree. `resolution`: the
    domain's record when the caller has read it already."""
    from ..core.reset import capability_checks
    from ..core.verification import unresolved_references, verify_domain
    from ..core.vfioplan import plan_binding
    from ..model.errors import RefusedError

    findings: tuple[Finding, ...] = (
        *unresolved_references(doc, node),
        *verify_domain(doc, store, inventory, node, scsi=scsi, resolution=resolution),
    )
    if not all(f.ok for f in findings):
        return StartDecision(findings)
    refusals, warned = capability_checks(doc, store, inventory, node, resolution=resolution)
    findings = (*findings, *refusals)
    warnings = tuple(warned)
    if refusals:
        return StartDecision(findings, warnings=warnings)
    try:
        return StartDecision(
            findings,
            plan_binding(doc, store, inventory, variants, resolution=resolution),
            warnings=warnings,
        )
    except RefusedError as exc:
        return StartDecision(findings, refusal=exc, warnings=warnings)


def finding_line(f: Finding) -> str:
    """A finding for the log: the status, then what and what to do (the log line names
    the domain already, so not the record's place in the stdin XML)."""
    return f"{f.status}: {f.message}" + (f" — {f.fix}" if f.fix else "")


def prepare(ctx: _Context, log: Log, writer_factory: WriterFactory) -> int:
    from ..host.sysfs import SysfsReader
    from ..host.variants import VariantDrivers, default_path
    from ..host.vfio import StateFile, bind_plan

    note_cache_age(ctx, log)
    variants = VariantDrivers.load(ctx.config.modules_alias or default_path())
    decision = decide_start(
        ctx.doc,
        ctx.store,
        ctx.inventory,
        ctx.node,
        scsi_inventory(ctx),
        variants,
        resolution=ctx.resolution,
    )
    for f in decision.findings:
        if f.ok:
            log.info(f.message)
    for warning in decision.warnings:
        log.warning(f"warning: {warning}")
    bad = [f for f in decision.findings if not f.ok]
    for f in bad:
        log.problem(str(f), logged=f"start refused: {finding_line(f)}")
    if decision.refusal is not None:
        refusal = decision.refusal.message
        log.problem(refusal, logged=f"start refused: {refusal}")
        return decision.refusal.exit_code
    plan = decision.plan
    if bad or plan is None:
        return 1
    if plan.empty:
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
            f"{change.address}: bound to {change.vfio_driver} (was {change.driver or 'unbound'}; {change.reason})"
        )
    for mdev in plan.mdevs:
        log.info(f"{mdev.map}: created mdev {mdev.uuid} ({mdev.mdev_type}) on {mdev.parent}")
    return 0


def release(config: HookConfig, domain: str, log: Log, writer_factory: WriterFactory) -> int:
    from ..host.sysfs import SysfsReader
    from ..host.vfio import StateFile
    from ..host.vfio import release as give_back

    state = StateFile(config.state_dir, domain)
    if not state.path.exists():
        return 0
    writer = writer_factory(config.sysfs)
    problems = give_back(state, writer, SysfsReader(config.sysfs))
    for problem in problems:
        log.warning(str(problem))
    if not problems:
        log.info(f"original drivers restored ({len(writer_writes(writer))} writes)")
    return 0


def writer_writes(writer: object) -> list[object]:
    writes = getattr(writer, "writes", [])
    return list(writes) if isinstance(writes, list) else []


def filter_xml(ctx: _Context, data: bytes, log: Log, stdout: BinaryIO) -> int:
    from ..core.resolution import resolve_domain

    note_cache_age(ctx, log)
    result = resolve_domain(
        ctx.doc,
        ctx.store,
        ctx.inventory,
        ctx.node,
        scsi=scsi_inventory(ctx),
        previous=ctx.resolution,
    )
    for warning in result.warnings:
        log.warning(warning)
    if result.data != data:
        stdout.write(result.data)
        stdout.flush()
        log.info(f"re-resolved for node {ctx.node}")
    return 0


def real_writer(root: str) -> Writer:
    from ..host.vfio import SysfsWriter

    return SysfsWriter(root)
