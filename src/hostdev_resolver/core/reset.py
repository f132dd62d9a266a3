"""Start-time checks of what a device can do, beyond being the right device (issue 14):

- **reset**: a device without a reset method (no FLR, PM or bus reset: `reset_method`
  hidden, Linux 5.15+; no `reset` attribute before that) keeps the state a guest left in
  it, and often cannot be used again without rebooting the host. A warning by default;
  a refusal when the mapping says `require-reset='yes'` (`map add … --require-reset`).
- **NVIDIA VF vGPU**: a `vf` mapping with `vgpu-type` names the vGPU type the VF must
  have in `current_vgpu_type`; the VF stays on the nvidia driver. The hook does not
  set the type (NVIDIA's tools own it, and it cannot change while the VF is in use):
  a VF with another type, or none, is refused with the command that sets it.

Pure: takes the domain's records, the store and the host's `PciFacts`.
"""

from __future__ import annotations

from ..model.pcifacts import facts_of
from .metadata import PciRecord, read_resolution
from .verification import Finding

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..model.inventory import HostInventory
    from ..xml.record import Resolution
    from ..xml.store import Store
    from ..xml.xmldoc import Document


def capability_checks(
    doc: Document,
    store: Store,
    inventory: HostInventory,
    node: str,
    *,
    resolution: Resolution | None = None,
) -> tuple[list[Finding], list[str]]:
    """(refusals, warnings) for the domain's PCI devices; nothing for a source without
    sysfs (a snapshot, a libvirt connection), where the hook checks at start.
    `resolution`: the domain's record when the caller has read it already."""
    from ..xml.store import PciMapping, VfMapping

    facts = facts_of(inventory)
    if facts is None:
        return [], []
    if resolution is None:
        resolution = read_resolution(doc)
    if resolution is None:
        return [], []
    refusals: list[Finding] = []
    warnings: list[str] = []
    for record in resolution.records:
        if not isinstance(record, PciRecord):
            continue
        mapping = store.get(record.map)
        if not isinstance(mapping, PciMapping):
            continue

        def refuse(status: str, message: str, fix: str, record: PciRecord = record) -> None:
            refusals.append(
                Finding(
                    record.map,
                    node,
                    status,
                    message,
                    fix,
                    doc.source,
                    record.line,
                    str(record.address),
                )
            )

        if isinstance(mapping, VfMapping) and mapping.vgpu_type is not None:
            current = facts.vgpu_type(record.address)
            if current is None:
                refuse(
                    "mismatch",
                    f"{record.map}: {record.address} on node {node} has no current_vgpu_type "
                    f"(the mapping expects an NVIDIA vGPU VF of type {mapping.vgpu_type})",
                    "check that the nvidia driver is loaded with vGPU support",
                )
                continue
            if current != mapping.vgpu_type:
                path = facts.vgpu_path(record.address) or "…/current_vgpu_type"
                refuse(
                    "vgpu-type",
                    f"{record.map}: NVIDIA vGPU VF {record.address} on node {node} has vGPU type "
                    f"{current} (expected {mapping.vgpu_type}"
                    + ("; none is set)" if current == "0" else ")"),
                    f"set it while the VF is unused: echo {mapping.vgpu_type} > /sys/{path}",
                )
                continue
        reset = facts.reset(record.address)
        if reset.resettable:
            continue
        what = (
            f"{record.map}: {record.address} on node {node} has {reset.describe()}; after the "
            "guest stops it keeps the guest's state, and may need a host reboot to work again"
        )
        if mapping.require_reset:
            refuse(
                "no-reset",
                what,
                "use a device that supports FLR, or map it again without --require-reset "
                "to accept the risk",
            )
        else:
            warnings.append(what)
    return refusals, warnings
