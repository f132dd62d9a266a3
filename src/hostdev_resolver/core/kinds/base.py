"""What every device kind shares: the resolver's context, the pool loop, findings.

A *kind* (PCI, VF, USB, mdev, LUN/SCSI) is one module in this package with one object,
`KIND`, that offers the same operations (the `Kind` interface below, as nova's
`PciDeviceSpec.match` puts every matcher behind one call):

- `read_record(doc, el)`: its `hr:` record back from the domain's `hr:resolution`;
- `reference(doc, el)`: recognise a reference on a device element it handles
  (`hr:map`/`hr:wwn` on a LUN disk); the kinds named through a store mapping are
  picked by the mapping's kind instead (`core.resolution`);
- `resolve(ctx, el, ref)`: locate the device on the inventory, claim it, and return
  the record and the concrete `<source>`; `splice(...)` puts that source in place;
- `verify(check, record)`: the start-time check of one record, one `Finding`.

The registry (`core.kinds`, the package) finds a kind by its record tag or mapping
kind, importing only the kinds a domain uses (the hook's start-up budget). `core.resolution.resolve_domain`
and `core.verification.verify_domain` loop over references and records and ask their
kinds; nothing outside this package dispatches on the kind by hand.
"""

from __future__ import annotations

from ...model.errors import (
    AccessDeniedError,
    AmbiguousError,
    ConflictError,
    Location,
    RefusedError,
    UnresolvableError,
)
from ...model.records import field, frozen, mutable
from ...xml.record import HR_MAP, element_of_record
from ...xml.store import PciMapping, Store, UsbMapping
from ...xml.xmldoc import Document, Element, Node, Splicer

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Protocol, TypeVar

    from ...model.inventory import HostInventory
    from ...model.scsi import ScsiInventory
    from ...xml.record import Record
    from ...xml.store import Mapping

    E = TypeVar("E")
    R = TypeVar("R", bound=Record)

    class Kind(Protocol):
        name: str  # the kind's record tag (for LUN/SCSI: the family, "scsi")
        # Resolved first, and written first in hr:resolution: LUN/SCSI (0) before the
        # kinds named through a store mapping (1), as since LUNs were added.
        stage: int
        # Needs the node's SCSI inventory (it scans every SCSI device of the host).
        needs_scsi: bool

        def read_record(self, doc: Document, el: Element) -> Record: ...

        def reference(self, doc: Document, el: Element) -> Any: ...

        def recorded_reference(self, doc: Document, el: Element, record: Any) -> Any: ...

        def resolve(self, ctx: Context, el: Element, ref: Any) -> tuple[Record, Node]: ...

        def splice(
            self, ctx: Context, splicer: Splicer, el: Element, record: Any, source: Node
        ) -> None: ...

        def verify(self, check: Check, record: Any) -> Finding: ...


# -- findings --------------------------------------------------------------------------


@frozen
class Finding:
    map: str
    node: str
    # ok, shifted, mismatch, missing, ambiguous, denied, unmapped, stale, wrong-node, unresolved
    status: str
    message: str
    fix: str | None = None
    source: str | None = None
    line: int | None = None
    address: str | None = None
    found_at: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}: " if self.source and self.line else ""
        return f"{where}{self.message}" + (f" — {self.fix}" if self.fix else "")


@frozen
class Subject:
    map: str
    node: str
    source: str
    line: int | None

    def finding(
        self,
        *,
        status: str,
        message: str,
        fix: str | None = None,
        address: str | None = None,
        found_at: str | None = None,
    ) -> Finding:
        return Finding(
            self.map, self.node, status, message, fix, self.source, self.line, address, found_at
        )


@frozen
class Check:
    """What a kind's `verify` checks a record against: the domain, the store, the host."""

    doc: Document
    store: Store
    inventory: HostInventory
    node: str
    domain: str
    scsi: ScsiInventory | None = None

    def subject(self, record: Record) -> Subject:
        return Subject(record.label, self.node, self.doc.source, record.line)


def denied(base: Subject, name: str, domain: str) -> Finding:
    return base.finding(
        status="denied",
        message=f"{name}: the mapping does not allow domain {domain!r}",
        fix=f"add <allow domain='{domain}'/> to mapping {name!r}",
    )


