"""Finding a recorded device on a host: at its address, moved elsewhere, gone, or ambiguous.

Pure: takes what was recorded (store entry or domain metadata) and a `HostInventory`.
Resolution and verification both use it, so a device is found the same way when
a domain is defined and when it starts.
"""

from __future__ import annotations

from ..model.records import frozen, replace

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Final

    from ..model.identity import PciIdentity, UsbIdentity
    from ..model.inventory import HostInventory, PciDevice, UsbDevice
    from ..model.pciaddress import PciAddress
    from ..xml.store import PciEntry


class Status:
    """How a recorded device was found. Plain strings (no enum: the hook does not import
    enum), so findings serialise as they are."""

    OK: Final = "ok"
    SHIFTED: Final = "shifted"
    MISMATCH: Final = "mismatch"
    MISSING: Final = "missing"
    AMBIGUOUS: Final = "ambiguous"


@frozen
class PciExpectation:
    """What we expect a PCI device to be, and where."""

    address: PciAddress
    identity: PciIdentity
    iommu_group: int | None = None
    physical_slot: str | None = None
    port_path: str | None = None


def pci_expectation(entry: PciEntry) -> PciExpectation:
    """What the store says a PCI device is, and where: what locate compares with."""
    return PciExpectation(
        entry.address, entry.identity, entry.iommu_group, entry.physical_slot, entry.port_path
    )


@frozen
class PciLocation:
    status: str
    expected: PciExpectation
    at_address: PciDevice | None  # what sits at the expected address now
    differences: tuple[str, ...]  # how at_address differs from the expectation
    found: PciDevice | None = None  # the expected device, where it is now
    candidates: tuple[PciDevice, ...] = ()  # when several fit and nothing tells them apart
    # Devices with the same IDs elsewhere that the recorded slot or port path rules out:
    # named in the message (the card may have been moved), never followed.
    lookalikes: tuple[PciDevice, ...] = ()

    @property
    def device(self) -> PciDevice | None:
        """The expected device where it is now (at its address, or moved), if found."""
        if self.status == Status.OK:
            return self.at_address
        if self.status == Status.SHIFTED:
            return self.found
        return None


# -- what a source can observe ------------------------------------------------------
# Some sources cannot show every recorded field (libvirt's node-device XML has no PCI
# subsystem IDs, DSN, slot name or USB serial). Such an inventory names them in
# `unobserved_pci` / `unobserved_usb`; they are left out of the comparison (the hook,
# reading sysfs on the node itself, checks them at start) rather than counted as different.


def unobserved_pci(inventory: object) -> frozenset[str]:
    value: object = getattr(inventory, "unobserved_pci", None)
    return frozenset(str(v) for v in value) if isinstance(value, frozenset) else frozenset()


def unobserved_usb(inventory: object) -> frozenset[str]:
    value: object = getattr(inventory, "unobserved_usb", None)
    return frozenset(str(v) for v in value) if isinstance(value, frozenset) else frozenset()


def observable_pci_identity(identity: PciIdentity, blind: frozenset[str]) -> PciIdentity:
    if "subsystem" in blind:
        identity = replace(identity, subsystem_vendor=None, subsystem_device=None)
    if "serial" in blind:
        identity = replace(identity, serial=None)
    return identity


def observable_pci(expected: PciExpectation, blind: frozenset[str]) -> PciExpectation:
    """`expected` without the fields a source cannot show (they are checked at start)."""
    if not blind:
        return expected
    return replace(
        expected,
        identity=observable_pci_identity(expected.identity, blind),
        physical_slot=None if "physical_slot" in blind else expected.physical_slot,
        port_path=None if "port_path" in blind else expected.port_path,
    )


def observable_usb_identity(identity: UsbIdentity, blind: frozenset[str]) -> UsbIdentity:
    return replace(identity, serial=None) if "serial" in blind else identity


def observable_usb(expected: UsbExpectation, blind: frozenset[str]) -> UsbExpectation:
    if not blind:
        return expected
    return replace(
        expected,
        identity=observable_usb_identity(expected.identity, blind),
        port_path=None if "port_path" in blind else expected.port_path,
    )


