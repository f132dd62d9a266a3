"""Binding mapped PCI devices to vfio-pci outside a guest's start: by hand, and at boot.

What driverctl does by address, by identity. `hostdev-resolver bind NAME…` and the
boot unit's `bind --boot` (every pci mapping with vfio='boot' that has an entry on this
node) locate each entry as resolution does (locate.py), then move the device and the
other endpoints of its IOMMU group to vfio-pci with the hook's transactional code
(vfio.py: one writer, the original drivers recorded before the first write, anything
already changed given back when a step fails). `unbind NAME` gives back what `bind`
recorded for NAME.

Unattended, a shift is followed only when something recorded tells the card apart
from every other of its model — its serial (DSN), its physical slot or the port path
it sits behind. Resolution also follows a card that is merely the only one of its
model left (and says so to the person resolving); at boot nobody reads that warning,
so such a card is refused, like a missing or ambiguous one.

One transaction per IOMMU group: the group is what vfio hands to a guest, and a card
that cannot be bound must not keep another card on its host driver. All bindings
share one state file, `STATE_DIR/bound/devices.json` (the hook's are per domain,
`STATE_DIR/<domain>.json`; a domain cannot be named `bound/…`).
"""

from __future__ import annotations

import os

from ..core.locate import Status, describe_pci, locate_pci, lookalike_fix
from ..core.vfioplan import VIABLE_DRIVERS, BindingPlan, DeviceChange
from ..model.errors import HostAccessError, InputError, Location, RefusedError
from ..model.records import frozen
from .vfio import StateFile, restore_writes

# Not typing.TYPE_CHECKING: kept in line with the modules it sits beside (records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ..core.vfioplan import SysfsWrite
    from ..model.inventory import HostInventory, PciDevice
    from ..model.pciaddress import PciAddress
    from ..xml.store import PciEntry, PciMapping, Store
    from .sysfs import SysfsReader
    from .variants import VariantDrivers
    from .vfio import Writer

STATE_SUBDIR = "bound"
STATE_NAME = "devices"


def bound_state(state_dir: str) -> StateFile:
    return StateFile(os.path.join(state_dir, STATE_SUBDIR), STATE_NAME)


@frozen
class Target:
    """A mapped device to bind, where it is this boot."""

    name: str  # the mapping
    device: PciDevice
    followed: str | None = None  # the shift followed, in words; None: at its address


@frozen
class GroupPlan:
    """One IOMMU group's transaction: the devices to move, and who asked for them."""

    group: int
    names: tuple[str, ...]
    plan: BindingPlan
    already: tuple[Target, ...] = ()  # targets on a vfio driver already


# -- locating ---------------------------------------------------------------------


def boot_mappings(store: Store, node: str) -> list[PciMapping]:
    """The pci mappings marked vfio='boot' with an entry on `node`, in store order."""
    from ..xml.store import PciMapping

    return [
        m
        for m in store.mappings.values()
        if isinstance(m, PciMapping) and m.kind == "pci" and m.vfio_boot and m.entries_on(node)
    ]


def named_mappings(store: Store, names: Sequence[str], node: str) -> list[PciMapping]:
    """The pci mappings `names` (for `bind NAME…`), each with an entry on `node`."""
    from ..xml.store import PciMapping

    out = []
    for name in names:
        mapping = store.get(name)
        if mapping is None:
            raise InputError(
                f"no mapping named {name!r}",
                where=Location(store.path),
                fix="see 'hostdev-resolver map list'",
            )
        if not isinstance(mapping, PciMapping) or mapping.kind != "pci":
            raise RefusedError(
                f"{name}: a {mapping.kind} mapping; bind takes pci mappings",
                fix="a VF exists only once its PF has VFs, an mdev only once created: "
                "the hook binds those at start",
            )
        if not mapping.entries_on(node):
            raise RefusedError(
                f"mapping {name!r} has no entry for node {node!r}",
                fix=f"hostdev-resolver map add pci {name} --node {node} --address BDF",
            )
        out.append(mapping)
    return out


