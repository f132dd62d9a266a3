"""Run inside `umockdev-run` by test_umockdev.py: pyudev sees the testbed's SCSI disks.

Checks that udev's view (ID_WWN_WITH_EXTENSION, ID_SCSI_SERIAL, DEVLINKS) and the
kernel's (the parent scsi device's vpd_pg83/vpd_pg80 attributes) name the same LUN.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pyudev

from hostdev_resolver.host.scsisysfs import lun_identity_from_udev, udev_by_id_links
from hostdev_resolver.model.vpd import parse_pg80, parse_pg83
from hostdev_resolver.model.wwn import Wwn


def _raw(device: pyudev.Device, name: str) -> bytes:
    # libudev returns sysattrs as C strings, so a VPD page (which starts with a NUL
    # peripheral byte) comes back empty through device.attributes: read the file.
    return (Path(device.sys_path) / name).read_bytes()


@pytest.fixture(scope="module")
def disks() -> dict[str, pyudev.Device]:
    if "UMOCKDEV_DIR" not in os.environ:
        pytest.fail("not running under umockdev-run")
    context = pyudev.Context()
    return {d.sys_name: d for d in context.list_devices(subsystem="block")}


def test_sas_disk_udev_and_vpd_agree(disks: dict[str, pyudev.Device]) -> None:
    sda = disks["sda"]
    identity = lun_identity_from_udev(sda)
    assert identity is not None
    assert identity.wwn == Wwn.parse("0x5000c500a1b2c3d4")
    assert identity.serial == "ZC1ABCDE"
    scsi = sda.find_parent("scsi", "scsi_device")
    assert scsi is not None
    assert parse_pg83(_raw(scsi, "vpd_pg83")).wwn == identity.wwn
    assert parse_pg80(_raw(scsi, "vpd_pg80")) == identity.serial
    assert udev_by_id_links(sda) == ("scsi-35000c500a1b2c3d4", "wwn-0x5000c500a1b2c3d4")


def test_netapp_lun_full_wwn_comes_from_the_extension(disks: dict[str, pyudev.Device]) -> None:
    identity = lun_identity_from_udev(disks["sdb"])
    assert identity is not None
    assert str(identity.wwn) == "0x600a0980383030534f2b4a6c61357a41"
    scsi = disks["sdb"].find_parent("scsi", "scsi_device")
    assert parse_pg83(_raw(scsi, "vpd_pg83")).wwn == identity.wwn


def test_usb_stick_without_wwn_is_named_by_its_serial(disks: dict[str, pyudev.Device]) -> None:
    identity = lun_identity_from_udev(disks["sde"])
    assert identity is not None
    assert identity.wwn is None
    assert identity.serial == "60A44C413E4EF0A0B9B4"
    assert udev_by_id_links(disks["sde"]) == (
        "usb-Kingston_DataTraveler_3.0_60A44C413E4EF0A0B9B4-0:0",
    )
    scsi = disks["sde"].find_parent("scsi", "scsi_device")
    assert parse_pg83(_raw(scsi, "vpd_pg83")).t10_vendor_id == (
        "KingstonDataTraveler 3.0 60A44C413E4EF0A0B9B4"
    )