def pci_differences(expected: PciExpectation, dev: PciDevice) -> list[str]:
    out = expected.identity.differences(dev.identity)
    if (dev.identity.vendor, dev.identity.device) != (
        expected.identity.vendor,
        expected.identity.device,
    ):
        return out[:1]  # another model altogether: the rest would only be noise
    if expected.iommu_group is not None and expected.iommu_group != dev.iommu_group:
        out.append(f"is in IOMMU group {dev.iommu_group} (expected {expected.iommu_group})")
    if expected.physical_slot is not None and expected.physical_slot != dev.physical_slot:
        out.append(
            f"is in slot {dev.physical_slot or 'none'} (expected slot {expected.physical_slot})"
        )
    if expected.port_path is not None and expected.port_path != dev.port_path:
        out.append(f"is behind port {dev.port_path or 'unknown'} (expected {expected.port_path})")
    return out


def _tell_apart(expected: PciExpectation, candidates: list[PciDevice]) -> list[PciDevice]:
    """Narrow identical devices by what was recorded: serial (DSN), then slot, then port path."""
    ident = expected.identity
    if ident.serial is not None:
        return [d for d in candidates if d.identity.serial == ident.serial]
    if expected.physical_slot is not None:
        return [d for d in candidates if d.physical_slot == expected.physical_slot]
    if expected.port_path is not None:
        return [d for d in candidates if d.port_path == expected.port_path]
    return candidates


def locate_pci(expected: PciExpectation, inventory: HostInventory) -> PciLocation:
    expected = observable_pci(expected, unobserved_pci(inventory))
    at = inventory.pci_device(expected.address)
    diffs = tuple(pci_differences(expected, at)) if at is not None else ()
    if at is not None and not diffs:
        return PciLocation(Status.OK, expected, at, ())
    # Not (quite) there: look for the same card anywhere on the host. Only the model
    # (vendor/device/subsystem/class) must match to be a candidate; the IOMMU group
    # of a moved card legitimately differs.
    same_model = [
        d
        for d in inventory.pci_devices()
        if d.address != expected.address
        and expected.identity.same_model(d.identity)
        and (
            expected.identity.class_code is None
            or expected.identity.class_code == d.identity.class_code
        )
    ]
    fitting = _tell_apart(expected, same_model)
    if len(fitting) == 1:
        return PciLocation(Status.SHIFTED, expected, at, diffs, fitting[0])
    if len(fitting) > 1:
        return PciLocation(Status.AMBIGUOUS, expected, at, diffs, None, tuple(fitting))
    status = Status.MISMATCH if at is not None else Status.MISSING
    # Without a serial, a card moved to another slot or port looks exactly like another
    # card of its model: say where they are, but only a person can tell which it is.
    lookalikes = tuple(same_model) if expected.identity.serial is None else ()
    return PciLocation(status, expected, at, diffs, lookalikes=lookalikes)


@frozen
class UsbExpectation:
    identity: UsbIdentity
    bus: int | None = None
    device: int | None = None
    port_path: str | None = None


@frozen
class UsbLocation:
    status: str
    expected: UsbExpectation
    found: UsbDevice | None = None
    candidates: tuple[UsbDevice, ...] = ()
    at_address: UsbDevice | None = None  # what has the recorded bus/device now
    unique_model: bool = True  # no other device with the same vendor:product


def locate_usb(expected: UsbExpectation, inventory: HostInventory) -> UsbLocation:
    expected = observable_usb(expected, unobserved_usb(inventory))
    devices = inventory.usb_devices()
    ident = expected.identity
    same_model = [
        d
        for d in devices
        if (d.identity.vendor, d.identity.product) == (ident.vendor, ident.product)
    ]
    fitting = [d for d in same_model if ident.serial is None or d.identity.serial == ident.serial]
    if len(fitting) > 1 and ident.serial is None and expected.port_path is not None:
        fitting = [d for d in fitting if d.port_path == expected.port_path]
    at = None
    if expected.bus is not None and expected.device is not None:
        at = next(
            (d for d in devices if (d.bus, d.device) == (expected.bus, expected.device)), None
        )
    unique = len(same_model) <= 1
    if len(fitting) > 1:
        if at is not None and at in fitting:
            return UsbLocation(Status.OK, expected, at, (), at, unique)
        return UsbLocation(Status.AMBIGUOUS, expected, None, tuple(fitting), at, unique)
    if not fitting:
        status = Status.MISMATCH if at is not None else Status.MISSING
        return UsbLocation(status, expected, None, (), at, unique)
    dev = fitting[0]
    if expected.bus is not None and (dev.bus, dev.device) != (expected.bus, expected.device):
        return UsbLocation(Status.SHIFTED, expected, dev, (), at, unique)
    return UsbLocation(Status.OK, expected, dev, (), at, unique)


