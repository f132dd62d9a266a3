"""`hostdev-virsh`: virsh with `hr:map` resolution on the way in (SPEC §7).

`define`, `create`, `attach-device` and `update-device` resolve the file for the node
behind the connection (and allocate guest addresses with `--policy`), then act through
libvirt-python on that connection. `edit` shows the domain with its `hr:map`
references restored, then resolves and defines what the editor saved. `start`
re-resolves pooled mappings to devices no other running guest holds, and devices that
moved where they can be followed safely (what the hook refuses as shifted), redefines,
then starts. Every other command line is handed to the real `virsh` unchanged (exec: same
output, same exit code).

Our options (`--store`, `--node`, `--sysfs`, `--policy`, `--spare-ports`,
`--numa-aware`) are taken out of the command line before anything reaches libvirt;
after the command name only for the commands we handle, so a pass-through command's
own options are never touched.

Exit codes follow SPEC §5: libvirt refusing an operation is 1 (shown in libvirt's
words), libvirt unreachable is 3, our own errors carry their own code.
"""

from __future__ import annotations

import os
import sys

from .. import __version__
from ..core.metadata import HR_NS, PciRecord, Resolution, UsbRecord, read_resolution
from ..core.resolution import element_of_record, needs_store, resolve_domain, without_store
from ..model.errors import (
    HostAccessError,
    HostdevError,
    InputError,
    Location,
    RefusedError,
    UsageError,
)
from ..model.pciaddress import decimal_digits
from ..model.records import field, frozen, mutable, replace
from ..xml.domain import devices_of, domain_name
from ..xml.store import PciMapping, Store, UsbMapping
from ..xml.xmldoc import Document, Splicer, parse_bytes, read_document
from .options import SPECS, WRAPPER

# Not typing.TYPE_CHECKING: `define` costs the interpreter's start-up plus what this
# module imports before virsh takes over (docs/wrapper.md, "Speed"); typing, argparse
# and urllib are each a sizeable part of that. For the same reason what only some
# commands need (claims of running guests, the default store path, etcd, libvirt) is
# imported where it is used.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Sequence
    from typing import Any, NoReturn

    from ..model.inventory import HostInventory
    from ..model.scsi import ScsiInventory

PROG = "hostdev-virsh"

# virsh's global options, as its getopt_long reads them (libvirt 9.0 tools/virsh.c,
# "+:c:d:e:hk:K:l:qrtvV"): short ones may be bundled (-qc URI), long ones abbreviated
# to any unique prefix (--conn URI). True: takes a value.
#
# Read by hand, not with getopt.getopt(argv, "+…", longs): `import getopt` imports
# gettext (and through it locale, re and enum), measured at +6.5 ms over a bare
# interpreter's 10 ms here (2026-12-01, medians of 40 interleaved runs), which alone is
# more than the whole resolution adds to `define` (issue 12). Our own options also
# come out of the command line wherever they are, which getopt cannot do with "+" (it
# stops at the command). tests/wrapper/test_cmdline.py has one test per getopt_long
# behaviour read here.
_VIRSH_SHORT = {
    "c": True, "d": True, "e": True, "k": True, "K": True, "l": True,
    "h": False, "q": False, "r": False, "t": False, "v": False, "V": False,
}  # fmt: skip
_VIRSH_LONG = {
    "connect": True, "debug": True, "escape": True, "keepalive-interval": True,
    "keepalive-count": True, "log": True,
    "help": False, "quiet": False, "readonly": False, "timing": False, "version": False,
}  # fmt: skip
_LONG_FOR = {"c": "connect", "q": "quiet", "r": "readonly"}

# Ours, with whether they take a value: the store and host options the doors share
# (doors.options), then the allocator's.
_OURS = {option[0]: SPECS[option[0]][0] is not None for option in WRAPPER}
_OURS |= {"--policy": True, "--spare-ports": True, "--numa-aware": False}
_HANDLED = {"define", "create", "attach-device", "update-device", "edit", "start"}


@frozen
class Invocation:
    """A hostdev-virsh command line, split into virsh's part and ours."""

    virsh_globals: tuple[str, ...]  # exactly as given, for pass-through
    uri: str | None
    readonly: bool
    quiet: bool
    command: str | None
    args: tuple[str, ...]
    ours: dict[str, str | bool] = field(default_factory=dict)


def _take_ours(argv: Sequence[str], i: int, ours: dict[str, str | bool]) -> int | None:
    """If argv[i] is one of our options, record it and return the next index."""
    name, eq, value = argv[i].partition("=")
    if name not in _OURS:
        return None
    if not _OURS[name]:
        ours[name] = True
        return i + 1
    if eq:
        ours[name] = value
        return i + 1
    if i + 1 >= len(argv):
        raise UsageError(f"{name} needs a value")
    ours[name] = argv[i + 1]
    return i + 2


