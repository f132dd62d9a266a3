"""`map add vf` and `map add mdev`, and the mdev part of `inventory` (issue 14).

Kept out of cli.py so the command-line layer only hooks them in: capture from the host
(PF identity + VF index; parent identities + mdev type), then one store edit.
"""

from __future__ import annotations

from ...model.errors import InputError, RefusedError, UsageError
from ...model.pciaddress import PciAddress
from ...model.pcifacts import facts_of
from ...xml.store import PciEntry, PciMapping, VfEntry

# Not typing.TYPE_CHECKING: mypy recognises any constant of this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from ...model.inventory import HostInventory
    from ...xml.store import Store

    CapturePci = Callable[[HostInventory, str, str], PciEntry]


def vf_suggestion(inventory: HostInventory, address: PciAddress, name: str, node: str) -> None:
    """`map add pci` of a VF: refuse and name the vf form (a VF's address and IDs name
    no particular VF once the PF moves or sriov_numvfs changes)."""
    from ...core.sriov import vf_of

    found = vf_of(inventory, address)
    if found is None:
        return
    pf, index = found
    raise RefusedError(
        f"{address} on node {node} is SR-IOV VF {index} of PF {pf}; its address and IDs "
        "change when the PF moves or sriov_numvfs is set again",
        fix=f"map it by PF and index: 'hostdev-resolver map add vf {name} --node {node} --pf {pf} --index {index}'",
    )


def capture_vf(
    inventory: HostInventory, node: str, args: argparse.Namespace, capture_pci: CapturePci
) -> VfEntry:
    if args.pf is None or args.index is None:
        raise UsageError("map add vf needs --pf BDF --index N")
    if args.index < 0:
        raise UsageError(f"--index {args.index} must be 0 or more")
    from ...core.sriov import vf_of

    pf_address = PciAddress.parse(args.pf)
    parent = vf_of(inventory, pf_address)
    if parent is not None:
        raise UsageError(
            f"--pf {pf_address} is itself VF {parent[1]} of PF {parent[0]}",
            fix=f"give --pf {parent[0]} --index {parent[1]}",
        )
    pf = capture_pci(inventory, node, args.pf)
    dev = inventory.pci_device(pf.address)
    assert dev is not None  # capture_pci refused an absent device
    facts = facts_of(inventory)
    vf_address = facts.virtfn(pf.address, args.index) if facts is not None else None
    if facts is None and args.index < len(dev.virtfns):
        vf_address = dev.virtfns[args.index]
    vf = inventory.pci_device(vf_address) if vf_address is not None else None
    if vf is None:
        if not dev.virtfns and (facts is None or facts.sriov_counts(pf.address).totalvfs is None):
            raise RefusedError(
                f"{pf.address} on node {node} ({dev.identity.ids}) is not an SR-IOV PF",
                fix="see 'hostdev-resolver inventory' for PFs (they list their VFs)",
            )
        counts = f" ({facts.sriov_counts(pf.address).describe()})" if facts is not None else ""
        raise RefusedError(
            f"PF {pf.address} on node {node} has no VF {args.index}{counts}",
            fix=f"create it first: echo {args.index + 1} > /sys/bus/pci/devices/{pf.address}/sriov_numvfs",
        )
    vgpu = facts.vgpu_type(vf.address) if facts is not None else None
    if vgpu is not None and args.vgpu_type is None:
        raise RefusedError(
            f"VF {args.index} of {pf.address} ({vf.address}) is an NVIDIA vGPU VF (it has "
            "current_vgpu_type and stays on the nvidia driver; binding it to vfio-pci breaks it)",
            fix=f"give its vGPU type: 'hostdev-resolver map add vf {args.name} --pf {pf.address} "
            f"--index {args.index} --vgpu-type T' (a type ID from its nvidia/creatable_vgpu_types)",
        )
    if args.vgpu_type is not None and vgpu is None:
        raise RefusedError(
            f"{vf.address} on node {node} has no current_vgpu_type: not an NVIDIA vGPU VF",
            fix="drop --vgpu-type, or use the mdev form for mdev-based vGPUs",
        )
    return VfEntry.of(pf, args.index, vf.identity.vendor, vf.identity.device)


def _types_text(inventory: HostInventory, parent: PciAddress) -> str:
    facts = facts_of(inventory)
    types = facts.mdev_types(parent) if facts is not None else []
    return ", ".join(t.type_id for t in types) or "none"


def capture_mdev_parents(
    inventory: HostInventory,
    node: str,
    args: argparse.Namespace,
    store: Store | None,
    capture_pci: CapturePci,
) -> list[PciEntry]:
    if not args.parent or not args.mdev_type:
        raise UsageError("map add mdev needs --parent BDF (or a pci mapping name) and --type T")
    facts = facts_of(inventory)
    entries: list[PciEntry] = []
    for parent in args.parent:
        mapping = store.get(parent) if store is not None else None
        if isinstance(mapping, PciMapping) and mapping.kind == "pci":
            found = mapping.entries_on(node)
            if not found:
                raise RefusedError(
                    f"pci mapping {parent!r} has no entry for node {node}",
                    fix=f"add one with 'hostdev-resolver map add pci {parent} --node {node} --address BDF'",
                )
            entries.extend(found)
            continue
        try:
            PciAddress.parse(parent)
        except InputError:
            raise UsageError(
                f"--parent {parent!r} is neither a PCI address nor a pci mapping",
                fix="give a BDF such as 0000:41:00.0, or the name of a pci mapping",
            ) from None
        entries.append(capture_pci(inventory, node, parent))
    for entry in entries:
        if facts is None:
            continue
        if facts.mdev_type(entry.address, args.mdev_type) is None:
            raise RefusedError(
                f"{entry.address} on node {node} offers no mdev type {args.mdev_type} "
                f"(its types: {_types_text(inventory, entry.address)})",
                fix="see 'hostdev-resolver inventory' for mdev-capable parents and their types",
            )
    return entries


def mdev_inventory_lines(
    inventory: HostInventory, parents: list[PciAddress] | None = None
) -> list[str]:
    """mdev-capable parents and their types, for `inventory`; `parents` when the caller
    has found them already (as `mdev_parents()`)."""
    facts = facts_of(inventory)
    if facts is None:
        return []
    lines = []
    for parent in facts.mdev_parents() if parents is None else parents:
        lines.append(f"mdev parent {parent}:")
        for t in facts.mdev_types(parent):
            free = "?" if t.available is None else str(t.available)
            lines.append(
                f"  {t.type_id:<20} {t.name or '-':<20} available_instances {free:>3}  "
                f"device_api {t.device_api or '-'}"
            )
    return lines


def mdev_inventory_json(inventory: HostInventory) -> list[dict[str, object]]:
    facts = facts_of(inventory)
    if facts is None:
        return []
    return [
        {
            "parent": str(parent),
            "types": [
                {
                    "type": t.type_id,
                    "name": t.name,
                    "available_instances": t.available,
                    "device_api": t.device_api,
                }
                for t in facts.mdev_types(parent)
            ],
        }
        for parent in facts.mdev_parents()
    ]
