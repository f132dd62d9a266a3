"""Allocation speed in-process: a 256-device q35 guest in <= 20 ms with both policies,
and linear growth.

Run standalone (`python bench/bench_allocation.py`) or from bench/run.py
(`main()`). Prints the median time per size and policy (runs interleaved across
sizes, never best-of: a budget must hold for a typical run) and the 16 -> 256 growth
ratio against the 16-device figure of the same run (linear = 16x). The whole
`allocate` command is timed as a process in bench_commands.py.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src"), str(Path(__file__).parent)]

from timing import Target  # noqa: E402

from hostdev_resolver.core.allocation import (  # noqa: E402
    Device,
    DeviceKind,
    DomainDevices,
    MachineType,
    Policy,
    allocate_addresses,
)
from hostdev_resolver.model.pciaddress import PciAddress  # noqa: E402
from hostdev_resolver.model.records import replace  # noqa: E402

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


REPEAT = int(os.environ.get("BENCH_ALLOC_RUNS", "21"))
POLICIES = (Policy(), Policy(name="tuned", spare_ports=4, hotplug=False))


def measure(policy: Policy, repeat: int = REPEAT) -> dict[int, float]:
    """Median ms per size; the sizes take turns, so load hits them alike."""
    guests = {n: q35_guest(n) for n in SIZES}
    samples: dict[int, list[float]] = {n: [] for n in SIZES}
    for _ in range(repeat):
        for n, guest in guests.items():
            start = time.perf_counter()
            allocate_addresses(guest, policy)
            samples[n].append(time.perf_counter() - start)
    return {n: statistics.median(v) * 1000 for n, v in samples.items()}


def main() -> list[Target]:
    targets = []
    for policy in POLICIES:
        results = measure(policy)
        print(f"allocation, policy {policy.name} ({REPEAT} interleaved runs, median)")
        for n, ms in results.items():
            print(f"  q35 {n:3d} devices: {ms:7.2f} ms")
        ratio = results[256] / results[16]
        targets += [
            Target(f"allocate in-process, 256 devices, {policy.name} (ms / 20 ms)", results[256] / BUDGET_MS, 1.0),
            Target(f"allocate growth 16 -> 256, {policy.name} (/ linear 16x)", ratio / 16, 1.0),
        ]  # fmt: skip
    for target in targets:
        print(target.line())
    return targets


if __name__ == "__main__":
    sys.exit(0 if all(t.ok for t in main()) else 1)
