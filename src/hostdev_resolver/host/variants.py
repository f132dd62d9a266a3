"""Reading the vfio variant drivers' aliases from the kernel's modules.alias.

The table and libvirt's rule for picking a driver from it are `core.variants`'s; this
module only reads the `vfio_pci:` lines of one modules.alias into that value.
"""

from __future__ import annotations

import os

from ..core.variants import VfioVariants
from ..model.records import frozen

_PREFIX = "alias vfio_pci:"


def default_path() -> str:
    return os.path.join("/lib/modules", os.uname().release, "modules.alias")


@frozen
class VariantDrivers(VfioVariants):
    """The alias table (`core.variants.VfioVariants`) of one modules.alias."""

    @classmethod
    def load(cls, path: str | None) -> VariantDrivers:
        """A missing file means no variants (every device gets vfio-pci)."""
        if path is None:
            return cls()
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return cls()
        out = []
        for line in lines:
            if not line.startswith(_PREFIX):
                continue
            fields = line.split()
            if len(fields) == 3:
                out.append((fields[1], fields[2]))
        return cls(tuple(out))
