"""PCI facts beyond a device's identity, as values: SR-IOV counts, reset methods,
mediated-device types and instances, whether the IOMMU is on.

`host.pcifacts.SysfsPciFacts` reads them from a sysfs tree. The core asks an inventory
for its facts through `facts_of`: sources without a sysfs (a JSON snapshot, a libvirt
connection) have none, and callers leave what they cannot see to the hook, which reads
sysfs on the node itself at start.
"""

from __future__ import annotations

from .pciaddress import PciAddress
from .records import frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class PciFacts(Protocol):
        """What the core asks of a host's PCI facts (`host.pcifacts.SysfsPciFacts`)."""

        def iommu_off(self) -> str | None: ...

        def sriov_counts(self, pf: PciAddress) -> SriovCounts: ...

        def virtfn(self, pf: PciAddress, index: int) -> PciAddress | None: ...

        def vf_index(self, pf: PciAddress, vf: PciAddress) -> int | None: ...

        def reset(self, address: PciAddress) -> ResetInfo: ...

        def vgpu_type(self, address: PciAddress) -> str | None: ...

        def vgpu_path(self, address: PciAddress) -> str | None: ...

        def mdev_types(self, parent: PciAddress) -> list[MdevType]: ...

        def mdev_type(self, parent: PciAddress, type_id: str) -> MdevType | None: ...

        def mdev_parents(self) -> list[PciAddress]: ...

        def mdev(self, uuid: str) -> MdevDevice | None: ...

        def modalias(self, address: PciAddress) -> str | None: ...


@frozen
class SriovCounts:
    numvfs: int | None
    totalvfs: int | None

    def describe(self) -> str:
        num = "?" if self.numvfs is None else str(self.numvfs)
        total = "?" if self.totalvfs is None else str(self.totalvfs)
        return f"sriov_numvfs {num}, sriov_totalvfs {total}"


@frozen
class MdevType:
    """One entry of a parent's mdev_supported_types/."""

    type_id: str  # the directory name, e.g. nvidia-63 or i915-GVTg_V5_4
    name: str | None
    available: int | None  # available_instances
    device_api: str | None


@frozen
class MdevDevice:
    """An existing mediated device: /sys/bus/mdev/devices/UUID."""

    uuid: str
    parent: PciAddress | None
    type_id: str | None


@frozen
class ResetInfo:
    """How a device can be reset: `methods` from reset_method (kernel 5.15+), or
    `legacy` when only the older `reset` attribute says it can be."""

    methods: tuple[str, ...]
    legacy: bool = False

    @property
    def resettable(self) -> bool:
        return bool(self.methods) or self.legacy

    def describe(self) -> str:
        if self.methods:
            return f"reset_method {' '.join(self.methods)}"
        if self.legacy:
            return "resettable (kernel without reset_method)"
        return "no reset method (no FLR, PM or bus reset)"


def facts_of(inventory: object) -> PciFacts | None:
    """The facts of an inventory that has them (its `pci_facts()`: a source reading a
    sysfs tree); None for other sources."""
    make = getattr(inventory, "pci_facts", None)
    if make is None:
        return None
    facts: PciFacts | None = make()
    return facts
