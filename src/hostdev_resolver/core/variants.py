"""vfio variant drivers: which vfio driver to bind a device to, as libvirt ≥ 10.0 picks it.

Vendor variants of vfio-pci (mlx5_vfio_pci, hisi_acc_vfio_pci, nvgrace_gpu_vfio_pci,
pds_vfio_pci...) declare the devices they drive with `vfio_pci:` aliases in the kernel's
modules.alias, e.g.

    alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci

libvirt 10.0 (virPCIDeviceFindBestVFIOVariant) matches the device's modalias, with its
`pci:` prefix read as `vfio_pci:`, against them and binds the most specific match — the
alias with the fewest wildcards — falling back to vfio-pci. A device bound to the
generic driver instead loses what the variant adds (live migration, device memory).

The alias table here is a value; `host.variants` reads it from a modules.alias.
"""

from __future__ import annotations

from ..model.records import frozen

VFIO_PCI = "vfio-pci"


@frozen
class VfioVariants:
    """The `vfio_pci:` aliases of one modules.alias: (pattern, module) in file order.
    No aliases (the default): every device gets vfio-pci."""

    aliases: tuple[tuple[str, str], ...] = ()

    def best(self, modalias: str | None) -> str:
        """The driver for a device with this modalias (`pci:v…d…sv…sd…bc…sc…i…`)."""
        if not modalias or not modalias.startswith("pci:") or not self.aliases:
            return VFIO_PCI
        from ..model.shellpattern import matches  # kmod matches aliases with fnmatch(3) too

        wanted = "vfio_" + modalias
        best: tuple[int, int, str] | None = None
        for pattern, module in self.aliases:
            if not matches(wanted, pattern):
                continue
            # Fewest wildcards wins; then the longer (more literal) pattern; then file order.
            rank = (pattern.count("*") + pattern.count("?"), -len(pattern), module)
            if best is None or rank[:2] < best[:2]:
                best = rank
        if best is None:
            return VFIO_PCI
        return driver_name(best[2])

    def is_vfio_driver(self, driver: str | None) -> bool:
        """Is this a vfio driver (the kernel's vfio accepts its devices in a group)?"""
        if driver is None:
            return False
        return driver == VFIO_PCI or any(driver_name(m) == driver for _p, m in self.aliases)


def driver_name(module: str) -> str:
    # vfio_pci.ko registers its driver as "vfio-pci"; variants register KBUILD_MODNAME.
    return VFIO_PCI if module == "vfio_pci" else module