def redefine(domain: str) -> str:
    return f"run 'hostdev-virsh define' for {domain} again (or 'hostdev-resolver resolve')"


def follow(domain: str) -> str:
    """The fix for a device that moved where it can be followed: `hostdev-virsh start`
    re-resolves and redefines such a domain before starting it (docs/wrapper.md)."""
    return (
        f"start it with 'hostdev-virsh start {domain}', which follows the device, "
        "or define it again with 'hostdev-virsh define'"
    )


def check_mapped(
    check: Check, record: R, entries_of: Callable[[Mapping, R, str], Sequence[E]]
) -> Finding | tuple[Mapping, Sequence[E]]:
    """What every kind named through a store mapping checks first: the store still has
    the mapping and allows this domain, still has an entry on this node that the record
    says it was resolved from (`entries_of`), and the domain still has the element."""
    base = check.subject(record)
    name, domain, node = record.label, check.domain, check.node
    mapping = check.store.get(name)
    if mapping is None or mapping.kind != record.kind:
        return base.finding(
            status="unmapped",
            message=f"{name}: no {record.kind} mapping of that name in {check.store.path}",
            fix=f"re-add it with 'hostdev-resolver map add {record.kind} {name} …' or drop the device from {domain}",
        )
    if not mapping.allows(domain):
        return denied(base, name, domain)
    entries = entries_of(mapping, record, node)
    if not entries:
        return base.finding(
            status="stale",
            message=f"{name}: the store's entry for node {node} no longer matches what {domain} was resolved against",
            fix=redefine(domain),
        )
    if element_of_record(check.doc, record) is None:
        return base.finding(
            status="stale",
            message=f"{name}: {domain} no longer has a <hostdev> with the recorded source",
            fix=redefine(domain),
        )
    return mapping, entries


# -- resolving -------------------------------------------------------------------------

_MAP_ADD_FORMS = {
    "pci": "--address BDF",
    "usb": "--vendor V --product P [--serial S]",
    "vf": "--pf BDF --index N",
    "mdev": "--parent BDF --type TYPE",
}


@mutable
class Context:
    """One resolution: the domain, the store, the host, and what is claimed so far."""

    doc: Document
    store: Store
    inventory: HostInventory
    node: str
    domain: str
    claimed: set[object] = field(default_factory=set)
    owner: dict[object, Element] = field(default_factory=dict)  # claimed by this domain
    warnings: list[str] = field(default_factory=list)
    scsi: ScsiInventory | None = None
    # Outcomes of locating store entries, shared by the resolutions of one run over one
    # store and one inventory per node (`resolve_domain`'s `located`); None: not kept.
    located: dict[object, object] | None = None

    def fix_map_add(self, kind: str, name: str) -> str:
        return f"run 'hostdev-resolver map add {kind} {name} --node {self.node} {_MAP_ADD_FORMS[kind]}'"

    def check_allowed(self, mapping: Mapping, where: Location) -> None:
        """The mapping's <allow> list must admit this domain (none = any domain)."""
        if not mapping.allows(self.domain):
            raise AccessDeniedError(
                f"mapping {mapping.name!r} does not allow domain {self.domain!r} (allowed: {', '.join(mapping.allow)})",
                where=where,
                fix=f"add <allow domain='{self.domain}'/> to the mapping, or use another device",
            )

    def check_conflict(self, el: Element, key: object, name: str, entries: int) -> None:
        first = self.owner.get(key)
        if first is not None and entries == 1:
            raise ConflictError(
                f"{name}: the same host device is already given to the <{first.tag}> on line {first.line}",
                where=self.doc.where(el),
                fix="give each host device to one device element only",
            )

    def claim(self, key: object, el: Element) -> None:
        self.claimed.add(key)
        self.owner[key] = el

    def no_entry(self, el: Element, kind: str, name: str) -> UnresolvableError:
        return UnresolvableError(
            f"mapping {name!r} has no entry for node {self.node!r}",
            where=self.doc.where(el),
            fix=self.fix_map_add(kind, name),
        )


@frozen
class Miss:
    """An entry of a mapping that cannot be used on this host: why, and what to do."""

    problem: str
    ambiguous: bool = False
    fix: str | None = None  # None: the pool's fix so far stands