def _virsh_long(token: str) -> str:
    """The full name of a long virsh option given by any unique prefix, as getopt_long."""
    name = token[2:].partition("=")[0]
    if name in _VIRSH_LONG:
        return name
    matches = [long for long in _VIRSH_LONG if long.startswith(name)]
    if len(matches) != 1:
        what = "ambiguous" if matches else "unknown"
        raise UsageError(f"{what} option --{name}", fix="see 'virsh --help'")
    return matches[0]


def split_command_line(argv: Sequence[str]) -> Invocation:
    """Pure: virsh globals, our options, the command and its arguments."""
    ours: dict[str, str | bool] = {}
    globals_: list[str] = []
    seen: dict[str, str | bool] = {}  # virsh's long option name -> value (True for flags)
    i = 0
    while i < len(argv):
        token = argv[i]
        nxt = _take_ours(argv, i, ours)
        if nxt is not None:
            i = nxt
            continue
        if token == "--":
            globals_.append(token)
            i += 1
            break
        if token.startswith("--"):
            long = _virsh_long(token)
            _, eq, value = token.partition("=")
            globals_.append(token)
            i += 1
            if _VIRSH_LONG[long] and not eq:
                if i >= len(argv):
                    raise UsageError(f"--{long} needs a value", fix="see 'virsh --help'")
                value = argv[i]
                globals_.append(value)
                i += 1
            seen[long] = value if _VIRSH_LONG[long] else True
            continue
        if token.startswith("-") and len(token) > 1:
            globals_.append(token)
            i += 1
            j = 1
            while j < len(token):
                letter = token[j]
                if letter not in _VIRSH_SHORT:
                    raise UsageError(f"unknown option -{letter}", fix="see 'virsh --help'")
                if _VIRSH_SHORT[letter]:  # the rest of the token, or the next one
                    value = token[j + 1 :]
                    if not value:
                        if i >= len(argv):
                            raise UsageError(f"-{letter} needs a value", fix="see 'virsh --help'")
                        value = argv[i]
                        globals_.append(value)
                        i += 1
                    seen[_LONG_FOR.get(letter, letter)] = value
                    break
                seen[_LONG_FOR.get(letter, letter)] = True
                j += 1
            continue
        break
    uri = seen.get("connect")
    uri = uri if isinstance(uri, str) else None
    readonly = "readonly" in seen
    quiet = "quiet" in seen
    command = argv[i] if i < len(argv) else None
    rest = list(argv[i + 1 :])
    if command in _HANDLED:
        kept: list[str] = []
        j = 0
        while j < len(rest):
            nxt = _take_ours(rest, j, ours)
            if nxt is not None:
                j = nxt
                continue
            kept.append(rest[j])
            j += 1
        rest = kept
    return Invocation(tuple(globals_), uri, readonly, quiet, command, tuple(rest), ours)


def exec_virsh(inv: Invocation) -> NoReturn:
    """Hand the command line to the real virsh (same output, same exit status)."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = ["virsh", *inv.virsh_globals]
    if inv.command is not None:
        argv += [inv.command, *inv.args]
    try:
        _execvp(argv)
    except OSError as exc:
        raise HostAccessError(
            f"cannot run virsh: {exc.strerror}", fix="install libvirt-clients"
        ) from None


def _execvp(argv: list[str]) -> NoReturn:
    """os.execvp(argv[0], argv), PATH searched as it does, without the `import warnings`
    of its os.get_exec_path: ~0.3 ms, a twentieth of what `define` adds to virsh."""
    path = os.environ.get("PATH")
    saved: OSError | None = None
    last: OSError = FileNotFoundError(2, "No such file or directory")
    for directory in (os.defpath if path is None else path).split(os.pathsep):
        try:
            os.execv(os.path.join(directory, argv[0]), argv)
        except (FileNotFoundError, NotADirectoryError) as exc:
            last = exc
        except OSError as exc:  # kept, as execvp keeps it: say why virsh would not run
            last = exc
            saved = saved or exc
    raise saved or last


# -- the command arguments virsh would accept ------------------------------------------


@mutable
class CommandArgs:
    """A handled command's own arguments, read as virsh reads them."""

    file: str | None = None
    domain: str | None = None
    validate: bool = False
    paused: bool = False
    autodestroy: bool = False
    reset_nvram: bool = False
    console: bool = False
    pass_fds: str | None = None
    persistent: bool = False
    config: bool = False
    live: bool = False
    current: bool = False
    force: bool = False
    skip_validate: bool = False
    bypass_cache: bool = False
    force_boot: bool = False


