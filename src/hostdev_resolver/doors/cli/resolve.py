"""`hostdev-resolver resolve`, `verify` and `validate`: a domain file against a store and
a host, as `hostdev-virsh define` and the hook see it."""

from __future__ import annotations

import sys

from ...model.errors import UsageError
from ...xml.xmldoc import parse_file
from .common import open_host, open_scsi, store_for, warn, write_output

# Not typing.TYPE_CHECKING: see main.py.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ...host.variants import VariantDrivers
    from ...model.inventory import HostInventory

    Subparsers = argparse._SubParsersAction[Any]


def cmd_resolve(args: argparse.Namespace) -> int:
    from ...core.resolution import resolve_domain, wants_scsi

    doc = parse_file(args.file)
    store = store_for(args, doc)
    inventory, node = open_host(args)
    scsi = open_scsi(args, inventory) if wants_scsi(doc) else None
    result = resolve_domain(doc, store, inventory, node, scsi=scsi)
    for message in result.warnings:
        warn(message)
    write_output(result.data, args.output)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """The hook's `prepare begin` decision for this file, made by the same code without
    a single write; --dry-run adds the sysfs writes the hook would then make."""
    from ...core.resolution import wants_scsi
    from ..hookops import decide_start

    doc = parse_file(args.file)
    store = store_for(args, doc)
    inventory, node = open_host(args)
    sysfs_root = None
    if args.dry_run:
        from ...host.sysfs import SysfsInventory

        if not isinstance(inventory, SysfsInventory):
            raise UsageError("--dry-run needs a sysfs host (the live host or --sysfs ROOT)")
        sysfs_root = inventory.reader.root
    scsi = open_scsi(args, inventory) if wants_scsi(doc) else None
    decision = decide_start(doc, store, inventory, node, scsi, _live_variants(inventory))
    refusal = decision.refusal
    if args.format == "json":
        import json

        from ...core.verification import Finding
        from ...model.records import asdict

        findings = list(decision.findings)
        if refusal is not None:  # binding refused: the domain's, not one device's
            findings.append(Finding("*", node, "refused", refusal.what, refusal.fix, doc.source))
        rows = [asdict(f) | {"ok": f.ok} for f in findings]
        rows += [
            asdict(Finding(w.split(":", 1)[0], node, "warning", w, None, doc.source)) | {"ok": True}
            for w in decision.warnings
        ]
        print(json.dumps(rows, indent=2))
    else:
        if not decision.findings:
            print(f"{args.file}: no mapped devices to verify")
        for f in decision.findings:
            print(f"ok: {f.message}" if f.ok else f"{f.status.upper()}: {f}")
        for warning in decision.warnings:
            print(f"WARNING: {warning}")
        if refusal is not None:
            print(f"REFUSED: {refusal.message}")
    if sysfs_root is not None and decision.plan is not None:
        writes = [w.render(sysfs_root) for w in decision.plan.writes()]
        print(f"vfio-pci: {len(writes)} sysfs writes at start" + (":" if writes else ""))
        for line in writes:
            print(f"  {line}")
    return 0 if decision.ok else 1


def _live_variants(inventory: HostInventory) -> VariantDrivers | None:
    """The running kernel's vfio variant drivers when verifying the live host (as the
    hook would bind); a captured tree (--sysfs) or a snapshot has no kernel to ask."""
    from ...host.sysfs import SysfsInventory
    from ...host.variants import VariantDrivers, default_path

    if isinstance(inventory, SysfsInventory) and inventory.reader.root == "/sys":
        return VariantDrivers.load(default_path())
    return None


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate_files

    report = validate_files(args.files, args, all_nodes=args.all_nodes)
    if args.format == "json":
        import json

        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.errors():
            print(line, file=sys.stderr)
        for line in report.lines():
            print(line)
    return report.exit_code


def register(sub: Subparsers, name: str, help: str, common: argparse.ArgumentParser) -> None:
    """Add `resolve`, `validate` or `verify` (doors.cli.main.COMMANDS)."""
    p = sub.add_parser(name, parents=[common], help=help)
    if name == "resolve":
        p.add_argument("file")
        p.add_argument(
            "-o", "--output", metavar="OUT", help="write here instead of stdout (atomically)"
        )
        p.set_defaults(handler=cmd_resolve)
    elif name == "validate":
        p.add_argument("files", nargs="+", metavar="FILE")
        p.add_argument(
            "--all-nodes", action="store_true", help="check every node in the store, not just one"
        )
        p.add_argument("--format", choices=["text", "json"], default="text")
        p.set_defaults(handler=cmd_validate)
    else:
        p.add_argument("file")
        p.add_argument("--format", choices=["text", "json"], default="text")
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="also print the sysfs writes the hook would make to bind vfio-pci",
        )
        p.set_defaults(handler=cmd_verify)
