"""What to bind to which vfio driver for a guest (SPEC §6): the plan, pure.

Which devices: every recorded PCI device of the domain whose `<hostdev>` libvirt will
not bind itself (`managed='no'`, libvirt's default when the attribute is absent, or a
mapping with `vfio='yes'`), plus the other endpoints of their IOMMU groups. libvirt's
`managed='yes'` detaches the device itself but never its group siblings, and the kernel's
vfio refuses to open a group unless every device in it is unbound or bound to a
vfio/stub driver (drivers/vfio/group.c, vfio_dev_viable). The hook therefore binds the
siblings (unbound ones too: a host driver probing an unbound sibling of a group in use
would break isolation), and refuses — never unbinds — a sibling a host driver is using.

How, as writes: the kernel's `driver_override` protocol
(Documentation/ABI/testing/sysfs-bus-pci): write `vfio-pci` to `driver_override`,
write the address to the current driver's `unbind`, write the address to
`/sys/bus/pci/drivers_probe`; the probe then only considers the overriding driver. Not
`new_id`, which makes vfio-pci claim every device of that vendor:device ID.

The plan asks the inventory, never the host: its devices and groups, its PCI facts
(an NVIDIA VF's vGPU type, a device's modalias) and whether the IOMMU is on
(`model.inventory.iommu_off`). `host.vfio` carries a plan out (the one sysfs writer,
the state file) and gives the devices back.
"""

from __future__ import annotations

import os

from ..model.errors import InputError, Location, RefusedError
from ..model.inventory import iommu_off
from ..model.pciaddress import PciAddress
from ..model.pcifacts import facts_of
from ..model.records import frozen
from ..xml.domain import devices_of, domain_name, is_pci_source_element, pci_source_address
from ..xml.store import PciMapping, Store
from .metadata import PciRecord, Resolution, read_resolution

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from pathlib import Path

    from ..model.inventory import HostInventory, PciDevice
    from ..xml.xmldoc import Document
    from .mdev import MdevCreation
    from .variants import VfioVariants


VFIO_DRIVER = "vfio-pci"
# Drivers the kernel's vfio accepts in a viable group besides vfio-pci itself
# (drivers/vfio/group.c: vfio_driver_allowed, "pci-stub").
VIABLE_DRIVERS = frozenset({VFIO_DRIVER, "pci-stub"})


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


@frozen
class DeviceChange:
    """A device the hook moves to vfio-pci, and what it had before."""

    address: PciAddress
    driver: str | None  # the original driver; None = it was unbound
    driver_override: str | None  # the original override; None = unset
    reason: str  # "gpu0" or "IOMMU group 31 sibling of gpu0"
    vfio_driver: str = VFIO_DRIVER  # vfio-pci, or a variant driver (core.variants)

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


def attribute_path(address: PciAddress, attribute: str) -> str:
    """A device's attribute, relative to the sysfs root."""
    return f"bus/pci/devices/{address}/{attribute}"


def bind_writes(change: DeviceChange) -> list[SysfsWrite]:
    addr = str(change.address)
    out = [
        SysfsWrite(
            attribute_path(change.address, "driver_override"),
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


def plan_binding(
    doc: Document,
    store: Store,
    inventory: HostInventory,
    variants: VfioVariants | None = None,
    *,
    resolution: Resolution | None = None,
) -> BindingPlan:
    """What must move to vfio-pci for this domain; refuses a group a host driver uses.

    `variants`: the host's vfio variant drivers; each device the hook binds goes to the
    one libvirt ≥ 10.0 would pick (or to the `<driver model='…'/>` its hostdev names).
    `resolution`: the domain's record when the caller has read it already.
    """
    from .variants import VfioVariants

    variants = variants or VfioVariants()
    facts = facts_of(inventory)
    domain = domain_name(doc)
    if resolution is None:
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
            if sibling.driver in VIABLE_DRIVERS or variants.is_vfio_driver(sibling.driver):
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
    from .mdev import MdevRecord, plan_mdevs

    records = [r for r in resolution.records if isinstance(r, MdevRecord)]
    return plan_mdevs(records, store, inventory, resolution.node) if records else ()


def planned_writes(
    doc: Document, store: Store, inventory: HostInventory, sysfs_root: Path | str
) -> list[str]:
    """The exact writes `prepare begin` would make, as shell lines (verify --dry-run)."""
    plan = plan_binding(doc, store, inventory)
    return [w.render(sysfs_root) for w in plan.writes()]
