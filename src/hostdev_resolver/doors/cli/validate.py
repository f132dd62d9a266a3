"""Offline validation of domain files and stores (SPEC §5 `validate`).

For each file: well-formed XML (no DTDs), the store schema or libvirt's domain.rng,
every reference resolvable on the node (or on every node of the store with
--all-nodes), the mapping's ACL, and no host device claimed by two domains.
"""

from __future__ import annotations

from ...core.metadata import HR_MAP, HR_WWN, PciRecord, UsbRecord
from ...core.resolution import (
    Resolved,
    needs_store,
    resolve_domain,
    wants_scsi,
    without_store,
)
from ...model.errors import HostdevError, InputError, Location
from ...model.inventory import RememberedInventory
from ...model.records import field, frozen, mutable
from ...xml.domain import domain_name
from ...xml.rng import accepted_by_libxml2, schema_errors
from ...xml.store import NS as STORE_NS
from ...xml.store import Store, parse_store, validate_schema
from ...xml.xmldoc import Document, Splicer, parse_file

# Not typing.TYPE_CHECKING: typing costs a fleet's `validate` a tenth of a bare start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Set as AbstractSet
    from typing import Any

    from ...model.inventory import HostInventory
    from ...model.scsi import ScsiInventory


@frozen
class Problem:
    source: str
    line: int | None
    exit_code: int  # 1 refused, 2 malformed, 3 environment
    message: str
    node: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        kind = {1: "refused", 2: "error", 3: "environment"}.get(self.exit_code, "error")
        node = f" [node {self.node}]" if self.node else ""
        return f"{where}: {kind}{node}: {self.message}"


@mutable
class Report:
    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, error: HostdevError, source: str, node: str | None = None) -> None:
        where = error.where if str(error.where) else Location(source)
        text = error.what + (f"; {error.fix}" if error.fix else "")
        self.problems.append(
            Problem(where.source or source, where.line, error.exit_code, text, node)
        )

    @property
    def exit_code(self) -> int:
        codes = {p.exit_code for p in self.problems}
        for code in (2, 3, 1):
            if code in codes:
                return code
        return 0

    def errors(self) -> list[str]:
        """One line per problem, for stderr (SPEC §5)."""
        return [str(p) for p in self.problems]

    def lines(self) -> list[str]:
        """The notes and the summary, for stdout."""
        out = [f"note: {n}" for n in self.notes]
        bad = len({p.source for p in self.problems})
        out.append(
            f"{len(self.checked)} file(s) checked, {len(self.problems)} problem(s) in {bad} file(s)"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "ok": not self.problems,
            "exit_code": self.exit_code,
            "problems": [
                {
                    "file": p.source,
                    "line": p.line,
                    "exit_code": p.exit_code,
                    "node": p.node,
                    "message": p.message,
                }
                for p in self.problems
            ],
            "notes": self.notes,
        }


def _without_references(doc: Document) -> tuple[bytes, set[int]]:
    """The domain without its referencing elements, for a schema check of the rest when
    it cannot be resolved (an unresolved <hostdev> has no <source> and is never valid),
    and the ids of the elements taken out."""
    splicer = Splicer(doc)
    removed: set[int] = set()
    for el in doc.root.iter():
        if HR_MAP in el.attrs or HR_WWN in el.attrs:
            splicer.replace(el.start, el.end, b"")
            removed.add(id(el))
    return splicer.apply(), removed


def _original_line(doc: Document, path: str, removed: AbstractSet[int]) -> int | None:
    """The line in `doc` of the element libxml2 names by `path` in a resolved (or stripped)
    copy of it. Resolution only adds elements (<source>, <metadata>), so the copy's
    /domain/devices/hostdev[2] is the original's second <hostdev> not taken out; a path
    into an added element stops at its nearest original ancestor."""
    steps = [s for s in path.split("/") if s]
    if not steps or steps[0] != doc.root.tag:
        return None
    element = doc.root
    for step in steps[1:]:
        tag, _, index = step.partition("[")
        if ":" in tag or tag == "*":
            break  # a namespaced element: ours, or foreign metadata
        nth = int(index.rstrip("]")) if index else 1
        same = [
            c for c in element.children if c.tag == tag and c.ns is None and id(c) not in removed
        ]
        if len(same) < nth:
            break
        element = same[nth - 1]
    return element.line


