"""Node devices through libvirt's test driver, and the cluster view across simulated nodes.

Each file in nodes/ is one node for `test:///ABS/PATH.xml` (libvirt's test driver: no
daemon, no root). hv1 has the A100 where the store says; on hv2 a card was added and
the A100 moved from 0000:c1:00.0 to 0000:c2:00.0 behind the same root port; hv2 has
no YubiKey.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.doors.cli.mapcheck import NodeView, check_mappings, parse_connect
from hostdev_resolver.host.hostsource import HostSource
from hostdev_resolver.host.nodedev import (
    PCI_NOT_IN_NODEDEV,
    PcieLink,
    inventory_from_xml,
    open_libvirt_inventory,
)
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.model.errors import HostAccessError, UsageError
from hostdev_resolver.model.identity import PciIdentity, UsbIdentity
from hostdev_resolver.model.inventory import PciDevice, UsbDevice
from hostdev_resolver.model.pciaddress import PciAddress
from hostdev_resolver.model.records import replace
from hostdev_resolver.model.wwn import Wwn
from tests.support.hosttree import HostSpec, HostTree, PciSpec, UsbSpec

NODES = Path(__file__).resolve().parent / "nodes"
HV1 = f"test://{NODES / 'hv1.xml'}"
HV2 = f"test://{NODES / 'hv2.xml'}"
GPU = PciAddress.parse("0000:41:00.0")

# hv1 as its own sysfs shows it: what libvirt shows, plus subsystem IDs, the DSN and a slot.
HV1_SYSFS = HostSpec(
    pci=[
        PciSpec("0000:40:01.1", "1022", "1483", klass="060400", iommu_group=30, numa_node=1),
        PciSpec(
            "0000:41:00.0",
            "10de",
            "20b5",
            "10de",
            "1533",
            "030200",
            iommu_group=31,
            numa_node=1,
            driver="vfio-pci",
            serial="00-11-22-ff-ff-33-44-55",
            upstream="0000:40:01.1",
            slot="3",
        ),
    ],
    usb=[UsbSpec("1-4", 1, 4, "1050", "0407", serial="0001234567")],
)

STORE = """<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>
  <pci name='gpu0' description='A100 for the ML guests'>
    <node name='hv1' address='0000:41:00.0' vendor='10de' device='20b5' subsystem-vendor='10de'
          subsystem-device='1533' class='030200' iommu-group='31' numa-node='1'
          serial='00-11-22-ff-ff-33-44-55' slot='3' port-path='pci0000:40/01.1/00.0'/>
    <node name='hv2' address='0000:c1:00.0' vendor='10de' device='20b5' subsystem-vendor='10de'
          subsystem-device='1533' class='030200' iommu-group='51' port-path='pci0000:c0/03.1/00.0'/>
  </pci>
  <pci name='nic-vf'>
    <node name='hv1' address='0000:03:02.0' vendor='8086' device='154c' class='020000' iommu-group='40'/>
  </pci>
  <usb name='yubikey'>
    <node name='hv1' vendor='1050' product='0407' serial='0001234567'/>
    <node name='hv2' vendor='1050' product='0407' serial='0001234567'/>
  </usb>
