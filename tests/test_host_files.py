"""Files that are not what they claim: FIFOs, device nodes and oversized attributes.

A FIFO blocks `open` until a writer comes and /dev/zero never ends, so each case runs
the real command in a subprocess under a timeout: a regression fails, it does not hang.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.hosttree import HostSpec, HostTree, PciSpec

ADDRESS = "0000:41:00.0"
TIMEOUT = 20
CLI = "import sys; from hostdev_resolver.doors.cli.main import main; sys.exit(main(sys.argv[1:]))"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-c", CLI, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hostdev-resolver {' '.join(args)} hung (> {TIMEOUT} s)")


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def host(tmp_path: Path) -> tuple[Path, Path]:
    spec = HostSpec(pci=[PciSpec(ADDRESS, "10de", "1e84", "10de", "12a4", "030000", 31, 0)])
    tree = HostTree.build(tmp_path / "sys", spec)
    return tree.root, tree.device_path(ADDRESS)


# The IDs come from `uevent` (one read) where the tree has one, else from vendor/device.
@pytest.mark.parametrize("attribute", ["uevent", "config"])
def test_a_fifo_in_a_host_tree_is_refused_not_waited_on(tmp_path: Path, attribute: str) -> None:
    root, device = host(tmp_path)
    (device / attribute).unlink()
    os.mkfifo(device / attribute)
    result = run_cli("inventory", "--sysfs", str(root), "--node", "hv1")
    assert result.returncode == 2
    line = one_line(result)
    assert f"{ADDRESS}/{attribute} is not a regular file, so it is no sysfs attribute" in line


@pytest.mark.parametrize("attribute", ["uevent", "config"])
def test_a_link_to_dev_zero_in_a_host_tree_is_refused(tmp_path: Path, attribute: str) -> None:
    root, device = host(tmp_path)
    (device / attribute).unlink()
    (device / attribute).symlink_to("/dev/zero")
    result = run_cli("inventory", "--sysfs", str(root), "--node", "hv1")
    assert result.returncode == 2
    assert f"{ADDRESS}/{attribute} is not a regular file" in one_line(result)


def test_an_attribute_larger_than_a_page_is_refused(tmp_path: Path) -> None:
    root, device = host(tmp_path)
    (device / "config").write_bytes(bytes(4097))  # PCIe config space is 4 KiB
    result = run_cli("inventory", "--sysfs", str(root), "--node", "hv1")
    assert result.returncode == 2
    assert f"{ADDRESS}/config is larger than 4096 bytes" in one_line(result)
    (device / "config").write_bytes(bytes(4096))
    assert run_cli("inventory", "--sysfs", str(root), "--node", "hv1").returncode == 0


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_store_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    host(tmp_path)
    store = tmp_path / "mappings.xml"
    if kind == "fifo":
        os.mkfifo(store)
    else:
        store.symlink_to("/dev/zero")
    result = run_cli("map", "list", "--store", str(store))
    assert result.returncode == 2
    what = "a FIFO" if kind == "fifo" else "a character device"
    assert f"{store}: the mapping store is {what}, not a regular file" in one_line(result)