# Per command: its operands in order, and its options (getopt long names).
_COMMANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "define": (("file",), ("file=", "validate")),
    "create": (
        ("file",),
        ("file=", "validate", "paused", "autodestroy", "reset-nvram", "console", "pass-fds="),
    ),
    "attach-device": (
        ("domain", "file"),
        ("domain=", "file=", "persistent", "config", "live", "current"),
    ),
    "update-device": (
        ("domain", "file"),
        ("domain=", "file=", "persistent", "config", "live", "current", "force"),
    ),
    "edit": (("domain",), ("domain=", "skip-validate")),
    "start": (
        ("domain",),
        (
            "domain=",
            "pass-fds=",
            "paused",
            "autodestroy",
            "bypass-cache",
            "force-boot",
            "reset-nvram",
            "console",
        ),
    ),
}


def command_args(command: str, argv: Sequence[str]) -> CommandArgs:
    """Options anywhere among the operands, `--opt value` or `--opt=value`, names in
    full (virsh's command parser takes no abbreviations), `--` ends the options. Pure."""
    operands, longs = _COMMANDS[command]
    fix = f"see 'virsh help {command}'"
    args = CommandArgs()
    given: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            given += argv[i:]
            break
        if not token.startswith("--") or token == "-":
            given.append(token)
            continue
        name, eq, value = token[2:].partition("=")
        if f"{name}=" in longs:
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"{command}: option --{name} needs a value", fix=fix)
                value = argv[i]
                i += 1
            setattr(args, name.replace("-", "_"), value)
        elif name in longs and not eq:
            setattr(args, name.replace("-", "_"), True)
        else:
            raise UsageError(f"{command}: option --{name} not recognized", fix=fix)
    free = [dest for dest in operands if getattr(args, dest) is None]  # not given as --opt
    if len(given) > len(free):
        raise UsageError(f"{command}: unexpected argument {given[len(free)]!r}", fix=fix)
    for dest, value in zip(free, given, strict=False):
        setattr(args, dest, value)
    return args


def _pass_fds(value: str | None) -> list[int]:
    """virsh's --pass-fds N,M: open descriptors handed to the guest (virDomainCreateWithFiles)."""
    if not value:
        return []
    fds = []
    for part in value.split(","):
        if not decimal_digits(part.strip()):
            raise UsageError(f"--pass-fds {value!r}: {part!r} is not a file descriptor number")
        fd = int(part)
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"--pass-fds: descriptor {fd} is not open") from None
        fds.append(fd)
    return fds


def _required(value: str | None, what: str, command: str) -> str:
    if not value:
        raise UsageError(f"{command}: {what} is required")
    return value


# -- the node behind the connection ----------------------------------------------------


def is_local(uri: str) -> bool:
    """qemu:///system and qemu+unix:///system are this host; anything with a host is not."""
    scheme, _, rest = uri.partition(":")
    host = ""
    if rest.startswith("//"):
        netloc = rest[2:].split("/", 1)[0].split("?", 1)[0]
        host = netloc.rpartition("@")[2]
        host = host.partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    return scheme.split("+")[0] in ("qemu", "lxc", "ch") and not host.strip("[")


def default_uri() -> str | None:
    """The URI virsh connects to when none is given, as libvirt picks it: virsh's and
    libvirt's environment variables, then `uri_default` in libvirt.conf (client
    configuration, libvirt docs/uri.rst). None: libvirt probes for a local driver."""
    for name in ("VIRSH_DEFAULT_CONNECT_URI", "LIBVIRT_DEFAULT_URI"):
        if os.environ.get(name):
            return os.environ[name]
    if os.geteuid() == 0:
        conf = "/etc/libvirt/libvirt.conf"
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        conf = os.path.join(base, "libvirt", "libvirt.conf")
    try:
        with open(conf, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        key, eq, value = line.partition("=")
        if eq and key.strip() == "uri_default":
            return value.split("#")[0].strip().strip("\"'") or None
    return None


@mutable
class Session:
    """What resolution needs for the node behind a connection. The libvirt connection
    itself (`conn`) is opened only when something needs libvirt's API: a remote node's
    devices or name, running guests for a pool, a vport, edit/attach/start."""

    handle: Any  # an open libvirt connection, or None to open one on first use
    uri: str | None  # as given (-c, environment, libvirt.conf); None: libvirt's local default
    ours: dict[str, str | bool]
    quiet: bool
    readonly: bool = False
    _node: str | None = None
    _inventory: HostInventory | None = None
    _store: Store | None = None

    @property
    def conn(self) -> Any:
        if self.handle is None:
            self.handle = _connect(self.uri, self.readonly)
        return self.handle

    @property
    def local(self) -> bool:
        return self.uri is None or is_local(self.uri)

    @property
    def node(self) -> str:
        if self._node is None:
            given = self.ours.get("--node")
            if given:
                self._node = str(given)
            elif self.local:
                from ..host.hostsource import this_node

                self._node = this_node()
            else:
                self._node = _call(lambda: _short(self.conn.getHostname()))
        return self._node

    @property
    def inventory(self) -> HostInventory:
        if self._inventory is None:
            root = self.ours.get("--sysfs")
            if root or self.local:
                from ..host.sysfs import SysfsInventory

                self._inventory = SysfsInventory(str(root) if root else "/sys")
            else:
                from ..host.nodedev import read_inventory

                self._inventory = read_inventory(self.conn, str(self.conn.getURI()))
        return self._inventory

    def scsi(self, doc: Document) -> ScsiInventory | None:
        """The SCSI/FC view of a local node, read only when the domain has LUNs or SCSI
        hostdevs (it scans every SCSI device); remote nodes have none through libvirt."""
        wanted = any(
            (el.tag == "disk" and el.get("device") == "lun")
            or (el.tag == "hostdev" and el.get("type") == "scsi")
            for el in devices_of(doc)
        )
        root = self.ours.get("--sysfs")
        if not wanted or not (root or self.local):
            return None
        from ..host.scsisysfs import read_scsi_inventory

        return read_scsi_inventory(str(root) if root else "/sys", None if root else "/dev")

    @property
    def store_path(self) -> str:
        given = self.ours.get("--store")
        if given:
            return str(given)
        from ..host.hostsource import default_store

        return default_store()

    @property
    def store(self) -> Store:
        if self._store is None:
            # The parser checks every value it keeps (as in the hook); the XSD pass costs
            # ~300 ms of xmlschema import per command, more than the define itself.
            location = self.store_path
            # "://" first: a file store need not import the backends to say it is one.
            if "://" in location and _is_url(location):  # a cluster store (docs/cluster.md)
                from ..host.etcdstore import open_etcd_store

                self._store = open_etcd_store(location).load()
            else:
                from ..host.storeread import load_store

                self._store = load_store(location, schema=False)
        return self._store

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text)
            print()


