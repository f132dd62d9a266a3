"""Binding PCI devices to vfio-pci for a guest, and giving them back afterwards (SPEC §6).

Which devices: every recorded PCI device of the domain whose `<hostdev>` libvirt will
not bind itself (`managed='no'`, libvirt's default when the attribute is absent, or a
mapping with `vfio='yes'`), plus the other endpoints of their IOMMU groups. libvirt's
`managed='yes'` detaches the device itself but never its group siblings, and the kernel's
vfio refuses to open a group unless every device in it is unbound or bound to a
vfio/stub driver (drivers/vfio/group.c, vfio_dev_viable). The hook therefore binds the
siblings (unbound ones too: a host driver probing an unbound sibling of a group in use
would break isolation), and refuses — never unbinds — a sibling a host driver is using.

How: the kernel's `driver_override` protocol (Documentation/ABI/testing/sysfs-bus-pci):
write `vfio-pci` to `driver_override`, write the address to the current driver's
`unbind`, write the address to `/sys/bus/pci/drivers_probe`; the probe then only
considers the overriding driver. Not `new_id`, which makes vfio-pci claim every device
of that vendor:device ID. Afterwards the `driver` link must name vfio-pci (the probe
does nothing, silently, when vfio-pci is not loaded).

Every write goes through one `Writer`, so the sequence is recorded, printed by
`verify --dry-run`, and replayed against a simulated kernel in tests. The original
drivers are written durably to the state directory before the first write; any failed
step puts back everything already changed.
"""

from __future__ import annotations

import os

from ..core.metadata import PciRecord, Resolution, read_resolution
from ..model.errors import HostAccessError, InputError, Location, RefusedError
from ..model.pciaddress import PciAddress
from ..model.pcifacts import facts_of
from ..model.records import frozen
from ..xml.domain import devices_of, domain_name, is_pci_source_element, pci_source_address
from ..xml.store import PciMapping, Store

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Protocol

    from ..core.mdev import MdevCreation
    from ..model.inventory import HostInventory, PciDevice
    from ..xml.xmldoc import Document
    from .sysfs import SysfsReader
    from .variants import VariantDrivers

    class Writer(Protocol):
        """Where sysfs writes go: the real kernel, a simulation, or a dry-run list."""

        root: Path

        def write(self, write: SysfsWrite) -> None: ...


VFIO_DRIVER = "vfio-pci"
# Drivers the kernel's vfio accepts in a viable group besides vfio-pci itself
# (drivers/vfio/group.c: vfio_driver_allowed, "pci-stub").
_VIABLE_DRIVERS = frozenset({VFIO_DRIVER, "pci-stub"})
# `driver_override` reads "(null)" when unset (drivers/pci/pci-sysfs.c); writing a
# lone newline clears it.
_NO_OVERRIDE = "(null)"


@frozen
class SysfsWrite:
    """One write to a sysfs attribute; `path` is relative to the sysfs root."""

    path: str
    value: str
    step: str  # what the write does, for messages: "unbind 0000:41:00.0 from nvidia"

    def render(self, root: Path | str) -> str:
        # `echo` appends the newline the kernel strips; a lone newline clears an attribute.
        shown = f"echo '{self.value.strip()}'" if self.value.strip() else "echo"
        return f"{shown} > {os.path.join(root, self.path)}    # {self.step}"


class SysfsWriter:
    """Writes to the attributes of a sysfs root; the one place vfio changes the host."""

    def __init__(self, root: Path | str = "/sys") -> None:
        from pathlib import Path  # not at import: verifying a start needs no writer

        self.root = Path(root)
        self.writes: list[SysfsWrite] = []

    def write(self, write: SysfsWrite) -> None:
        path = self.root / write.path
        self.writes.append(write)
        try:
            # sysfs attributes take one write(2) each; O_TRUNC is ignored there but makes
            # no difference, and O_CREAT would create a plain file in a fake root.
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, write.value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise HostAccessError(
                f"sysfs write failed at step '{write.step}': {exc.strerror or exc}",
                where=Location(str(path)),
                fix="check that vfio-pci is loaded (modprobe vfio-pci) and the IOMMU is on",
            ) from None


