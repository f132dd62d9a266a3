"""The udev source under umockdev: each cases_*.py module runs inside `umockdev-run`.

umockdev's preload library redirects /sys (and libudev with it) into a testbed, which
must be set up before the process starts, so the cases run in a child pytest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.host.udev import UdevInventory
from hostdev_resolver.model.errors import HostAccessError

from .testbed import HERE, run_cases


@pytest.mark.umockdev
@pytest.mark.parametrize("module", ["cases_inventory.py", "cases_hotplug.py"])
def test_cases_under_umockdev(module: str, tmp_path: Path) -> None:
    if shutil.which("umockdev-run") is None:
        pytest.skip("umockdev-run is not installed (apt-get install -y umockdev)")
    run = run_cases(HERE / module, tmp_path)
    assert run.returncode == 0, run.output
    assert run.tests > 0, run.output
    # A skipped case would be a case that did not run: not a pass.
    assert (run.failures, run.errors, run.skipped) == (0, 0, 0), run.output


class _ContextWithoutSysfs:
    sys_path = "/nonexistent/sys"


def test_no_sysfs_is_a_host_access_error() -> None:
    with pytest.raises(HostAccessError) as caught:
        UdevInventory(context=_ContextWithoutSysfs())
    assert caught.value.exit_code == 3
    assert "/nonexistent/sys" in caught.value.message


def test_live_host_sources_agree() -> None:
    """This machine's real kernel: its uevent spellings give the sysfs values."""
    if not Path("/sys/bus/pci/devices").is_dir():
        pytest.skip("no /sys/bus/pci on this machine")
    udev, sysfs = UdevInventory(), SysfsInventory("/sys")
    assert list(udev.pci_devices()) == list(sysfs.pci_devices())
    assert list(udev.usb_devices()) == list(sysfs.usb_devices())
