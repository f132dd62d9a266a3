"""Guest PCI address allocation (SPEC §8).

    allocation = allocate_addresses(domain, Policy())          # pure
    text = allocate_domain_xml(xml_bytes, "guest.xml", policy)  # XML in, XML out

`Policy(name="libvirt")` reproduces libvirt 9.0's `virsh define`;
`Policy(name="tuned", ...)` adds spare ports, NUMA placement, multifunction
grouping and hotplug-off passthrough ports (see tuned.py).
"""

from __future__ import annotations

from .domainio import read_domain, write_allocation
from .libvirt_policy import assign
from .model import (
    AddressConflictError,
    Allocation,
    Device,
    DeviceKind,
    DomainDevices,
    HostDeviceInfo,
    InvalidAddressError,
    LibvirtRefusalError,
    MachineType,
    PciControllerOptions,
    Policy,
    UnmodeledMachineError,
    UnsatisfiableError,
    UnsupportedDomainError,
)
from .tuned import allocate_tuned

# Not typing.TYPE_CHECKING: see model/records.py.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ...xml.xmldoc import Document

__all__ = [
    "AddressConflictError",
    "Allocation",
    "Device",
    "DeviceKind",
    "DomainDevices",
    "HostDeviceInfo",
    "InvalidAddressError",
    "LibvirtRefusalError",
    "MachineType",
    "PciControllerOptions",
    "Policy",
    "UnmodeledMachineError",
    "UnsatisfiableError",
    "UnsupportedDomainError",
    "allocate_addresses",
    "allocate_domain_xml",
]


def allocate_addresses(domain: DomainDevices, policy: Policy | None = None) -> Allocation:
    """Place every PCI device of `domain`; given addresses never move."""
    policy = policy or Policy()
    if policy.name == "libvirt":
        return assign(domain)
    if policy.name == "tuned":
        return allocate_tuned(domain, policy)
    raise ValueError(f"unknown allocation policy {policy.name!r}")


def allocate_domain_xml(
    data: bytes, source: str, policy: Policy | None = None, *, doc: Document | None = None
) -> bytes:
    """Read domain XML, allocate, and splice the result into the same bytes. `doc`: `data`
    as the caller already parsed it."""
    domain_file = read_domain(data, source, doc)
    allocation = allocate_addresses(domain_file.domain, policy)
    return write_allocation(domain_file, allocation)