@frozen
class DeviceChange:
    """A device the hook moves to vfio-pci, and what it had before."""

    address: PciAddress
    driver: str | None  # the original driver; None = it was unbound
    driver_override: str | None  # the original override; None = unset
    reason: str  # "gpu0" or "IOMMU group 31 sibling of gpu0"
    vfio_driver: str = VFIO_DRIVER  # vfio-pci, or a variant driver (variants.py)

    def to_json(self) -> dict[str, str | None]:
        return {
            "address": str(self.address),
            "driver": self.driver,
            "driver_override": self.driver_override,
            "reason": self.reason,
            "vfio_driver": self.vfio_driver,
        }

    @classmethod
    def from_json(cls, data: object, where: Location) -> DeviceChange:
        if not isinstance(data, dict) or not isinstance(data.get("address"), str):
            raise InputError("state entry without an address", where=where)
        driver = data.get("driver")
        override = data.get("driver_override")
        target = data.get("vfio_driver")
        return cls(
            PciAddress.parse(data["address"], where),
            driver if isinstance(driver, str) else None,
            override if isinstance(override, str) else None,
            str(data.get("reason", "")),
            target if isinstance(target, str) else VFIO_DRIVER,
        )


@frozen
class BindingPlan:
    domain: str
    changes: tuple[DeviceChange, ...]
    # mdevs to create first, in the same all-or-nothing transaction (mdev.py)
    mdevs: tuple[MdevCreation, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes and not self.mdevs

    def writes(self) -> list[SysfsWrite]:
        out: list[SysfsWrite] = [create_mdev_write(m) for m in self.mdevs]
        for change in self.changes:
            out.extend(bind_writes(change))
        return out


def create_mdev_write(mdev: MdevCreation) -> SysfsWrite:
    return SysfsWrite(
        mdev.create_path(),
        mdev.uuid,
        f"create mdev {mdev.uuid} ({mdev.mdev_type}) on {mdev.parent}",
    )


def remove_mdev_write(mdev: MdevCreation) -> SysfsWrite:
    return SysfsWrite(mdev.remove_path(), "1", f"remove mdev {mdev.uuid} from {mdev.parent}")


def _dev(address: PciAddress, attribute: str) -> str:
    return f"bus/pci/devices/{address}/{attribute}"


def bind_writes(change: DeviceChange) -> list[SysfsWrite]:
    addr = str(change.address)
    out = [
        SysfsWrite(
            _dev(change.address, "driver_override"),
            change.vfio_driver,
            f"set driver_override of {addr} to {change.vfio_driver}",
        )
    ]
    if change.driver is not None:
        out.append(
            SysfsWrite(
                f"bus/pci/drivers/{change.driver}/unbind",
                addr,
                f"unbind {addr} from {change.driver}",
            )
        )
    out.append(
        SysfsWrite("bus/pci/drivers_probe", addr, f"probe {addr} (binds {change.vfio_driver})")
    )
    return out


# -- planning ------------------------------------------------------------------


def _managed(hostdev_managed: str | None) -> bool:
    # libvirt's default for <hostdev managed> is 'no' (docs/formatdomain.rst).
    return hostdev_managed == "yes"


def iommu_off(inventory: HostInventory) -> str | None:
    """Why the IOMMU is seen to be off on this host, or None when it is on.

    The kernel lists /sys/kernel/iommu_groups only with an IOMMU enabled. A view without
    a sysfs (a snapshot, a libvirt connection) shows it the same way: no PCI device has
    an IOMMU group.
    """
    reader: SysfsReader | None = getattr(inventory, "reader", None)
    if reader is not None:
        groups = reader.path("kernel", "iommu_groups")
        return None if reader.listdir(groups) else f"{groups} is empty"
    if any(d.iommu_group is not None for d in inventory.pci_devices()):
        return None
    return "no PCI device has an IOMMU group"


def plan_binding(
    doc: Document,
    store: Store,
    inventory: HostInventory,
    variants: VariantDrivers | None = None,
) -> BindingPlan:
    """What must move to vfio-pci for this domain; refuses a group a host driver uses.

    `variants`: the host's vfio variant drivers; each device the hook binds goes to the
    one libvirt ≥ 10.0 would pick (or to the `<driver model='…'/>` its hostdev names).
    """
    from .variants import VariantDrivers

    variants = variants or VariantDrivers()
    facts = facts_of(inventory)
    domain = domain_name(doc)
    resolution = read_resolution(doc)
    records = [r for r in resolution.records if isinstance(r, PciRecord)] if resolution else []
    mdevs = _plan_mdevs(resolution, store, inventory)
    if not records:
        return BindingPlan(domain, (), mdevs)
    # Every PCI device this domain is given, mapped or not, with its managed flag.
    in_domain: dict[PciAddress, bool] = {}
    models: dict[PciAddress, str] = {}
    for el in devices_of(doc):
        # <interface type='hostdev'> (a NIC VF with its MAC/VLAN) is a PCI hostdev to
        # libvirt, with the same managed flag (virDomainNetDef's hostdev part).
        if is_pci_source_element(el):
            address = pci_source_address(doc, el)
            if address is not None:
                in_domain[address] = _managed(el.get("managed"))
                driver = el.find("driver")
                if driver is not None and driver.get("model"):
                    models[address] = driver.attrs["model"]
    off = iommu_off(inventory)
    if off is not None:
        raise RefusedError(
            f"{domain}: the IOMMU is off on this host ({off}); "
            "PCI devices cannot be given to guests",
            fix="enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on",
        )
    changes: dict[PciAddress, DeviceChange] = {}

    def add(dev: PciDevice, reason: str) -> None:
        # pci-stub is viable for a sibling only: the assigned device itself needs vfio
        if dev.address in changes or variants.is_vfio_driver(dev.driver):
            return
        target = models.get(dev.address) or variants.best(
            facts.modalias(dev.address) if facts is not None else None
        )
        changes[dev.address] = DeviceChange(dev.address, dev.driver, None, reason, target)

    for record in records:
        mapping = store.get(record.map)
        wants_vfio = isinstance(mapping, PciMapping) and mapping.vfio
        dev = inventory.pci_device(record.address)
        if dev is None:
            raise RefusedError(f"{record.map}: no device at {record.address}")
        if dev.iommu_group is None:
            raise RefusedError(
                f"{record.map}: {record.address} has no IOMMU group, so it cannot be isolated",
                fix="check the firmware's ACS/IOMMU settings for this slot",
            )
        managed = in_domain.get(record.address, False)
        vgpu = facts.vgpu_type(dev.address) if facts is not None else None
        if vgpu is not None:
            # NVIDIA's VF vGPU (no mdevs): the VF must stay on the nvidia driver, which
            # gives it its vGPU type; vfio-pci would turn it into a bare, useless VF.
            if managed:
                raise RefusedError(
                    f"{record.map}: {record.address} is an NVIDIA vGPU VF; with managed='yes' "
                    "libvirt would take it from the nvidia driver and break the vGPU",
                    fix="give it with managed='no' (the VF stays on nvidia, as NVIDIA documents)",
                )
        elif not managed or wants_vfio:
            add(dev, record.map)
        for member in inventory.iommu_group_members(dev.iommu_group):
            if member == record.address:
                continue
            sibling = inventory.pci_device(member)
            if sibling is None or sibling.is_bridge:
                # Bridges share groups with their endpoints but vfio never needs them
                # bound (vfio_dev_viable exempts PCI bridges, drivers/vfio/pci/vfio_pci_core.c).
                continue
            reason = f"IOMMU group {dev.iommu_group} sibling of {record.map}"
            if member in in_domain:
                if not in_domain[member]:
                    add(sibling, reason)
                continue
            if sibling.driver in _VIABLE_DRIVERS or variants.is_vfio_driver(sibling.driver):
                continue
            if sibling.driver is None:
                add(sibling, reason)
                continue
            raise RefusedError(
                f"{record.map}: {record.address} shares IOMMU group {dev.iommu_group} with "
                f"{member} ({sibling.identity.ids}), which the host uses with driver {sibling.driver}; "
                "refusing to take it away",
                fix=f"give {member} to {domain} as well, unbind it from {sibling.driver} yourself, "
                "or move the card to a slot with its own IOMMU group",
            )
    return BindingPlan(domain, tuple(changes.values()), mdevs)


def _plan_mdevs(
    resolution: Resolution | None, store: Store, inventory: HostInventory
) -> tuple[MdevCreation, ...]:
    if resolution is None:
        return ()
    from ..core.mdev import MdevRecord, plan_mdevs

    records = [r for r in resolution.records if isinstance(r, MdevRecord)]
    return plan_mdevs(records, store, inventory, resolution.node) if records else ()


def read_overrides(plan: BindingPlan, reader: SysfsReader) -> BindingPlan:
    """The plan with each device's current driver_override filled in, to restore it later."""
    out = []
    for change in plan.changes:
        text = reader.text(reader.path(_dev(change.address, "driver_override")))
        override = None if text in (None, "", _NO_OVERRIDE) else text
        out.append(
            DeviceChange(change.address, change.driver, override, change.reason, change.vfio_driver)
        )
    return BindingPlan(plan.domain, tuple(out), plan.mdevs)


def planned_writes(
    doc: Document, store: Store, inventory: HostInventory, sysfs_root: Path | str
) -> list[str]:
    """The exact writes `prepare begin` would make, as shell lines (verify --dry-run)."""
    plan = plan_binding(doc, store, inventory)
    return [w.render(sysfs_root) for w in plan.writes()]


# -- the durable record of what was changed -------------------------------------


class StateFile:
    """`STATE_DIR/<domain>.json`: the original drivers, written before the first change."""

    def __init__(self, state_dir: Path | str, domain: str) -> None:
        self.domain = domain
        from pathlib import Path  # not at import: only starts that bind need a state file

        # Domain names may contain '/', which libvirt allows; keep one flat file per domain.
        self.path = Path(state_dir) / (domain.replace("/", "%2F") + ".json")

    def _data(self) -> dict[str, object] | None:
        import json

        where = Location(str(self.path))
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the vfio state file: {exc}", where=where) from None
        if not isinstance(data, dict):
            raise InputError("vfio state file has no device list", where=where)
        return data

    def load(self) -> list[DeviceChange]:
        data = self._data()
        if data is None:
            return []
        where = Location(str(self.path))
        entries = data.get("devices")
        if not isinstance(entries, list):
            raise InputError("vfio state file has no device list", where=where)
        return [DeviceChange.from_json(e, where) for e in entries]

    def load_mdevs(self) -> list[MdevCreation]:
        """The mdevs this hook created for the domain (and only those: release removes
        them, never an mdev that existed before the start)."""
        data = self._data()
        entries = data.get("mdevs", []) if data is not None else []
        if not entries:
            return []
        from ..core.mdev import MdevCreation

        where = Location(str(self.path))
        if not isinstance(entries, list):
            raise InputError("vfio state file has a malformed mdev list", where=where)
        return [MdevCreation.from_json(e, where) for e in entries]

    def save(
        self, changes: Sequence[DeviceChange], mdevs: Sequence[MdevCreation] | None = None
    ) -> None:
        """Record `changes` (and `mdevs`; None keeps the ones recorded now)."""
        if mdevs is None:
            try:
                mdevs = self.load_mdevs()
            except InputError:
                mdevs = []
        if not changes and not mdevs:
            self.remove()
            return
        import json

        record: dict[str, object] = {
            "domain": self.domain,
            "devices": [c.to_json() for c in changes],
        }
        if mdevs:
            record["mdevs"] = [m.to_json() for m in mdevs]
        data = json.dumps(record, indent=1).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise HostAccessError(
                f"cannot record the original drivers: {exc.strerror or exc}",
                where=Location(str(self.path)),
                fix="check the hook's state_dir",
            ) from None

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HostAccessError(
                f"cannot remove the vfio state file: {exc.strerror or exc}",
                where=Location(str(self.path)),
            ) from None


# -- doing it -----------------------------------------------------------------


def _restore_writes(change: DeviceChange, current: str | None) -> list[SysfsWrite]:
    """Writes that give a device back: clear the override, leave vfio-pci, reprobe."""
    addr = str(change.address)
    override = change.driver_override if change.driver_override is not None else "\n"
    out = [
        SysfsWrite(
            _dev(change.address, "driver_override"),
            override,
            f"restore driver_override of {addr}",
        )
    ]
    if current is not None and current != change.driver:
        out.append(
            SysfsWrite(f"bus/pci/drivers/{current}/unbind", addr, f"unbind {addr} from {current}")
        )
    if change.driver is not None and current != change.driver:
        # With driver_override cleared, drivers_probe lets the kernel pick the device's
        # own driver by its ID tables, as libvirt's virPCIDeviceReattach does.
        out.append(
            SysfsWrite(
                "bus/pci/drivers_probe", addr, f"probe {addr} (gives it back to {change.driver})"
            )
        )
    return out


def restore_writes(change: DeviceChange, current: str | None) -> list[SysfsWrite]:
    """The writes that give `change`'s device back while it is on driver `current`
    (`unbind --dry-run` prints them)."""
    return _restore_writes(change, current)


def restore_device(change: DeviceChange, writer: Writer, reader: SysfsReader) -> None:
    current = reader.link_name(reader.path(_dev(change.address, "driver")))
    for write in _restore_writes(change, current):
        writer.write(write)
    now = reader.link_name(reader.path(_dev(change.address, "driver")))
    if now != change.driver:
        raise HostAccessError(
            f"{change.address} is on driver {now or 'none'} after the restore, not {change.driver or 'none'}",
            fix=f"bind it by hand: echo {change.address} > /sys/bus/pci/drivers/{change.driver}/bind",
        )


def _mdev_exists(reader: SysfsReader, uuid: str) -> bool:
    return os.path.isdir(reader.path("bus", "mdev", "devices", uuid))


def create_mdev(mdev: MdevCreation, writer: Writer, reader: SysfsReader) -> None:
    writer.write(create_mdev_write(mdev))
    if not _mdev_exists(reader, mdev.uuid):
        raise HostAccessError(
            f"step 'create mdev {mdev.uuid} ({mdev.mdev_type}) on {mdev.parent}' made no "
            f"/sys/bus/mdev/devices/{mdev.uuid}",
            fix=f"check the parent's vendor driver and mdev_supported_types/{mdev.mdev_type}",
        )


def remove_mdev(mdev: MdevCreation, writer: Writer, reader: SysfsReader) -> None:
    """Remove an mdev the hook created; one that is gone already is fine."""
    if _mdev_exists(reader, mdev.uuid):
        writer.write(remove_mdev_write(mdev))


def bind_plan(plan: BindingPlan, writer: Writer, reader: SysfsReader, state: StateFile) -> None:
    """Create the plan's mdevs and move every device of the plan to vfio-pci, all or nothing.

    The original drivers and the mdevs about to be created are saved before the first
    write (merged with a record left by an earlier start that was never released, which
    knows the true originals). On any failure everything already changed is given back
    (created mdevs removed), and the error names the step.
    """
    if plan.empty:
        return
    plan = read_overrides(plan, reader)
    earlier = state.load()
    earlier_mdevs = state.load_mdevs()
    known = {c.address for c in earlier}
    known_mdevs = {m.uuid for m in earlier_mdevs}
    state.save(
        [*earlier, *(c for c in plan.changes if c.address not in known)],
        [*earlier_mdevs, *(m for m in plan.mdevs if m.uuid not in known_mdevs)],
    )
    touched: list[DeviceChange] = []
    created: list[MdevCreation] = []
    try:
        for mdev in plan.mdevs:
            create_mdev(mdev, writer, reader)
            created.append(mdev)
        for change in plan.changes:
            touched.append(change)
            for write in bind_writes(change):
                writer.write(write)
            now = reader.link_name(reader.path(_dev(change.address, "driver")))
            if now != change.vfio_driver:
                raise HostAccessError(
                    f"step 'probe {change.address} (binds {change.vfio_driver})' left it on "
                    f"driver {now or 'none'}, not {change.vfio_driver}",
                    fix=f"load the module (modprobe {change.vfio_driver.replace('-', '_')}) "
                    "and check the IOMMU is on",
                )
    except BaseException as failure:
        # Any failure, expected (a write refused) or not (a bug, an interrupt), leaves no
        # device half-bound and no mdev behind: everything touched is put back first.
        problems = []
        for change in reversed(touched):
            try:
                restore_device(change, writer, reader)
            except HostAccessError as exc:
                problems.append(exc.message)
            except Exception as exc:  # noqa: BLE001 - undo the other devices regardless
                problems.append(f"{change.address}: {exc!r}")
        for mdev in reversed(created):
            try:
                remove_mdev(mdev, writer, reader)
            except HostAccessError as exc:
                problems.append(exc.message)
            except Exception as exc:  # noqa: BLE001 - undo the others regardless
                problems.append(f"mdev {mdev.uuid}: {exc!r}")
        if problems:
            # Keep the state file: a later `release end` retries from it.
            what = failure.message if isinstance(failure, HostAccessError) else repr(failure)
            raise HostAccessError(
                f"{what}; undoing it also failed: {'; '.join(problems)}",
                where=failure.where if isinstance(failure, HostAccessError) else None,
            ) from None
        state.save(earlier, earlier_mdevs)
        raise


def release(state: StateFile, writer: Writer, reader: SysfsReader) -> list[str]:
    """Give back every device recorded for the domain and remove the mdevs the hook
    created; returns the problems (never raises)."""
    try:
        changes = state.load()
        mdevs = state.load_mdevs()
    except InputError as exc:
        return [exc.message]
    problems: list[str] = []
    failed: list[DeviceChange] = []
    for change in reversed(changes):
        try:
            restore_device(change, writer, reader)
        except HostAccessError as exc:
            problems.append(exc.message)
            failed.append(change)
    kept: list[MdevCreation] = []
    for mdev in reversed(mdevs):
        try:
            remove_mdev(mdev, writer, reader)
        except HostAccessError as exc:
            problems.append(exc.message)
            kept.append(mdev)
    try:
        state.save(list(reversed(failed)), list(reversed(kept)))
    except HostAccessError as exc:
        problems.append(exc.message)
    return problems
