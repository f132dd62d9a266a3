"""Carrying a vfio binding plan out, and giving the devices back afterwards (SPEC §6).

The plan (what to bind to which vfio driver, and why) is `core.vfioplan`'s. Here it is
done: every write goes through one `Writer`, so the sequence is recorded, printed by
`verify --dry-run`, and replayed against a simulated kernel in tests. The original
drivers are written durably to the state directory before the first write; any failed
step puts back everything already changed. Afterwards the `driver` link must name the
vfio driver (the probe does nothing, silently, when vfio-pci is not loaded).
"""

from __future__ import annotations

import os

from ..core.vfioplan import (
    BindingPlan,
    DeviceChange,
    SysfsWrite,
    attribute_path,
    bind_writes,
    create_mdev_write,
)
from ..model.errors import HostAccessError, InputError, Location

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Protocol

    from ..core.mdev import MdevCreation
    from .sysfs import SysfsReader

    class Writer(Protocol):
        """Where sysfs writes go: the real kernel, a simulation, or a dry-run list."""

        root: Path

        def write(self, write: SysfsWrite) -> None: ...


# `driver_override` reads "(null)" when unset (drivers/pci/pci-sysfs.c); writing a
# lone newline clears it.
_NO_OVERRIDE = "(null)"


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


def remove_mdev_write(mdev: MdevCreation) -> SysfsWrite:
    return SysfsWrite(mdev.remove_path(), "1", f"remove mdev {mdev.uuid} from {mdev.parent}")


def read_overrides(plan: BindingPlan, reader: SysfsReader) -> BindingPlan:
    """The plan with each device's current driver_override filled in, to restore it later."""
    out = []
    for change in plan.changes:
        text = reader.text(reader.path(attribute_path(change.address, "driver_override")))
        override = None if text in (None, "", _NO_OVERRIDE) else text
        out.append(
            DeviceChange(change.address, change.driver, override, change.reason, change.vfio_driver)
        )
    return BindingPlan(plan.domain, tuple(out), plan.mdevs)


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
            attribute_path(change.address, "driver_override"),
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
    current = reader.link_name(reader.path(attribute_path(change.address, "driver")))
    for write in _restore_writes(change, current):
        writer.write(write)
    now = reader.link_name(reader.path(attribute_path(change.address, "driver")))
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
            now = reader.link_name(reader.path(attribute_path(change.address, "driver")))
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