def describe_pci(name: str, node: str, loc: PciLocation) -> str:
    """One sentence on what became of a PCI device; resolve and verify word it alike."""
    exp = loc.expected
    if loc.at_address is None:
        here = f"{name}: no device is at {exp.address} on node {node}"
    elif loc.differences:
        here = f"{name}: {exp.address} on node {node} " + "; ".join(loc.differences)
    else:
        here = f"{name}: {exp.address} on node {node} is as expected"
    if loc.status == Status.SHIFTED and loc.found is not None:
        via = f"serial {exp.identity.serial}" if exp.identity.serial else _distinguisher(exp)
        return f"{here}; the device with {via} is now at {loc.found.address}"
    if loc.status == Status.AMBIGUOUS:
        where = ", ".join(str(d.address) for d in loc.candidates)
        return (
            f"{here}; {len(loc.candidates)} identical {exp.identity.ids} devices ({where}) "
            "cannot be told apart (no serial, slot or port path recorded)"
        )
    if loc.status in (Status.MISMATCH, Status.MISSING):
        if loc.lookalikes:
            return f"{here}; {_lookalikes_text(exp, loc.lookalikes)}"
        return (
            f"{here}; no other {exp.identity.ids} device with the recorded identity is on the host"
        )
    return here


def _lookalikes_text(exp: PciExpectation, lookalikes: tuple[PciDevice, ...]) -> str:
    if exp.physical_slot is not None:
        recorded, other = f"in slot {exp.physical_slot}", "in another slot"
    else:
        recorded, other = f"behind port {exp.port_path}", "behind another port"
    where = ", ".join(str(d.address) for d in lookalikes)
    found = (
        f"a device with the same IDs is at {where}"
        if len(lookalikes) == 1
        else f"devices with the same IDs are at {where}"
    )
    return f"no {exp.identity.ids} device is {recorded} any more; {found} {other}"


def lookalike_fix(name: str, node: str, loc: PciLocation) -> str | None:
    """The fix when only same-ID devices elsewhere are left: re-map one, if it is the card."""
    if loc.status not in (Status.MISMATCH, Status.MISSING) or not loc.lookalikes:
        return None
    if len(loc.lookalikes) == 1:
        which, address = "it is", str(loc.lookalikes[0].address)
    else:
        which, address = "one of them is", "BDF"
    return (
        f"if {which} this card, re-map it with "
        f"'hostdev-resolver map add pci {name} --node {node} --address {address}'"
    )


def _distinguisher(exp: PciExpectation) -> str:
    if exp.physical_slot is not None:
        return f"identity {exp.identity.ids} in slot {exp.physical_slot}"
    if exp.port_path is not None:
        return f"identity {exp.identity.ids} behind port {exp.port_path}"
    return f"identity {exp.identity.ids}"


def describe_usb(name: str, node: str, loc: UsbLocation) -> str:
    exp = loc.expected
    serial = f" with serial {exp.identity.serial}" if exp.identity.serial else ""
    if loc.status == Status.SHIFTED and loc.found is not None:
        return (
            f"{name}: USB {exp.identity.ids}{serial} on node {node} moved from bus {exp.bus} device "
            f"{exp.device} to bus {loc.found.bus} device {loc.found.device} (replugged)"
        )
    if loc.status == Status.AMBIGUOUS:
        at = ", ".join(f"bus {d.bus} device {d.device}" for d in loc.candidates)
        return (
            f"{name}: {len(loc.candidates)} identical USB {exp.identity.ids} devices on node {node} ({at}) "
            "cannot be told apart (no serial or port recorded)"
        )
    if loc.status in (Status.MISMATCH, Status.MISSING):
        return f"{name}: USB {exp.identity.ids}{serial} is not plugged in on node {node}"
    return f"{name}: USB {exp.identity.ids}{serial} is present on node {node}"