def _check_rng(
    report: Report,
    data: bytes,
    doc: Document,
    removed: AbstractSet[int] = frozenset(),
    *,
    accepted: bool = False,
) -> bool:
    """`accepted`: the system's libxml2 has already accepted `data` (see `_Resolutions`);
    otherwise the schema is asked, and says where a rejected document fails."""
    if accepted:
        return True
    try:
        errors = schema_errors(data, source=doc.source)
    except InputError as exc:
        fix = f"; {exc.fix}" if exc.fix else ""
        report.problems.append(Problem(doc.source, exc.where.line, 2, f"{exc.what}{fix}"))
        return False
    for error in errors:
        line = _original_line(doc, error.path, removed) if error.path else None
        report.problems.append(
            Problem(
                doc.source,
                line,
                2,
                f"{error.message}; fix it as https://libvirt.org/formatdomain.html describes "
                f"('virt-xml-validate {doc.source} domain' shows libvirt's own check)",
            )
        )
    return not errors


def _hosts(args: argparse.Namespace) -> list[tuple[HostInventory, str]]:
    """The host views given on the command line (none = this host's /sys)."""
    from .common import host_sources

    explicit = bool(
        getattr(args, "host", None)
        or getattr(args, "connect", None)
        or getattr(args, "sysfs", None)
    )
    out = []
    for source in host_sources(args):
        inventory, node = source.open()
        out.append((inventory, node))
    if not explicit and getattr(args, "node", None):
        out = [(inv, args.node) for inv, _ in out]
    return out


def validate_files(files: list[str], args: argparse.Namespace, *, all_nodes: bool) -> Report:
    # Every document read is kept to the end (a store named among the files applies to
    # the domains before it too), and almost nothing a check makes is cyclic garbage:
    # the cyclic collector would only walk the documents again and again, ~5 % of a
    # fleet's run. Reference counting still frees each document's temporaries.
    import gc

    collecting = gc.isenabled()
    gc.disable()
    try:
        return _validate_files(files, args, all_nodes=all_nodes)
    finally:
        if collecting:
            gc.enable()


def _validate_files(files: list[str], args: argparse.Namespace, *, all_nodes: bool) -> Report:
    report = Report()
    docs: list[Document] = []
    store: Store | None = None
    for path in files:
        report.checked.append(path)
        try:
            doc = parse_file(path)
        except InputError as exc:
            report.add(exc, path)
            continue
        if doc.root.ns == STORE_NS:
            try:
                store = parse_store(doc)
                validate_schema(doc)
            except InputError as exc:
                report.add(exc, path)
            continue
        docs.append(doc)
    if not docs:
        return report
    if store is None:
        from .common import open_store, store_path

        try:
            if any(needs_store(doc) for doc in docs):
                store = open_store(args)
            else:
                store = without_store(store_path(args))
        except HostdevError as exc:
            report.add(exc, store_path(args))
            return report
    try:
        hosts = _hosts(args)
    except HostdevError as exc:
        report.add(exc, "host")
        return report
    # One read of each host device per run, however many files reference it.
    by_node: dict[str, HostInventory] = {node: RememberedInventory(inv) for inv, node in hosts}
    from .common import open_scsi

    scsi_by_node: dict[str, ScsiInventory] = {}
    try:
        for inventory, node in hosts if any(wants_scsi(doc) for doc in docs) else ():
            # several hosts are snapshots (each with its own SCSI view); one may be sysfs
            scsi = open_scsi(args, inventory)
            if scsi is not None:
                scsi_by_node[node] = scsi
    except HostdevError as exc:
        report.add(exc, "host")
        return report
    nodes = list(dict.fromkeys([*by_node, *(store.nodes() if all_nodes else [])]))
    # Every document is resolved first, then every result goes through libxml2's RELAX
    # NG pass in one stretch, then the results are reported in the files' order. The
    # same work as resolving and checking one document at a time, but libxml2's pass
    # then runs with its schema in the processor's caches, as in xmllint's own loop:
    # alternating it with Python's work costs a fleet ~20 % more.
    located: dict[object, object] = {}  # the store's entries, located once per node
    resolved = [_Resolutions.of(doc, store, nodes, by_node, scsi_by_node, located) for doc in docs]
    for each in resolved:
        each.accepted = accepted_by_libxml2(each.schema_data)
    claims: dict[tuple[str, str], tuple[str, str]] = {}
    for each in resolved:
        _validate_domain(report, each, store, nodes, claims)
        each.doc.root.unlink()
    return report


@mutable
class _Resolutions:
    """A domain resolved for each node (None: no host view of the node; an error: it
    does not resolve there), and the document its schema check is made on: the first
    node's result, or, when it resolves nowhere, the domain without its references."""

    doc: Document
    name: str
    name_error: InputError | None
    outcomes: list[Resolved | HostdevError | None]
    schema_data: bytes
    removed: AbstractSet[int]
    accepted: bool = False  # libxml2 accepted schema_data

    @classmethod
    def of(
        cls,
        doc: Document,
        store: Store,
        nodes: list[str],
        by_node: dict[str, HostInventory],
        scsi_by_node: dict[str, ScsiInventory],
        located: dict[object, object] | None = None,
    ) -> _Resolutions:
        try:
            name = domain_name(doc)
        except InputError as exc:
            return cls(doc, "", exc, [], b"", frozenset())
        outcomes: list[Resolved | HostdevError | None] = []
        first: bytes | None = None
        for node in nodes:
            inventory = by_node.get(node)
            if inventory is None:
                outcomes.append(None)
                continue
            try:
                result = resolve_domain(
                    doc, store, inventory, node, scsi=scsi_by_node.get(node), located=located
                )
            except HostdevError as exc:
                outcomes.append(exc)
                continue
            outcomes.append(result)
            if first is None:
                first = result.data
        if first is not None:
            return cls(doc, name, None, outcomes, first, frozenset())
        stripped, removed = _without_references(doc)
        return cls(doc, name, None, outcomes, stripped, removed)