</mappings>
"""


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "mappings.xml"
    path.write_text(STORE)
    return path


# -- the inventory -----------------------------------------------------------------------


def test_pci_records_from_node_devices() -> None:
    inventory, _node = open_libvirt_inventory(HV1)
    assert inventory.pci_device(GPU) == PciDevice(
        address=GPU,
        identity=PciIdentity(0x10DE, 0x20B5, class_code=0x030200),
        iommu_group=31,
        numa_node=1,
        port_path="pci0000:40/01.1/00.0",
    )
    pf = inventory.pci_device(PciAddress.parse("0000:03:00.0"))
    vf = inventory.pci_device(PciAddress.parse("0000:03:02.0"))
    assert pf is not None and vf is not None
    assert pf.virtfns == (vf.address,)
    assert vf.physfn == pf.address
    assert inventory.vpd_serial(pf.address) == "A4BF01234567"
    # The VPD serial is the board's, not the PCIe DSN: it never becomes identity.serial.
    assert pf.identity.serial is None
    assert inventory.pcie_link(GPU) == PcieLink("16", 16, "8", 16)
    assert inventory.iommu_group_members(31) == (GPU,)
    bridge = inventory.pci_device(PciAddress.parse("0000:40:01.1"))
    assert bridge is not None and bridge.is_bridge


def test_usb_and_fc_hosts_from_node_devices() -> None:
    inventory, _node = open_libvirt_inventory(HV1)
    assert inventory.usb_devices() == (
        UsbDevice(
            1,
            1,
            UsbIdentity(0x1D6B, 0x0002),
            "usb1",
            manufacturer="Linux Foundation",
            product_name="2.0 root hub",
        ),
        UsbDevice(
            1,
            4,
            UsbIdentity(0x1050, 0x0407),
            "1-4",
            manufacturer="Yubico",
            product_name="Yubikey 4 OTP+U2F+CCID",
        ),
    )
    (hba,) = inventory.fc_hosts
    assert (hba.host, hba.wwnn, hba.wwpn, hba.fabric, hba.npiv_capable) == (
        5,
        Wwn.parse("20000025b5000001"),
        Wwn.parse("20000025b5aa0001"),
        Wwn.parse("2000000573000001"),
        True,
    )


def test_same_records_as_sysfs_except_what_libvirt_cannot_show(tmp_path: Path) -> None:
    HostTree.build(tmp_path / "sys", HV1_SYSFS)
    from_sysfs = SysfsInventory(tmp_path / "sys")
    from_libvirt, _ = open_libvirt_inventory(HV1)
    for address in ("0000:40:01.1", "0000:41:00.0"):
        sysfs_dev = from_sysfs.pci_device(PciAddress.parse(address))
        assert sysfs_dev is not None
        blind = replace(
            sysfs_dev,
            identity=replace(
                sysfs_dev.identity, subsystem_vendor=None, subsystem_device=None, serial=None
            ),
            physical_slot=None,
            driver=None,  # the test driver does not fill <driver>; a real daemon does
        )
        assert from_libvirt.pci_device(PciAddress.parse(address)) == blind
    (sysfs_usb,) = from_sysfs.usb_devices()
    libvirt_usb = next(u for u in from_libvirt.usb_devices() if u.port_path == "1-4")
    assert (libvirt_usb.bus, libvirt_usb.device, libvirt_usb.identity.ids) == (
        sysfs_usb.bus,
        sysfs_usb.device,
        sysfs_usb.identity.ids,
    )
    assert from_libvirt.unobserved_pci == PCI_NOT_IN_NODEDEV


def test_store_captured_from_sysfs_checks_ok_through_libvirt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    HostTree.build(tmp_path / "sys", HV1_SYSFS)
    path = str(tmp_path / "captured.xml")
    common = ["--store", path, "--node", "hv1", "--sysfs", str(tmp_path / "sys")]
    assert cli.main(["map", "add", "pci", "gpu0", "--address", "41:00.0", *common]) == 0
    assert (
        cli.main(["map", "add", "usb", "key", "--vendor", "1050", "--product", "0407", *common])
        == 0
    )
    entry = load_store(path).mappings["gpu0"]
    assert "serial='00-11-22-ff-ff-33-44-55'" in Path(path).read_text()
    assert entry.kind == "pci"
    capsys.readouterr()

    assert cli.main(["map", "check", "--store", path, "--connect", f"hv1={HV1}"]) == 0
    out = capsys.readouterr().out
    assert "gpu0     hv1   ok" in out
    assert "key      hv1   ok" in out
    assert "verified at start: physical_slot, serial, subsystem" in out


def test_a_field_libvirt_shows_is_still_compared(tmp_path: Path) -> None:
    # The class code is in node-device XML: a recorded class that differs is a mismatch,
    # not "unknown, so fine".
    inventory, _ = open_libvirt_inventory(HV1)
    path = tmp_path / "s.xml"
    path.write_text(
        "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'><pci name='g'>"
        "<node name='hv1' address='0000:41:00.0' vendor='10de' device='20b5' class='030000'/>"
        "</pci></mappings>"
    )
    (row,) = check_mappings(load_store(str(path)), [NodeView("hv1", inventory)])
    assert row.status == "mismatch"
    assert "has class 030200 (expected 030000)" in row.detail


def test_unreachable_uri_is_an_environment_error() -> None:
    with pytest.raises(HostAccessError, match=r"cannot connect to test:///no/such/node.xml"):
        open_libvirt_inventory("test:///no/such/node.xml")
    assert cli.main(["inventory", "--connect", "test:///no/such/node.xml"]) == 3


def test_inventory_command_through_connect(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inventory", "--connect", f"hv2={HV2}", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["node"] == "hv2"
    assert [d["address"] for d in data["pci"]] == ["0000:c0:03.1", "0000:c1:00.0", "0000:c2:00.0"]


def test_node_name_is_the_connections_host_name() -> None:
    import socket

    _, node = open_libvirt_inventory(HV1)
    # The test driver reports the local host's name; a remote URI reports the remote one.
    assert node == socket.gethostname().split(".")[0]
    _, named = HostSource("libvirt", HV1, "hv1").open()
    assert named == "hv1"


def test_malformed_node_device_names_the_device() -> None:
    bad = (
        "<device><name>pci_0000_01_00_0</name><capability type='pci'><domain>0</domain>"
        "<bus>1</bus><slot>0</slot><function>0</function><product id='0xzz'/>"
        "<vendor id='0x8086'/></capability></device>"
    )
    with pytest.raises(Exception, match=r"test:///x node device pci_0000_01_00_0: product id"):
        inventory_from_xml("test:///x", [("pci_0000_01_00_0", bad)])


# -- the cluster view ----------------------------------------------------------------------


def test_map_check_across_two_nodes(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        [
            "map",
            "check",
            "--store",
            str(store),
            "--connect",
            f"hv1={HV1}",
            "--connect",
            f"hv2={HV2}",
            "--connect",
            "hv3=test:///no/such/node.xml",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    rows = {tuple(line.split()[:3]) for line in out.splitlines()[1:] if line.strip()}
    assert {
        ("gpu0", "hv1", "ok"),
        ("gpu0", "hv2", "shifted"),
        ("gpu0", "hv3", "unreachable"),
        ("nic-vf", "hv1", "ok"),
        ("nic-vf", "hv2", "no-entry"),
        ("yubikey", "hv1", "ok"),
        ("yubikey", "hv2", "missing"),
    } <= rows
    assert "is now at 0000:c2:00.0" in out
    assert out.endswith("\n3 ok, 6 not ok\n")


def test_map_check_json_and_all_ok_exit(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["map", "check", "--store", str(store), "--connect", f"hv2={HV2}", "--format", "json"]
    )
    rows = json.loads(capsys.readouterr().out)
    assert code == 1
    shifted = next(r for r in rows if r["mapping"] == "gpu0")
    assert shifted["status"] == "shifted"
    assert shifted["address"] == "0000:c1:00.0"
    assert shifted["found_at"] == "0000:c2:00.0"
    assert shifted["unchecked"] == ["subsystem"]
    assert shifted["ok"] is False

    only_hv1 = store.parent / "hv1-only.xml"
    only_hv1.write_text(STORE.replace("<node name='hv2'", "<node name='hvX'"))
    assert cli.main(["map", "check", "--store", str(only_hv1), "--connect", f"hv1={HV1}"]) == 0


def test_map_check_mixes_libvirt_and_snapshot_nodes(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # hv1 from a snapshot of its own sysfs (full identity), hv2 through libvirt.
    HostTree.build(tmp_path / "sys", HV1_SYSFS)
    args = ["inventory", "--sysfs", str(tmp_path / "sys"), "--node", "hv1", "--format", "json"]
    assert cli.main(args) == 0
    snapshot = tmp_path / "hv1.json"
    snapshot.write_text(capsys.readouterr().out)
    code = cli.main(
        [
            "map",
            "check",
            "--store",
            str(store),
            "--host",
            str(snapshot),
            "--connect",
            f"hv2={HV2}",
            "--format",
            "json",
        ]
    )
    rows = json.loads(capsys.readouterr().out)
    assert code == 1
    seen = {(r["mapping"], r["node"]): r for r in rows}
    assert seen["gpu0", "hv1"]["status"] == "ok"
    assert seen["gpu0", "hv1"]["unchecked"] == []  # sysfs shows everything
    assert seen["yubikey", "hv1"]["status"] == "ok"
    assert seen["gpu0", "hv2"]["status"] == "shifted"


def test_parse_connect() -> None:
    assert parse_connect("hv2=qemu+ssh://hv2/system") == ("hv2", "qemu+ssh://hv2/system")
    assert parse_connect("qemu+ssh://hv2/system?keyfile=a=b") == (
        None,
        "qemu+ssh://hv2/system?keyfile=a=b",
    )
    with pytest.raises(UsageError):
        parse_connect("=test:///default")