def _told_apart(entry: PciEntry) -> bool:
    """Does the record tell this card from another of its model (locate._tell_apart)?"""
    return any(v is not None for v in (entry.identity.serial, entry.physical_slot, entry.port_path))


def locate_targets(
    mappings: Sequence[PciMapping], node: str, inventory: HostInventory
) -> tuple[list[Target], list[RefusedError]]:
    """Every entry of `mappings` on `node`, found by identity; or why it is not bound."""
    from ..core.resolution import pci_expectation

    targets: list[Target] = []
    refused: list[RefusedError] = []
    seen: set[PciAddress] = set()
    for mapping in mappings:
        for entry in mapping.entries_on(node):
            loc = locate_pci(pci_expectation(entry), inventory)
            device = loc.device
            remap = f"hostdev-resolver map add pci {mapping.name} --node {node} --address"
            if device is None:
                refused.append(
                    RefusedError(
                        f"{describe_pci(mapping.name, node, loc)}; not bound",
                        fix=lookalike_fix(mapping.name, node, loc)
                        or f"find the card with 'hostdev-resolver inventory', then '{remap} BDF'",
                    )
                )
                continue
            followed = None
            if loc.status == Status.SHIFTED:
                if not _told_apart(entry):
                    refused.append(
                        RefusedError(
                            f"{describe_pci(mapping.name, node, loc)}; not followed: no serial, "
                            "slot or port path is recorded to tell it from another card of "
                            "its model",
                            fix=f"if it is this card, re-map it with '{remap} {device.address}'",
                        )
                    )
                    continue
                followed = describe_pci(mapping.name, node, loc)
            if device.is_bridge:
                refused.append(
                    RefusedError(f"{mapping.name}: {device.address} is a PCI bridge; not bound")
                )
                continue
            if device.address not in seen:
                seen.add(device.address)
                targets.append(Target(mapping.name, device, followed))
    return targets, refused


# -- planning -----------------------------------------------------------------------


def plan_groups(
    targets: Sequence[Target], inventory: HostInventory, variants: VariantDrivers
) -> tuple[list[GroupPlan], list[RefusedError]]:
    """One plan per IOMMU group holding targets; a group is refused whole when a device
    in it that is not a target is used by a host driver (never taken away)."""
    from ..model.inventory import iommu_off
    from ..model.pcifacts import facts_of

    if not targets:
        return [], []
    off = iommu_off(inventory)
    if off is not None:
        every = ", ".join(dict.fromkeys(t.name for t in targets))
        return [], [
            RefusedError(
                f"{every}: the IOMMU is off on this host ({off}); nothing bound",
                fix="enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on",
            )
        ]
    facts = facts_of(inventory)
    by_group: dict[int, list[Target]] = {}
    refused: list[RefusedError] = []
    for target in targets:
        group = target.device.iommu_group
        if group is None:
            refused.append(
                RefusedError(
                    f"{target.name}: {target.device.address} has no IOMMU group, so it cannot "
                    "be isolated; not bound",
                    fix="check the firmware's ACS/IOMMU settings for this slot",
                )
            )
            continue
        by_group.setdefault(group, []).append(target)
    plans = []
    for group, here in by_group.items():
        names = tuple(dict.fromkeys(t.name for t in here))
        wanted = {t.device.address: t for t in here}
        changes: list[DeviceChange] = []
        already: list[Target] = []

        def change(dev: PciDevice, reason: str) -> DeviceChange:
            modalias = facts.modalias(dev.address) if facts is not None else None
            return DeviceChange(dev.address, dev.driver, None, reason, variants.best(modalias))

        for target in here:
            if variants.is_vfio_driver(target.device.driver):
                already.append(target)
            else:
                changes.append(change(target.device, target.name))
        problem = None
        for member in inventory.iommu_group_members(group):
            sibling = inventory.pci_device(member)
            if member in wanted or sibling is None or sibling.is_bridge:
                # vfio never needs bridges bound (vfio_dev_viable exempts them).
                continue
            if sibling.driver in VIABLE_DRIVERS or variants.is_vfio_driver(sibling.driver):
                continue
            if sibling.driver is None:
                # bound too: a host driver probing an unbound sibling of a group given to
                # a guest would break its isolation
                changes.append(change(sibling, f"IOMMU group {group} sibling of {names[0]}"))
                continue
            problem = RefusedError(
                f"{', '.join(names)}: {', '.join(str(a) for a in wanted)} shares IOMMU group "
                f"{group} with {member} ({sibling.identity.ids}), which the host uses with "
                f"driver {sibling.driver}; refusing to take it away, nothing in the group bound",
                fix=f"if {member} goes to guests too, map it with --vfio=boot (or name both "
                "mappings in one 'hostdev-resolver bind'); else move the card to a slot with "
                "its own IOMMU group",
            )
            break
        if problem is not None:
            refused.append(problem)
            continue
        plans.append(
            GroupPlan(group, names, BindingPlan(STATE_NAME, tuple(changes)), tuple(already))
        )
    return plans, refused