@frozen
class Hit:
    """An entry located on this host: the device (`key` claims it), its record and
    `<source>`, and a warning when it is not where the store says."""

    key: object
    busy: str  # the problem when another element or guest holds it
    record: Record
    source: Node
    warning: str | None = None


def resolve_pool(
    ctx: Context,
    el: Element,
    mapping: PciMapping | UsbMapping,
    kind: str,
    locate: Callable[[Any], Hit | Miss],
    fix: str,
) -> tuple[Record, Node]:
    """The first entry of `mapping` on this node that `locate` finds and nobody holds,
    claimed for `el`; a pool's entries are tried in store order. `fix` is what to do
    when none can be used (a located entry's `Miss.fix` replaces it)."""
    entries = mapping.entries_on(ctx.node)
    if not entries:
        raise ctx.no_entry(el, kind, mapping.name)
    problems: list[str] = []
    ambiguous = False
    for entry in entries:
        outcome = locate(entry)
        if isinstance(outcome, Miss):
            problems.append(outcome.problem)
            ambiguous = outcome.ambiguous
            fix = outcome.fix or fix
            continue
        if outcome.key in ctx.claimed:
            ctx.check_conflict(el, outcome.key, mapping.name, len(entries))
            problems.append(outcome.busy)
            continue
        if outcome.warning is not None:
            ctx.warnings.append(outcome.warning)
        ctx.claim(outcome.key, el)
        return outcome.record, outcome.source
    where = ctx.doc.where(el)
    if len(entries) > 1:
        raise UnresolvableError(
            f"no free device in pool {mapping.name!r} on node {ctx.node}: " + "; ".join(problems),
            where=where,
            fix="free one of the pool's devices or add one with 'hostdev-resolver map add'",
        )
    error: type[RefusedError] = AmbiguousError if ambiguous else UnresolvableError
    raise error(problems[0], where=where, fix=fix)


class Mapped:
    """What the kinds named through a store mapping (PCI, VF, USB, mdev) share: they are
    resolved after LUN/SCSI, need no SCSI view, and their reference is the mapping's
    name: the mapping's kind picks the kind, not the element (`core.resolution`)."""

    stage = 1
    needs_scsi = False

    def reference(self, doc: Document, el: Element) -> None:
        return None

    def recorded_reference(self, doc: Document, el: Element, record: Any) -> str:
        name: str = record.map
        return name


def insert_source(splicer: Splicer, el: Element, source: Node) -> None:
    """Add a new <source> where libvirt writes it: after <driver> (and a disk's legacy
    disk-level <auth>, an interface's <mac>), before everything else (virDomainHostdevDefFormat,
    virDomainDiskDefFormat in src/conf/domain_conf.c).

    For a PCI hostdev this is also what makes the result valid: domain.rng nests <driver>,
    <teaming> and <source> in an interleave inside the hostdev's interleave, and libxml2
    (2.9.14 in Debian 12, 2.14 in lxml) accepts that only when the three are adjacent:
    a <source> after the guest <address> or <rom> fails the schema.
    """
    if el.tag == "disk":
        splicer.insert_child(el, source, after=("driver", "auth"))
    elif el.tag == "interface":
        # <interface type='hostdev'>: virDomainNetDefFormat writes <mac> first, then the
        # hostdev's <driver> and <source>, then <vlan>, <virtualport> and the rest.
        splicer.insert_child(el, source, after=("mac", "driver"), before=("teaming",))
    else:
        splicer.insert_child(el, source, after=("driver",), before=("teaming",))


def splice_mapped(splicer: Splicer, el: Element, same: bool, source: Node) -> None:
    """Drop `hr:map` and, unless the element already has the resolved source (`same`),
    put `source` in: in place of the old one, keeping the old one's attributes (a
    PCI source's `writeFiltering`, a USB source's `startupPolicy`), or inserted."""
    if HR_MAP in el.attrs:
        splicer.remove_attribute(el, el.qnames[HR_MAP])
    if same:
        return
    old = el.find("source")
    if old is not None:
        # A new node: `source` may serve other documents too (Context.located).
        kept = {k: v for k, v in old.attrs.items() if "{" not in k}
        splicer.replace_element(
            old, Node(source.tag, {**source.attrs, **kept}, source.children, source.text)
        )
    else:
        insert_source(splicer, el, source)
