"""Choosing where host devices come from: live sysfs, a sysfs tree, a JSON snapshot, libvirt.

The CLI turns its options into a `HostSource`; everything below it sees only a
`HostInventory` and a node name.
"""

from __future__ import annotations

import os

from ..model.records import frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..model.inventory import HostInventory


def this_node() -> str:
    """This host's name as the store uses it (the short host name)."""
    # uname is what gethostname() returns on Linux, without importing socket.
    return os.uname().nodename.split(".")[0]


@frozen
class HostSource:
    """One host to look at: `kind` is sysfs, snapshot, udev or libvirt."""

    kind: str
    location: str
    node: str | None = None  # None: the source's own name (this host, snapshot's node...)

    def open(self) -> tuple[HostInventory, str]:
        """The inventory and the node name it belongs to."""
        if self.kind == "snapshot":
            from pathlib import Path

            from .snapshot import HostSnapshot

            snap = HostSnapshot.load(Path(self.location))
            return snap, self.node or snap.node or this_node()
        if self.kind == "udev":
            from .udev import UdevInventory

            return UdevInventory(), self.node or this_node()
        if self.kind == "libvirt":
            from .nodedev import open_libvirt_inventory

            inventory, name = open_libvirt_inventory(self.location)
            return inventory, self.node or name
        from .sysfs import SysfsInventory

        return SysfsInventory(self.location), self.node or this_node()


def default_store() -> str:
    from .storeread import DEFAULT_PATH

    return os.environ.get("HOSTDEV_RESOLVER_STORE") or DEFAULT_PATH
