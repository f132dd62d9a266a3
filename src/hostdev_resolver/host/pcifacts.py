"""PCI facts beyond a device's identity: whether the IOMMU is on, SR-IOV counts, reset methods, mediated-device
types and instances, NVIDIA's VF vGPU type, and the module alias file of vfio variant
drivers.

A `SysfsPciFacts` reads them from a sysfs root through `SysfsReader` (the one place
sysfs is read); an inventory that reads a sysfs tree hands one out as its
`pci_facts()`, and the core asks for it through `model.pcifacts.facts_of`. The values
are `model.pcifacts`'s.
"""

from __future__ import annotations

import os

from ..model.errors import InputError
from ..model.pciaddress import PciAddress, decimal_digits
from ..model.pcifacts import MdevDevice, MdevType, ResetInfo, SriovCounts

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from typing import Protocol

    class SysfsReader(Protocol):
        """What is read through `host.sysfs.SysfsReader`, named here by its methods:
        `sysfs` imports this module (`SysfsInventory.pci_facts`), so importing it back,
        even for annotations, would make a cycle (tests/test_import_paths.py)."""

        def path(self, *parts: str) -> str: ...
        def text(self, path: str | os.PathLike[str]) -> str | None: ...
        def listdir(self, path: str | os.PathLike[str]) -> list[str]: ...
        def link_name(self, path: str | os.PathLike[str]) -> str | None: ...
        def has_entries(self, path: str | os.PathLike[str]) -> bool: ...


class SysfsPciFacts:
    """Facts of PCI devices below a sysfs root."""

    def __init__(self, reader: SysfsReader) -> None:
        self.reader = reader

    def _dev(self, address: PciAddress, *parts: str) -> str:
        return self.reader.path("bus", "pci", "devices", str(address), *parts)

    def _int(self, path: str) -> int | None:
        text = self.reader.text(path)
        return int(text) if text is not None and decimal_digits(text) else None

    # -- the IOMMU ---------------------------------------------------------------
    def iommu_off(self) -> str | None:
        """Why the IOMMU is off, or None: the kernel lists kernel/iommu_groups only with
        an IOMMU enabled."""
        groups = self.reader.path("kernel", "iommu_groups")
        return None if self.reader.has_entries(groups) else f"{groups} is empty"

    # -- SR-IOV ------------------------------------------------------------------
    def sriov_counts(self, pf: PciAddress) -> SriovCounts:
        return SriovCounts(
            self._int(self._dev(pf, "sriov_numvfs")), self._int(self._dev(pf, "sriov_totalvfs"))
        )

    def virtfn(self, pf: PciAddress, index: int) -> PciAddress | None:
        name = self.reader.link_name(self._dev(pf, f"virtfn{index}"))
        return PciAddress.parse(name) if name else None

    def vf_index(self, pf: PciAddress, vf: PciAddress) -> int | None:
        for entry in self.reader.listdir(self._dev(pf)):
            if (
                entry.startswith("virtfn")
                and decimal_digits(entry[6:])
                and self.reader.link_name(self._dev(pf, entry)) == str(vf)
            ):
                return int(entry[6:])
        return None

    # -- reset -------------------------------------------------------------------
    def reset(self, address: PciAddress) -> ResetInfo:
        # reset_method (drivers/pci/pci.c, Linux 5.15+) lists the usable methods and is
        # hidden when there are none; before 5.15 only `reset` exists, and only for
        # devices that can be reset.
        text = self.reader.text(self._dev(address, "reset_method"))
        if text:
            return ResetInfo(tuple(text.split()))
        if text is None and os.path.exists(self._dev(address, "reset")):
            return ResetInfo((), legacy=True)
        return ResetInfo(())

    # -- NVIDIA VF vGPU ------------------------------------------------------------
    def vgpu_type(self, address: PciAddress) -> str | None:
        """NVIDIA's vGPU on SR-IOV VFs without mdevs (vGPU 17+, Ada/Hopper and later):
        the VF stays on the nvidia driver and gets its type through current_vgpu_type.
        None when the device has no such attribute; "0" when no type is set."""
        for parts in (("nvidia", "current_vgpu_type"), ("current_vgpu_type",)):
            text = self.reader.text(self._dev(address, *parts))
            if text is not None:
                return text
        return None

    def vgpu_path(self, address: PciAddress) -> str | None:
        """The current_vgpu_type attribute, relative to the sysfs root."""
        for rel in ("nvidia/current_vgpu_type", "current_vgpu_type"):
            if os.path.exists(self._dev(address, *rel.split("/"))):
                return f"bus/pci/devices/{address}/{rel}"
        return None

    # -- mediated devices ----------------------------------------------------------
    def mdev_types(self, parent: PciAddress) -> list[MdevType]:
        base = self._dev(parent, "mdev_supported_types")
        out = []
        for type_id in self.reader.listdir(base):
            d = os.path.join(base, type_id)
            out.append(
                MdevType(
                    type_id,
                    self.reader.text(os.path.join(d, "name")),
                    self._int(os.path.join(d, "available_instances")),
                    self.reader.text(os.path.join(d, "device_api")),
                )
            )
        return out

    def mdev_type(self, parent: PciAddress, type_id: str) -> MdevType | None:
        return next((t for t in self.mdev_types(parent) if t.type_id == type_id), None)

    def mdev_parents(self) -> list[PciAddress]:
        """The PCI functions registered as mdev parents, in address order.

        The mdev core links each parent it registers into class/mdev_bus
        (drivers/vfio/mdev/mdev_core.c, mdev_register_parent), which is where mdevctl
        lists them. One listing, where asking each of a host's thousands of functions
        whether it has mdev_supported_types cost each one a system call. No
        class/mdev_bus: the mdev core is not loaded, and no device has types. A link
        counts when it names a PCI function (not a ccw or ap parent) that is on the PCI
        bus with an mdev_supported_types directory."""
        devices = self.reader.path("bus", "pci", "devices")
        parents = []
        # Lists nothing when class/mdev_bus is not there (the reader's listdir).
        for name in self.reader.listdir(self.reader.path("class", "mdev_bus")):
            try:
                address = PciAddress.parse(name)
            except InputError:  # a non-PCI parent (a ccw subchannel, the ap matrix)
                continue
            if os.path.isdir(os.path.join(devices, name, "mdev_supported_types")):
                parents.append(address)
        return sorted(parents)

    def mdev(self, uuid: str) -> MdevDevice | None:
        link = self.reader.path("bus", "mdev", "devices", uuid)
        if not os.path.isdir(link):
            return None
        parent_name = os.path.basename(os.path.dirname(os.path.realpath(link)))
        try:
            parent: PciAddress | None = PciAddress.parse(parent_name)
        except InputError:  # a non-PCI parent (ccw, ap, a platform device)
            parent = None
        return MdevDevice(uuid, parent, self.reader.link_name(os.path.join(link, "mdev_type")))

    # -- vfio variant drivers --------------------------------------------------------
    def modalias(self, address: PciAddress) -> str | None:
        return self.reader.text(self._dev(address, "modalias"))