def _is_url(location: str) -> bool:
    from ..host.storebackend import is_url

    return is_url(location)


def _short(hostname: object) -> str:
    return str(hostname).split(".")[0]


class LibvirtRefused(HostdevError):
    """libvirt refused the operation; its message is shown as libvirt words it (exit 1)."""

    exit_code = 1


def _call(fn: Any) -> Any:
    import libvirt

    try:
        return fn()
    except libvirt.libvirtError as exc:
        raise LibvirtRefused(f"error: {str(exc).strip()}") from None


def _connect(uri: str | None, readonly: bool) -> Any:
    import libvirt

    from ..host.nodedev import quiet_libvirt

    quiet_libvirt()
    try:
        return libvirt.openReadOnly(uri) if readonly else libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HostAccessError(
            f"error: failed to connect to the hypervisor: {str(exc).strip()}"
        ) from None


def open_session(inv: Invocation) -> Session:
    return Session(None, inv.uri or default_uri(), inv.ours, inv.quiet, inv.readonly)


# -- resolution for this node ------------------------------------------------------------


def _claimed_by_others(session: Session, name: str) -> set[object]:
    """The devices the running guests other than `name` hold (asked of libvirt)."""
    from ..core.claims import claims_of

    return claims_of(_running_documents(session), name)


def _running_documents(session: Session) -> list[Document]:
    import libvirt

    docs = []
    for dom in _call(lambda: session.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)):
        try:
            xml = dom.XMLDesc(0)
        except libvirt.libvirtError:
            continue  # stopped while we looked: it holds nothing any more
        docs.append(parse_bytes(xml.encode(), f"{session.uri or 'libvirt'} domain {dom.name()}"))
    return docs


def uses_hostdev_resolver(doc: Document) -> bool:
    """Does the domain reference a mapping or carry a resolution record?"""
    hr = (f"{{{HR_NS}}}map", f"{{{HR_NS}}}wwn")
    return read_resolution(doc) is not None or any(
        name in el.attrs for el in doc.root.iter() for name in hr
    )


def uses_pool(doc: Document, store: Store, node: str) -> bool:
    """Does the domain reference (or record) a mapping with several entries on this
    node? Only then does the choice depend on what running guests hold. Pure."""
    names = [el.attrs.get(f"{{{HR_NS}}}map") for el in doc.root.iter()]
    resolution = read_resolution(doc)
    names += [r.map for r in (resolution.records if resolution else ())]
    for name in names:
        mapping = store.get(name) if name else None
        if isinstance(mapping, PciMapping | UsbMapping) and len(mapping.entries_on(node)) > 1:
            return True
    return False


def resolve_for_node(
    data: bytes, source: str, session: Session, claimed: Iterable[object] | None = None
) -> bytes:
    """Resolve a domain document for the session's node; warnings go to stderr.

    A document with no hr reference and no record is not ours: it goes through as it
    is, without reading the store or the host (a drop-in for virsh must not block
    unrelated guests, even on a host with no store). `claimed` None: the devices other
    running guests hold, asked of libvirt only when the domain uses a pool.
    """
    return resolve_document(parse_bytes(data, source), session, claimed)