def _validate_domain(
    report: Report,
    resolved: _Resolutions,
    store: Store,
    nodes: list[str],
    claims: dict[tuple[str, str], tuple[str, str]],
) -> None:
    doc = resolved.doc
    if resolved.name_error is not None:
        report.add(resolved.name_error, doc.source)
        return
    name = resolved.name
    schema_checked = False
    for node, result in zip(nodes, resolved.outcomes, strict=True):
        if result is None:
            _check_entries_only(report, doc, store, node)
            continue
        if isinstance(result, HostdevError):
            report.add(result, doc.source, node)
            continue
        report.notes.extend(f"{doc.source} [node {node}]: {w}" for w in result.warnings)
        if not schema_checked:
            schema_checked = True
            if not _check_rng(report, result.data, doc, accepted=resolved.accepted):
                return
        for record in result.resolution.records if result.resolution else ():
            if isinstance(record, PciRecord):
                key = (node, str(record.address))
            elif record.kind == "mdev":  # resolving it imported core.mdev already
                from ...core.mdev import MdevRecord

                assert isinstance(record, MdevRecord)
                key = (node, f"mdev {record.uuid}")
            elif isinstance(record, UsbRecord):
                key = (
                    node,
                    f"USB {record.identity.ids}"
                    + (f" serial {record.identity.serial}" if record.identity.serial else ""),
                )
            else:  # a LUN: resolving it imported scsiresolve already
                from ...core.scsiresolve import ScsiRecord

                assert isinstance(record, ScsiRecord)
                key = (node, f"SCSI {record.dev or record.address}")
            # Two files of one domain (say, before and after resolve) are one claimant.
            other = claims.get(key)
            if other is not None and other[0] != name:
                fix = "give each host device to one domain"
                free = _free_members(store, record, node, claims)
                if free:
                    fix += (
                        f" (pool {record.map!r} has {', '.join(free)} free on node {node}: "
                        "'hostdev-virsh start' gives a guest a free member when its own is in use)"
                    )
                report.problems.append(
                    Problem(
                        doc.source,
                        None,
                        1,
                        f"{record.map}: host device {key[1]} is also claimed by domain {other[0]!r} "
                        f"({other[1]}); {fix}",
                        node,
                    )
                )
            claims.setdefault(key, (name, doc.source))
    if not schema_checked:
        _check_rng(report, resolved.schema_data, doc, resolved.removed, accepted=resolved.accepted)


def _free_members(
    store: Store, record: object, node: str, claims: dict[tuple[str, str], tuple[str, str]]
) -> list[str]:
    """The members of a PCI pool on `node` that no domain checked so far claims."""
    if not isinstance(record, PciRecord):
        return []
    mapping = store.get(record.map)
    entries = [e for e in getattr(mapping, "entries", ()) if e.node == node]
    if len(entries) < 2:
        return []
    return [str(e.address) for e in entries if (node, str(e.address)) not in claims]


def _check_entries_only(report: Report, doc: Document, store: Store, node: str) -> None:
    """A node we have no host view of: the store must at least have an entry there."""
    name = domain_name(doc)
    for el in doc.root.iter():
        ref = el.attrs.get(HR_MAP)
        if ref is None:
            continue
        mapping = store.get(ref)
        where = doc.where(el)
        if mapping is None:
            report.problems.append(
                Problem(
                    doc.source, where.line, 1, f"no mapping named {ref!r} in {store.path}", node
                )
            )
            continue
        if not mapping.allows(name):
            report.problems.append(
                Problem(
                    doc.source,
                    where.line,
                    1,
                    f"mapping {ref!r} does not allow domain {name!r}",
                    node,
                )
            )
            continue
        entries = getattr(mapping, "entries", None)
        if entries is not None and not any(e.node == node for e in entries):
            report.problems.append(
                Problem(
                    doc.source,
                    where.line,
                    1,
                    f"mapping {ref!r} has no entry for node {node!r}: the guest cannot run there",
                    node,
                )
            )
    report.notes.append(
        f"node {node}: store entries checked; no host view given (use --host or --connect to check the devices)"
    )
