"""The udev tests' host: one set of devices, as a umockdev testbed and as a sysfs tree.

`data/host.umockdev` (umockdev-record format) and `data/host.json` (for
tests/support/hosttree.py) describe the same devices; `data/kernel.json` holds the kernel
objects that umockdev cannot describe because they are not devices: IOMMU groups and
PCI hotplug slots. The cases run inside `umockdev-run`, where libudev (and so pyudev)
sees the fake devices and every access to /sys is redirected into $UMOCKDEV_DIR/sys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.support.hosttree import HostSpec, HostTree

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
REPO = HERE.parents[1]
DEVICES = DATA / "host.umockdev"


def umockdev_sys_root() -> Path:
    """The real directory behind /sys inside umockdev-run."""
    root = os.environ.get("UMOCKDEV_DIR")
    if not root:
        raise RuntimeError("not inside umockdev-run: UMOCKDEV_DIR is not set")
    return Path(root) / "sys"


def add_kernel_objects(sys_root: Path) -> None:
    """Create kernel/iommu_groups and bus/pci/slots as the kernel lays them out."""
    kernel = json.loads((DATA / "kernel.json").read_text())
    for group, members in kernel["iommu_groups"].items():
        devices = sys_root / "kernel" / "iommu_groups" / group / "devices"
        devices.mkdir(parents=True, exist_ok=True)
        for address in members:
            link = devices / address
            if not link.is_symlink():
                target = os.readlink(sys_root / "bus" / "pci" / "devices" / address)
                # bus/pci/devices/X -> ../../../devices/...; from groups/N/devices one more up.
                link.symlink_to(os.path.join("..", target))
    for name, address in kernel["pci_slots"].items():
        slot = sys_root / "bus" / "pci" / "slots" / name
        slot.mkdir(parents=True, exist_ok=True)
        (slot / "address").write_text(address + "\n")


def unplug_pci(sys_root: Path, address: str) -> None:
    """What the kernel removes on surprise removal of a PCI function."""
    import shutil

    bus_link = sys_root / "bus" / "pci" / "devices" / address
    device = (bus_link.parent / os.readlink(bus_link)).resolve()
    for link in [bus_link, *sys_root.glob(f"kernel/iommu_groups/*/devices/{address}")]:
        link.unlink()
    shutil.rmtree(device)


def build_sysfs_twin(root: Path) -> HostTree:
    """The same host as a sysfs tree for `SysfsInventory`."""
    spec = HostSpec.load(DATA / "host.json")
    tree = HostTree.build(root, spec)
    # hosttree binds only PCI drivers; the USB core driver `usb` is bound to every device.
    for port, driver in spec.extra.get("usb_drivers", {}).items():
        device = (root / "bus" / "usb" / "devices" / port).resolve()
        drivers = root / "bus" / "usb" / "drivers" / driver
        drivers.mkdir(parents=True, exist_ok=True)
        (device / "driver").symlink_to(os.path.relpath(drivers, device))
    return tree


@dataclass(frozen=True)
class InnerRun:
    returncode: int
    output: str
    tests: int
    failures: int
    errors: int
    skipped: int


def run_cases(module: Path, workdir: Path, *, devices: Path = DEVICES) -> InnerRun:
    """Run one module of cases with pytest inside `umockdev-run -d devices`."""
    junit = workdir / "junit.xml"
    proc = subprocess.run(
        [
            "umockdev-run",
            "-d",
            str(devices),
            "--",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            f"--basetemp={workdir / 'tmp'}",
            str(module),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if not junit.exists():
        return InnerRun(proc.returncode, output, 0, 0, 0, 0)
    suite = ET.parse(junit).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    return InnerRun(
        proc.returncode,
        output,
        tests=int(suite.get("tests", "0")),
        failures=int(suite.get("failures", "0")),
        errors=int(suite.get("errors", "0")),
        skipped=int(suite.get("skipped", "0")),
    )