def resolve_document(
    doc: Document, session: Session, claimed: Iterable[object] | None = None
) -> bytes:
    """resolve_for_node of a document already parsed."""
    if not uses_hostdev_resolver(doc):
        return _allocate(doc.data, doc.source, session, doc)
    inventory = session.inventory
    store = session.store if needs_store(doc) else without_store(session.store_path)
    if claimed is None:
        claimed = (
            _claimed_by_others(session, domain_name(doc))
            if uses_pool(doc, store, session.node)
            else ()
        )
    scsi = session.scsi(doc)
    if scsi is not None and ensure_vports(session, doc, store, scsi):
        scsi = session.scsi(doc)  # the kernel made the vport's scsi_host: read it
    # Fields a remote node's libvirt cannot show are left out of the comparison by
    # locate; the record keeps the store's full identity, which the hook checks there.
    result = resolve_domain(doc, store, inventory, session.node, claimed=set(claimed), scsi=scsi)
    for message in result.warnings:
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    return _allocate(result.data, doc.source, session)


def ensure_vports(session: Session, doc: Document, store: Store, scsi: ScsiInventory) -> int:
    """Create the NPIV vport of every vhba mapping the domain uses that is not there.

    vports made through libvirt (virNodeDeviceCreateXML) are transient: gone after a
    reboot or an HBA reset, so a guest defined once finds them missing at its next start.
    The vport is named by its WWNN/WWPN and its parent by WWNN/WWPN or fabric, never by
    host number. Returns how many were created.
    """
    from ..core.scsiresolve import vhba_nodedev_xml
    from ..xml.store import VhbaMapping

    wanted: dict[str, VhbaMapping] = {}
    resolution = read_resolution(doc)
    names = [el.attrs.get(f"{{{HR_NS}}}map") for el in devices_of(doc)]
    names += [r.map for r in (resolution.records if resolution else ())]
    for name in names:
        mapping = store.get(name) if name else None
        if isinstance(mapping, VhbaMapping) and mapping.wwpn is not None:
            wanted[mapping.name] = mapping
    created = 0
    for mapping in wanted.values():
        wwpn = mapping.wwpn
        assert wwpn is not None
        if scsi.fc_host_by_wwpn(wwpn) is not None:
            continue
        xml = vhba_nodedev_xml(mapping)
        device = _call(lambda xml=xml: session.conn.nodeDeviceCreateXML(xml, 0))
        session.say(
            f"Created NPIV vport {device.name()} (WWPN {wwpn}) for mapping {mapping.name!r}"
        )
        created += 1
    return created


def _allocate(data: bytes, source: str, session: Session, doc: Document | None = None) -> bytes:
    """Guest PCI addresses with --policy (`doc`: `data` already parsed, if it was)."""
    policy_name = session.ours.get("--policy")
    if not policy_name:
        if session.ours.get("--spare-ports") or session.ours.get("--numa-aware"):
            raise UsageError("--spare-ports and --numa-aware need --policy tuned")
        return data
    from ..core.allocation import UnmodeledMachineError, allocate_domain_xml
    from .cli.allocate import host_numa_of, make_policy

    spare = session.ours.get("--spare-ports")
    if spare is not None and not decimal_digits(str(spare)):
        raise UsageError(f"--spare-ports {spare!r} is not a number")
    if policy_name not in ("libvirt", "tuned"):
        raise UsageError(f"--policy {policy_name!r}: choose libvirt or tuned")
    policy = make_policy(
        str(policy_name),
        spare_ports=int(str(spare)) if spare is not None else None,
        numa_aware=bool(session.ours.get("--numa-aware")),
    )
    # Parsed once, for the record's NUMA nodes and the allocator.
    doc = parse_bytes(data, source) if doc is None else doc
    numa = host_numa_of(doc)
    try:
        return allocate_domain_xml(
            data, source, replace(policy, host_devices=numa) if numa else policy, doc=doc
        )
    except UnmodeledMachineError as exc:
        if policy.name != "libvirt":
            raise
        # libvirt's own assignment is what `--policy libvirt` promises: for a machine the
        # allocator does not model, leaving the addresses to libvirt gives exactly that.
        print(f"{PROG}: note: {exc.what}; libvirt assigns its addresses", file=sys.stderr)
        return data


# -- the commands ---------------------------------------------------------------------------


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return read_document(handle)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where=Location(path)) from None


def _lookup(session: Session, name: str) -> Any:
    import libvirt

    conn = session.conn
    for how in (conn.lookupByName, conn.lookupByUUIDString):
        try:
            return how(name)
        except libvirt.libvirtError:
            continue
    if decimal_digits(name):
        try:
            return conn.lookupByID(int(name))
        except libvirt.libvirtError:
            pass
    raise LibvirtRefused(f"error: failed to get domain '{name}'")


