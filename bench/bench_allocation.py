"""Allocation speed: a 256-device q35 guest in <= 20 ms with both policies, and linear growth.

Run standalone (`python bench/bench_allocation.py`) or from bench/run.py
(`main()`). Prints the in-process *median* of N runs per size and policy (not the
best run: a budget must hold for a typical run) and the 16 -> 256 growth ratio
against the 16-device baseline measured in the same run (linear = 16x).
"""

from __future__ import annotations

import statistics
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
from hostdev_resolver.records import replace

BUDGET_MS = 20.0
SIZES = (16, 32, 64, 128, 256)


def q35_guest(n: int) -> DomainDevices:
    """n PCI devices: virtio/e1000e/ne2k_pci NICs, virtio disks, host devices, and the
    conventional-PCI ones that go behind a pcie-to-pci-bridge (e1000, ich6 sound),
    plus virtio rng/input/vsock/memory devices placed late in libvirt's order."""
    devices = []
    late = (
        Device(DeviceKind.RNG, model="virtio"),
        Device(DeviceKind.INPUT, model="virtio", type="tablet"),
        Device(DeviceKind.SOUND, model="ich6"),
        Device(DeviceKind.SHMEM, model="ivshmem-plain"),
    )
    for i in range(n):
        kind = i % 5
        if kind == 4:
            devices.append(replace(late[i // 5 % len(late)], ref=i))
            continue
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
            model = ("e1000", "e1000e", "ne2k_pci")[i // 5 % 3]
            dev = Device(DeviceKind.INTERFACE, model=model, ref=i)
        devices.append(dev)
    return DomainDevices(MachineType.Q35, tuple(devices))


POLICIES = {
    "libvirt": Policy(),
    "tuned": Policy(name="tuned", spare_ports=4, hotplug=False),
}


def measure(n: int, policy: Policy, repeat: int = 21) -> float:
    """Median milliseconds of `repeat` runs (after one warm-up run)."""
    domain = q35_guest(n)
    allocate_addresses(domain, policy)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        allocate_addresses(domain, policy)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    ok = True
    for name, policy in POLICIES.items():
        results = {n: measure(n, policy) for n in SIZES}
        for n, ms in results.items():
            print(f"allocation {name} q35 {n:3d} devices: median {ms:7.2f} ms")
        ratio = results[256] / results[16]
        print(f"allocation {name} growth 16 -> 256 devices: x{ratio:.1f} (linear would be x16.0)")
        fits = results[256] <= BUDGET_MS and ratio <= 16
        print(
            f"allocation {name} budget: 256 devices {results[256]:.2f} ms <= {BUDGET_MS} ms, "
            f"growth <= x16: {'ok' if fits else 'FAIL'}"
        )
        ok = ok and fits
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
