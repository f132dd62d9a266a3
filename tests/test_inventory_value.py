"""The inventory as one value (`model.inventory.IndexedInventory`): the lookups every
source that reads a whole host shares (a JSON snapshot, libvirt node devices)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.core.locate import unobserved_pci
from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.nodedev import PCI_NOT_IN_NODEDEV, USB_NOT_IN_NODEDEV, NodedevInventory
from hostdev_resolver.host.snapshot import HostSnapshot
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.model.identity import PciIdentity, UsbIdentity
from hostdev_resolver.model.inventory import (
    IndexedInventory,
    PciDevice,
    RememberedInventory,
    UsbDevice,
    iommu_off,
)
from hostdev_resolver.model.pciaddress import PciAddress
from hostdev_resolver.model.pcifacts import facts_of
from hostdev_resolver.model.scsi import ScsiInventory
from tests.cluster.test_cluster import HV1, HV1_SYSFS
from tests.support.hosttree import HostSpec, HostTree, PciSpec

A, B, C = (PciAddress.parse(f"0000:41:00.{fn}") for fn in range(3))
GPU = PciIdentity(0x10DE, 0x20B5, class_code=0x030200)


def _dev(address: PciAddress, group: int | None) -> PciDevice:
    return PciDevice(address, GPU, iommu_group=group)


def test_groups_come_from_the_devices_unless_the_source_lists_them() -> None:
    value = IndexedInventory("hv1", (_dev(C, 7), _dev(A, 7), _dev(B, None)))
    assert value.pci_device(B) == _dev(B, None)
    assert value.pci_device(PciAddress.parse("0000:99:00.0")) is None
    assert value.iommu_group_members(7) == [A, C]
    assert value.iommu_group_members(8) == []
    listed = IndexedInventory(pci=(_dev(A, 7),), groups={7: (A, B)})
    assert listed.iommu_group_members(7) == (A, B)
    assert listed.iommu_group_members(8) == ()


def test_snapshot_and_libvirt_views_are_the_value() -> None:
    usb = UsbDevice(1, 4, UsbIdentity(0x1050, 0x0407), "1-4")
    snap = HostSnapshot("hv1", (_dev(A, 3),), (usb,))
    libvirt = NodedevInventory(pci=(_dev(A, 3),), usb=(usb,), groups={3: (A,)}, uri="test:///x")
    for view in (snap, libvirt):
        assert isinstance(view, IndexedInventory)
        assert view.pci_devices() == (_dev(A, 3),) and view.usb_devices() == (usb,)
        assert view.pci_device(A) == _dev(A, 3)
        assert list(view.iommu_group_members(3)) == [A]
        # Neither a snapshot nor libvirt reads PCI facts: the core leaves those checks
        # to the hook, and judges the IOMMU by the devices' groups.
        assert facts_of(view) is None
        assert iommu_off(view) is None
    assert snap.scsi_inventory() is None and libvirt.scsi_inventory() is None


def test_the_iommu_is_off_when_no_device_has_a_group() -> None:
    assert iommu_off(IndexedInventory(pci=(_dev(A, None),))) == "no PCI device has an IOMMU group"


def test_facts_and_scsi_are_the_values_when_a_source_has_them(tmp_path: Path) -> None:
    HostTree.build(tmp_path, HostSpec(pci=[PciSpec(str(A), "10de", "20b5", iommu_group=3)]))
    facts = SysfsInventory(tmp_path).pci_facts()
    scsi = ScsiInventory()
    value = IndexedInventory(pci=(_dev(A, None),), facts=facts, scsi=scsi)
    assert facts_of(value) is facts and value.scsi_inventory() is scsi
    # With facts the IOMMU is what the kernel says, not what the devices suggest.
    assert iommu_off(value) is None
    HostTree.build(tmp_path / "off", HostSpec(pci=[PciSpec(str(A), "10de", "20b5")]))
    off = IndexedInventory(pci=(_dev(A, 3),), facts=SysfsInventory(tmp_path / "off").pci_facts())
    assert iommu_off(off) == f"{tmp_path / 'off'}/kernel/iommu_groups is empty"


def test_validate_through_libvirt_judges_as_resolve_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # validate remembers each device it reads (RememberedInventory); that must not hide
    # the fields libvirt cannot show, or a store captured from sysfs resolves through
    # --connect but fails validate on subsystem, serial and slot.
    HostTree.build(tmp_path / "sys", HV1_SYSFS)
    store = str(tmp_path / "captured.xml")
    capture = ["--store", store, "--node", "vm", "--sysfs", str(tmp_path / "sys")]
    assert cli.main(["map", "add", "pci", "gpu0", "--address", "41:00.0", *capture]) == 0
    domain = tmp_path / "d.xml"
    domain.write_text(
        "<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>"
        "<name>a</name><memory>1048576</memory><os><type arch='x86_64'>hvm</type></os>"
        "<devices><hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'/>"
        "</devices></domain>"
    )
    out = str(tmp_path / "out.xml")
    assert cli.main(["resolve", str(domain), "--store", store, "--connect", HV1, "-o", out]) == 0
    capsys.readouterr()
    assert cli.main(["validate", str(domain), "--store", store, "--connect", HV1]) == 0, (
        capsys.readouterr().err
    )


def test_remembered_inventory_keeps_what_its_source_says(tmp_path: Path) -> None:
    libvirt = RememberedInventory(NodedevInventory())
    assert libvirt.unobserved_pci == PCI_NOT_IN_NODEDEV
    assert libvirt.unobserved_usb == USB_NOT_IN_NODEDEV
    assert facts_of(libvirt) is None
    HostTree.build(tmp_path, HostSpec(pci=[PciSpec(str(A), "10de", "20b5", iommu_group=3)]))
    sysfs = RememberedInventory(SysfsInventory(tmp_path))
    facts = facts_of(sysfs)
    assert facts is not None and facts.iommu_off() is None
    assert unobserved_pci(sysfs) == frozenset()