def exec_virsh_on(inv: Invocation, command: str, args: list[str], xml: bytes) -> NoReturn:
    """Hand the resolved document to the real virsh: same global options, the command's
    own options as given, FILE replaced by /dev/fd/N, a memory file holding `xml`
    (inherited through exec, gone with virsh). virsh's output, errors and exit status
    are then its own."""
    try:
        fd = os.memfd_create("hostdev-virsh-resolved", 0)  # no MFD_CLOEXEC: virsh reads it
        view = memoryview(xml)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise HostAccessError(f"cannot hold the resolved document: {exc.strerror}") from None
    exec_virsh(replace(inv, command=command, args=(*args, "--file", f"/dev/fd/{fd}")))


def _file_and_rest(args: CommandArgs, flags: dict[str, str]) -> list[str]:
    """The command's options other than FILE, as virsh spells them."""
    rest = [option for dest, option in flags.items() if getattr(args, dest)]
    if args.pass_fds:
        rest += ["--pass-fds", args.pass_fds]
    return rest


_DEFINE_FLAGS = {"validate": "--validate"}
_CREATE_FLAGS = {
    "validate": "--validate",
    "paused": "--paused",
    "autodestroy": "--autodestroy",
    "reset_nvram": "--reset-nvram",
    "console": "--console",
}


def cmd_define(inv: Invocation, session: Session, args: CommandArgs) -> int:
    """define and create: resolve, then virsh (docs/wrapper.md, "resolve, then virsh")."""
    command = str(inv.command)
    path = _required(args.file, "FILE", command)
    data = _read_file(path)
    xml = resolve_for_node(data, path, session)
    if xml == data:  # nothing of ours in it: virsh reads the file itself
        exec_virsh(inv)
    flags = _DEFINE_FLAGS if command == "define" else _CREATE_FLAGS
    exec_virsh_on(inv, command, _file_and_rest(args, flags), xml)


def _console(session: Session, name: str) -> NoReturn:
    globals_ = ("-c", session.uri) if session.uri else ()
    exec_virsh(Invocation(globals_, session.uri, False, False, "console", (name,)))


def _device_flags(args: CommandArgs, dom: Any) -> int | None:
    import libvirt

    if args.current:
        return int(libvirt.VIR_DOMAIN_AFFECT_CURRENT)
    flags = 0
    if args.config or args.persistent:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if args.live or (args.persistent and _call(dom.isActive)):
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    return flags or None


def _resolve_device(
    session: Session, dom: Any, data: bytes, path: str, live: bool
) -> tuple[bytes, Resolution | None]:
    """Resolve one device element in the context of its domain; (device XML, merged record)."""
    import libvirt

    flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
    current = parse_bytes(_call(lambda: dom.XMLDesc(flags)).encode(), f"domain {dom.name()}")
    name = domain_name(current)
    device = data.strip()
    wrapper = (
        f"<domain xmlns:hr='{HR_NS}'><name>{name}</name><devices>\n".encode()
        + device
        + b"\n</devices></domain>"
    )
    from ..core.claims import held_by

    claimed = _claimed_by_others(session, name) | held_by(current)
    resolved = parse_bytes(resolve_for_node(wrapper, path, session, claimed), path)
    (element,) = devices_of(resolved)
    new = read_resolution(resolved)
    old = read_resolution(current)
    if new is None:
        return resolved.element_bytes(element), None
    merged = Resolution(session.node, (old.records if old else ()) + new.records)
    return resolved.element_bytes(element), merged


def _set_record(session: Session, dom: Any, resolution: Resolution, flags: int) -> None:
    import libvirt

    body = resolution.to_node().render("")
    _call(
        lambda: dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, body, "hr", HR_NS, flags or 0)
    )


def cmd_device(session: Session, args: CommandArgs, command: str) -> int:
    import libvirt

    domain = _required(args.domain, "DOMAIN", command)
    path = _required(args.file, "FILE", command)
    dom = _lookup(session, domain)
    flags = _device_flags(args, dom)
    live = (
        flags is None
        or bool(flags & libvirt.VIR_DOMAIN_AFFECT_LIVE)
        or (flags == libvirt.VIR_DOMAIN_AFFECT_CURRENT and bool(_call(dom.isActive)))
    )
    device, resolution = _resolve_device(session, dom, _read_file(path), path, live)
    if command == "attach-device":
        if flags is None:
            _call(lambda: dom.attachDevice(device.decode()))
        else:
            _call(lambda: dom.attachDeviceFlags(device.decode(), flags))
        done = "Device attached successfully"
    else:
        update = (flags or 0) | (libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE if args.force else 0)
        _call(lambda: dom.updateDeviceFlags(device.decode(), update))
        done = "Device updated successfully"
    if resolution is not None:
        _set_record(session, dom, resolution, flags or 0)
    session.say(done)
    return 0


