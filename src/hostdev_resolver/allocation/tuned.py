"""Policy `tuned`: libvirt's rules plus what libvirt does not do."""

from __future__ import annotations

from .libvirt_policy import EngineOptions, assign
from .model import Allocation, DomainDevices, Policy


def allocate_tuned(domain: DomainDevices, policy: Policy) -> Allocation:
    return assign(domain, EngineOptions(spare_ports=policy.spare_ports))