# -- unbinding ----------------------------------------------------------------------


def recorded_for(changes: Sequence[DeviceChange], name: str) -> list[DeviceChange]:
    """What `bind` changed for mapping `name`: its devices and the siblings bound with them."""
    return [c for c in changes if c.reason == name or c.reason.endswith(f" sibling of {name}")]


def unbind_writes(change: DeviceChange, reader: SysfsReader) -> list[SysfsWrite]:
    """The writes that give a device back, as `unbind` will make them now."""
    current = reader.link_name(reader.path(f"bus/pci/devices/{change.address}/driver"))
    return restore_writes(change, current)


def give_back(
    changes: Sequence[DeviceChange], state: StateFile, writer: Writer, reader: SysfsReader
) -> list[str]:
    """Restore `changes` (recorded in `state`) and drop them from it; returns problems.
    A device that could not be restored stays recorded, so a later `unbind` retries it."""
    from .vfio import restore_device

    problems = []
    failed: set[PciAddress] = set()
    for change in reversed(changes):
        try:
            restore_device(change, writer, reader)
        except HostAccessError as exc:
            problems.append(exc.message)
            failed.add(change.address)
    done = {c.address for c in changes} - failed
    state.save([c for c in state.load() if c.address not in done], [])
    return problems


def group_users(group: int, proc_root: str = "/proc") -> list[str]:
    """Processes holding the group's vfio device open (`/dev/vfio/GROUP`), as 'PID (comm)'.

    vfio-pci's remove callback waits, unkillably, until the user closes the device
    (vfio_unregister_group_dev: "Device is currently in use, task … blocked until device
    is released"), so unbinding a device a running guest holds would hang `unbind`.
    """
    wanted = f"/dev/vfio/{group}"
    users = []
    for pid in _pids(proc_root):
        fd_dir = os.path.join(proc_root, pid, "fd")
        try:
            names = os.listdir(fd_dir)
        except OSError:  # gone, or not ours to look at
            continue
        for fd in names:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == wanted:
                    users.append(f"{pid} ({_comm(proc_root, pid)})")
                    break
            except OSError:
                continue
    return users


def _pids(proc_root: str) -> Iterator[str]:
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return
    yield from (e for e in entries if e.isdigit())


def _comm(proc_root: str, pid: str) -> str:
    try:
        with open(os.path.join(proc_root, pid, "comm"), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


class StateLock:
    """Serialises `bind` and `unbind` on the shared state file (flock on a side file)."""

    def __init__(self, state: StateFile) -> None:
        self.path = state.path.with_name(".lock")
        self.fd: int | None = None

    def __enter__(self) -> StateLock:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise HostAccessError(
                f"cannot lock the binding state: {exc.strerror or exc}",
                where=Location(str(self.path)),
                fix="check the hook config's state_dir",
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None