def with_references(data: bytes, source: str) -> bytes:
    """The domain with `hr:map` put back on every device its record names. Pure."""
    doc = parse_bytes(data, source)
    resolution = read_resolution(doc)
    if resolution is None:
        return data
    from ..core.mdev import MdevRecord

    splicer = Splicer(doc)
    if doc.attribute_span(doc.root, "xmlns:hr") is None:
        splicer.set_attribute(doc.root, "xmlns:hr", HR_NS)
    for record in resolution.records:
        element = element_of_record(doc, record)
        if (
            isinstance(record, PciRecord | UsbRecord | MdevRecord)
            and element is not None
            and doc.attribute_span(element, "hr:map") is None
        ):
            splicer.set_attribute(element, "hr:map", record.map)
    return splicer.apply()


def cmd_edit(session: Session, args: CommandArgs) -> int:
    import libvirt

    domain = _required(args.domain, "DOMAIN", "edit")
    dom = _lookup(session, domain)
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
    original = with_references(_call(lambda: dom.XMLDesc(flags)).encode(), f"domain {domain}")
    import shlex
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        command = shlex.split(editor)
    except ValueError as exc:
        raise UsageError(f"$EDITOR {editor!r} cannot be read: {exc}", fix="fix $EDITOR") from None
    # The file holds the domain's secure XML (passwords included): mkstemp makes it 0600,
    # and it is removed on every way out except a failed define, where the edit is kept.
    fd, path = tempfile.mkstemp(prefix=f"{PROG}-{dom.name()}-", suffix=".xml")
    with os.fdopen(fd, "wb") as handle:
        handle.write(original)
    try:
        status = subprocess.run([*command, path], check=False).returncode
    except OSError as exc:
        os.unlink(path)
        raise HostAccessError(
            f"cannot run editor {editor!r}: {exc.strerror}", fix="set $EDITOR"
        ) from None
    if status != 0:
        os.unlink(path)
        raise RefusedError(f"editor {editor!r} exited with status {status}; nothing changed")
    edited = _read_file(path)
    if edited == original:
        os.unlink(path)
        session.say(f"Domain '{dom.name()}' XML configuration not changed.")
        return 0
    try:
        xml = resolve_for_node(edited, path, session, _claimed_by_others(session, dom.name()))
        # virsh edit validates against libvirt's schema unless told --skip-validate.
        validate = 0 if args.skip_validate else libvirt.VIR_DOMAIN_DEFINE_VALIDATE
        new = _call(lambda: session.conn.defineXMLFlags(xml.decode(), validate))
    except HostdevError as exc:
        exc.fix = f"{exc.fix + '; ' if exc.fix else ''}your edit is kept in {path}"
        raise
    os.unlink(path)
    session.say(f"Domain '{new.name()}' XML configuration edited.")
    return 0


def pooled(doc: Document, store: Store, node: str) -> bool:
    """Does the domain use a mapping with several entries on this node? Pure."""
    resolution = read_resolution(doc)
    for record in resolution.records if resolution else ():
        mapping = store.get(record.map) if record.map else None
        if isinstance(mapping, PciMapping | UsbMapping) and len(mapping.entries_on(node)) > 1:
            return True
    return False


def followable(doc: Document, session: Session) -> bool:
    """Would the hook refuse the domain only for devices that moved where they can be
    followed safely (by serial, slot or port path)? Then re-resolving follows them and
    the hook accepts the result; anything else (a missing device, a look-alike with
    nothing to tell it apart, an identity mismatch) is left for the hook to refuse in
    its own words."""
    from ..core.verification import verify_domain

    findings = verify_domain(
        doc, session.store, session.inventory, session.node, scsi=session.scsi(doc)
    )
    statuses = {finding.status for finding in findings}
    return "shifted" in statuses and statuses <= {"ok", "shifted"}


def _place(record: object) -> str | None:
    """Where a record puts its device, as the messages name it."""
    from ..core.mdev import MdevRecord

    if isinstance(record, MdevRecord):
        return f"mdev {record.uuid} on {record.parent}"
    if isinstance(record, PciRecord):
        return str(record.address)
    if isinstance(record, UsbRecord) and record.bus is not None:
        return f"USB bus {record.bus} device {record.device}"
    return None


def moves(before: Resolution | None, after: Resolution | None) -> list[str]:
    """What a re-resolution changed, one "map old -> new" per device that moved. Pure."""
    was: dict[str, list[str | None]] = {}
    for record in before.records if before else ():
        was.setdefault(record.map or "", []).append(_place(record))
    changed = []
    for record in after.records if after else ():
        places = was.get(record.map or "") or [None]
        then, now = places.pop(0), _place(record)
        if now is not None and then != now:
            changed.append(f"{record.map} {then or '(new)'} -> {now}")
    return changed


