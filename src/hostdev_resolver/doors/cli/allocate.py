"""`hostdev-resolver allocate FILE [...]`: the CLI face of allocation (SPEC §5, §8).

The CLI owner wires it up: `add_allocate_arguments(subparser)` then
`run_allocate(args)`. Exit codes: 0 ok, 1 conflict/unsatisfiable (RefusedError),
2 malformed input or arguments (InputError); one line on stderr, no traceback.
"""

from __future__ import annotations

import sys

from ...core.allocation import allocate_domain_xml
from ...core.allocation.model import HostDeviceInfo, Policy
from ...model.errors import HostdevError, InputError, Location, UsageError
from ...model.pciaddress import PciAddress
from ...model.records import replace

# Not typing.TYPE_CHECKING: the whole command should cost little more than the interpreter.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

    from ...xml.xmldoc import Document

    Subparsers = argparse._SubParsersAction[Any]


def add_allocate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", help="domain XML to allocate guest PCI addresses for"
    )
    parser.add_argument(
        "--policy",
        choices=("libvirt", "tuned"),
        default="libvirt",
        help="libvirt: exactly what libvirt 9.0 assigns at define (default); tuned: with the options below",
    )
    parser.add_argument(
        "--spare-ports",
        type=int,
        metavar="N",
        default=None,
        help="tuned: N empty hotplug-capable root ports",
    )
    parser.add_argument(
        "--numa-aware",
        action="store_true",
        help="tuned: put host devices behind a pcie-expander-bus on the guest NUMA cell of their host node",
    )
    parser.add_argument(
        "--host-numa",
        action="append",
        default=[],
        metavar="ADDR=NODE",
        help="tuned: the host NUMA node of a host PCI device (repeatable), e.g. 0000:41:00.0=1",
    )
    parser.add_argument(
        "--hotplug",
        choices=("on", "off"),
        default="on",
        help="tuned: 'off' gives the root ports of passthrough devices <target hotplug='off'/>",
    )
    parser.add_argument(
        "--no-group-functions",
        action="store_true",
        help="tuned: do not keep the functions of one host device on one guest slot",
    )
    parser.add_argument(
        "-o", "--output", metavar="OUT", default=None, help="write here instead of stdout"
    )


def _host_numa(values: Sequence[str]) -> tuple[HostDeviceInfo, ...]:
    infos = []
    for value in values:
        address, sep, node = value.partition("=")
        if not sep or not node.strip().isdigit():
            raise UsageError(
                f"--host-numa {value!r} is not ADDR=NODE",
                fix="write e.g. --host-numa 0000:41:00.0=1",
            )
        infos.append(HostDeviceInfo(PciAddress.parse(address), int(node)))
    return tuple(infos)


def make_policy(
    name: str,
    *,
    spare_ports: int | None = None,
    numa_aware: bool = False,
    hotplug: str = "on",
    host_numa: Sequence[str] = (),
    group_functions: bool = True,
) -> Policy:
    """The policy the allocate options describe, from plain values (the `allocate`
    command's parsed options, or hostdev-virsh's own)."""
    tuned_only = spare_ports is not None or numa_aware or hotplug == "off" or host_numa
    if name == "libvirt" and tuned_only:
        raise UsageError(
            "--spare-ports, --numa-aware, --host-numa and --hotplug apply to --policy tuned only",
            fix="add --policy tuned",
        )
    if spare_ports is not None and not 0 <= spare_ports <= 64:
        raise UsageError(f"--spare-ports {spare_ports} is out of range", fix="give 0..64")
    return Policy(
        name=name,
        spare_ports=spare_ports,
        numa_aware=numa_aware,
        group_multifunction=group_functions,
        hotplug=hotplug == "on",
        host_devices=_host_numa(host_numa),
    )


def policy_from_args(args: argparse.Namespace) -> Policy:
    return make_policy(
        args.policy,
        spare_ports=args.spare_ports,
        numa_aware=args.numa_aware,
        hotplug=args.hotplug,
        host_numa=args.host_numa,
        group_functions=not args.no_group_functions,
    )


def _read(path: str) -> bytes:
    try:
        from ...xml.xmldoc import read_document

        with open(path, "rb") as handle:
            return read_document(handle)
    except FileNotFoundError:
        raise InputError("file not found", where=Location(path), fix="check the path") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where=Location(path)) from None


def _write(path: str, data: bytes) -> None:
    from ...host.outfile import replace_file

    replace_file(path, data, ".allocate-")


def host_numa_of(doc: Document) -> tuple[HostDeviceInfo, ...]:
    """Host NUMA nodes of the PCI devices a resolved domain records (hr:pci numa-node),
    so `--numa-aware` needs no --host-numa for a domain that went through `resolve`."""
    from ...core.metadata import PciRecord, read_resolution

    resolution = read_resolution(doc)
    return tuple(
        HostDeviceInfo(r.address, r.numa_node)
        for r in (resolution.records if resolution else ())
        if isinstance(r, PciRecord) and r.numa_node is not None
    )


def run_allocate(args: argparse.Namespace) -> int:
    try:
        policy = policy_from_args(args)
        data = _read(args.file)
        doc = None
        if policy.numa_aware:
            from ...xml.xmldoc import parse_bytes

            doc = parse_bytes(data, args.file)  # once, for the record and the allocator
            given = {h.address for h in policy.host_devices}
            recorded = [h for h in host_numa_of(doc) if h.address not in given]
            policy = replace(policy, host_devices=(*policy.host_devices, *recorded))
        result = allocate_domain_xml(data, args.file, policy, doc=doc)
        if args.output is None:
            sys.stdout.buffer.write(result)
            sys.stdout.flush()
        else:
            try:
                _write(args.output, result)
            except OSError as exc:
                raise InputError(
                    f"cannot write: {exc.strerror}", where=Location(args.output)
                ) from None
    except HostdevError as exc:
        print(f"hostdev-resolver allocate: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0


def register(sub: Subparsers, name: str, help: str, common: argparse.ArgumentParser) -> None:
    """Add `allocate` (doors.cli.main.COMMANDS)."""
    p = sub.add_parser(name, parents=[common], help=help)
    add_allocate_arguments(p)
    p.set_defaults(handler=run_allocate)
