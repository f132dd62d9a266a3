"""Allocation speed: a 256-device q35 guest in <= 20 ms, and linear growth.

Run standalone (`python bench/bench_allocation.py`) or from bench/run.py
(`main()`). Prints the best-of-N time per size and the 16 -> 256 growth ratio
against the 16-device baseline measured in the same run (linear = 16x).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hostdev_resolver.allocation import (
    Device,
    DeviceKind,
    DomainDevices,
    MachineType,
    Policy,
    allocate_addresses,
)
from hostdev_resolver.pciaddress import PciAddress

BUDGET_MS = 20.0
SIZES = (16, 32, 64, 128, 256)


def q35_guest(n: int) -> DomainDevices:
    """n PCI devices: a mix of virtio/e1000e NICs, virtio disks, host devices, e1000 (behind a bridge)."""
    devices = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            dev = Device(DeviceKind.INTERFACE, model="virtio", ref=i)
        elif kind == 1:
            dev = Device(
                DeviceKind.DISK,
                model="virtio",
                disk_target=f"vd{chr(97 + i // 26 % 26)}{chr(97 + i % 26)}",
                ref=i,
            )
        elif kind == 2:
            dev = Device(
                DeviceKind.HOSTDEV,
                type="pci",
                host_address=PciAddress(0, 0x40 + i // 8, 0, i % 8),
                ref=i,
            )
        else:
            dev = Device(DeviceKind.INTERFACE, model="e1000" if i % 8 == 3 else "e1000e", ref=i)
        devices.append(dev)
    return DomainDevices(MachineType.Q35, tuple(devices))


def measure(n: int, repeat: int = 15) -> float:
    domain = q35_guest(n)
    policy = Policy()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        allocate_addresses(domain, policy)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    results = {n: measure(n) for n in SIZES}
    for n, ms in results.items():
        print(f"allocation q35 {n:3d} devices: {ms:7.2f} ms")
    ratio = results[256] / results[16]
    print(f"allocation growth 16 -> 256 devices: x{ratio:.1f} (linear would be x16.0)")
    ok = results[256] <= BUDGET_MS and ratio <= 16 * 1.5
    print(
        f"allocation budget: 256 devices {results[256]:.2f} ms <= {BUDGET_MS} ms: {'ok' if ok else 'FAIL'}"
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