def _refresh(session: Session, dom: Any, doc: Document) -> Any:
    """Before a start: re-resolve a domain that uses a pool (to a device no other running
    guest holds) or whose devices moved where they can be followed, and redefine it if
    that changed anything. Returns the domain to start."""
    if pooled(doc, session.store, session.node):
        claimed: set[object] | None = _claimed_by_others(session, dom.name())
    elif followable(doc, session):
        claimed = None
    else:
        return dom
    resolved = resolve_document(doc, session, claimed)
    if resolved == doc.data:
        return dom
    new = _call(lambda: session.conn.defineXML(resolved.decode()))
    if not session.quiet:  # virsh -q: what moved is still in the warnings
        changed = moves(read_resolution(doc), read_resolution(parse_bytes(resolved, doc.source)))
        print(
            f"{PROG}: redefined {new.name()!r} for node {session.node} before starting it"
            + (f": {', '.join(changed)}" if changed else ""),
            file=sys.stderr,
        )
    return new


def cmd_start(session: Session, args: CommandArgs) -> int:
    import libvirt

    domain = _required(args.domain, "DOMAIN", "start")
    dom = _lookup(session, domain)
    xml = _call(
        lambda: dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    )
    doc = parse_bytes(xml.encode(), f"domain {domain}")
    if read_resolution(doc) is not None and needs_store(doc):
        dom = _refresh(session, dom, doc)
    flags = 0
    for wanted, flag in (
        (args.paused, libvirt.VIR_DOMAIN_START_PAUSED),
        (args.autodestroy, libvirt.VIR_DOMAIN_START_AUTODESTROY),
        (args.bypass_cache, libvirt.VIR_DOMAIN_START_BYPASS_CACHE),
        (args.force_boot, libvirt.VIR_DOMAIN_START_FORCE_BOOT),
        (args.reset_nvram, libvirt.VIR_DOMAIN_START_RESET_NVRAM),
    ):
        if wanted:
            flags |= flag
    files = _pass_fds(args.pass_fds)
    if files:
        _call(lambda: dom.createWithFiles(files, flags))
    else:
        _call(lambda: dom.createWithFlags(flags))
    session.say(f"Domain '{dom.name()}' started")
    if args.console:
        _console(session, dom.name())
    return 0


def _asks_version(globals_: Sequence[str]) -> bool:
    """virsh's -v, -V or --version[=short|long] (by any unique prefix) among its globals."""
    for token in globals_:
        if token.startswith("--"):
            if token != "--" and _virsh_long(token) == "version":
                return True
        elif token.startswith("-"):
            for letter in token[1:]:
                if letter in "vV":
                    return True
                if _VIRSH_SHORT.get(letter):
                    break  # the rest is that option's value
    return False


def run(inv: Invocation) -> int:
    if inv.command is None:
        if inv.ours:
            raise UsageError(
                f"{', '.join(inv.ours)}: only with a command such as define or start",
                fix="virsh's interactive shell does not resolve hr:map references",
            )
        if any(g in ("-h", "--help") for g in inv.virsh_globals):
            # Ours first, then virsh's own help (everything else is virsh's).
            print(build_parser().format_help(), flush=True)
        if _asks_version(inv.virsh_globals):
            # Ours first, then virsh's own version line(s), as virsh prints them.
            print(f"{PROG} {__version__}", flush=True)
    if inv.command is None or inv.command not in _HANDLED:
        exec_virsh(inv)
    command = inv.command
    args = command_args(command, inv.args)
    session = open_session(inv)
    try:
        if command in ("define", "create"):
            return cmd_define(inv, session, args)
        if command in ("attach-device", "update-device"):
            return cmd_device(session, args, command)
        if command == "edit":
            return cmd_edit(session, args)
        return cmd_start(session, args)
    finally:
        if session.handle is not None:
            session.handle.close()


def build_parser() -> argparse.ArgumentParser:
    """For --help and man pages: our options; everything else is virsh's."""
    import argparse

    p = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "virsh with hostdev-resolver: define, create, attach-device, update-device, edit "
            "and start resolve hr:map references for the node behind the connection (start "
            "also follows pooled devices and devices that moved, and redefines the guest); "
            "every other command is run by virsh unchanged."
        ),
        epilog="Global virsh options (-c URI, -r, -q, -d, -l, -k, -K, -t, -e) are accepted as virsh accepts them.",
    )
    from .cli.common import add_options

    add_options(p, WRAPPER)
    p.add_argument(
        "--policy", choices=["libvirt", "tuned"], help="also allocate guest PCI addresses"
    )
    p.add_argument("--spare-ports", metavar="N", type=int, help="tuned: N empty hotplug root ports")
    p.add_argument(
        "--numa-aware",
        action="store_true",
        help="tuned: place host devices on their host NUMA node",
    )
    p.add_argument(
        "--version",
        action="store_true",
        help="print hostdev-virsh's version, then virsh's (also -v, -V)",
    )
    p.add_argument("command", metavar="COMMAND", help="a virsh command")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(split_command_line(args))
    except HostdevError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
