"""The allocation API and command: pure calls, stable addresses, errors and exit codes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from hostdev_resolver.core.allocation import (
    AddressConflictError,
    Device,
    DeviceKind,
    DomainDevices,
    HostDeviceInfo,
    MachineType,
    Policy,
    allocate_addresses,
    allocate_domain_xml,
)
from hostdev_resolver.core.allocation.domainio import read_domain
from hostdev_resolver.doors.cli.allocate import add_allocate_arguments, run_allocate
from hostdev_resolver.model.pciaddress import PciAddress

Q35 = """<domain type='qemu'>
  <name>alloc-unit</name>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>{devices}</devices>
</domain>
"""


def _run(tmp_path: Path, xml: str, *options: str) -> tuple[int, str, str]:
    source = tmp_path / "guest.xml"
    source.write_text(xml)
    out = tmp_path / "out.xml"
    parser = argparse.ArgumentParser()
    add_allocate_arguments(parser)
    code = run_allocate(parser.parse_args([str(source), "-o", str(out), *options]))
    return code, out.read_text() if out.exists() else "", ""


def test_pure_api_places_every_pci_device_and_adds_controllers() -> None:
    domain = DomainDevices(
        MachineType.Q35,
        (
            Device(DeviceKind.INTERFACE, model="virtio", ref=0),
            Device(DeviceKind.INTERFACE, model="e1000", ref=1),
        ),
    )
    allocation = allocate_addresses(domain, Policy())
    by_ref = allocation.by_ref()
    # virtio is PCIe on q35: a pcie-root-port of its own; e1000 is conventional PCI:
    # behind the pcie-to-pci-bridge libvirt adds for it (checked against libvirtd 9.0)
    assert by_ref[0].address == PciAddress(0, 2, 0, 0)
    assert by_ref[1].address == PciAddress(0, 3, 1, 0)
    models = sorted((d.index, d.model) for d in allocation.added if d.is_pci_controller)
    assert models == [
        (0, "pcie-root"),
        (1, "pcie-root-port"),
        (2, "pcie-root-port"),
        (3, "pcie-to-pci-bridge"),
        (4, "pcie-root-port"),
        (5, "pcie-root-port"),
        (6, "pcie-root-port"),
    ]


def test_given_addresses_never_move() -> None:
    fixed = PciAddress(0, 0, 0x10, 0)
    domain = DomainDevices(
        MachineType.PC,
        (
            Device(DeviceKind.INTERFACE, model="virtio", ref=0),
            Device(DeviceKind.INTERFACE, model="virtio", address=fixed, ref=1),
        ),
    )
    for policy in (Policy(), Policy(name="tuned", spare_ports=2)):
        by_ref = allocate_addresses(domain, policy).by_ref()
        assert by_ref[1].address == fixed
        assert by_ref[0].address not in (None, fixed)


def test_conflict_names_both_devices() -> None:
    addr = PciAddress(0, 0, 5, 0)
    domain = DomainDevices(
        MachineType.PC,
        (
            Device(DeviceKind.INTERFACE, model="virtio", address=addr, ref=0, line=4),
            Device(DeviceKind.SOUND, model="ich6", address=addr, ref=1, line=9),
        ),
    )
    with pytest.raises(AddressConflictError) as info:
        allocate_addresses(domain)
    assert "line 4" in info.value.message and "line 9" in info.value.message
    assert info.value.exit_code == 1


def test_untouched_bytes_stay_identical() -> None:
    xml = Q35.format(
        devices="\n    <!-- keep me -->\n    <interface type=\"user\"  ><model type='virtio'/></interface>\n  "
    ).encode()
    out = allocate_domain_xml(xml, "guest.xml")
    head = xml[: xml.index(b"</interface>")]
    assert out.startswith(head.replace(b"<model type='virtio'/>", b""))
    assert b"<!-- keep me -->" in out and b'<interface type="user"  >' in out
    # allocating the result again changes nothing
    assert allocate_domain_xml(out, "guest.xml") == out


def test_tuned_numa_without_guest_cells_is_noted_not_refused() -> None:
    domain_file = read_domain(
        Q35.format(
            devices="<hostdev mode='subsystem' type='pci'><source>"
            "<address domain='0' bus='0x41' slot='0' function='0'/></source></hostdev>"
        ).encode(),
        "guest.xml",
    )
    policy = Policy(
        name="tuned",
        numa_aware=True,
        host_devices=(HostDeviceInfo(PciAddress.parse("41:00.0"), numa_node=1),),
    )
    allocation = allocate_addresses(domain_file.domain, policy)
    assert any("no NUMA cells" in note for note in allocation.notes)
    assert not any(d.model == "pcie-expander-bus" for d in allocation.added)


@pytest.mark.parametrize(
    ("xml", "options", "code", "message"),
    [
        (Q35.format(devices="<interface type='user'>"), (), 2, "guest.xml:4: not well-formed XML"),
        (Q35.format(devices=""), ("--spare-ports", "2"), 2, "apply to --policy tuned only"),
        (
            Q35.format(devices="").replace("q35", "virt"),
            (),
            1,
            "guest.xml:3: machine type 'virt' is not modelled",
        ),
        (
            Q35.format(
                devices="<sound model='ich9'><address type='pci' domain='0' bus='0' slot='0x1f' function='0'/></sound>"
            ),
            (),
            1,
            "ICH9 LPC/ISA bridge",
        ),
    ],
)
def test_command_errors_are_one_line_with_exit_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    xml: str,
    options: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    got, _, _ = _run(tmp_path, xml, *options)
    err = capsys.readouterr().err
    assert got == code
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    # every refusal says which line of the domain it is about
    assert code != 1 or re.search(r"guest\.xml:\d+: ", err), err


def test_command_writes_output_file(tmp_path: Path) -> None:
    code, out, _ = _run(
        tmp_path, Q35.format(devices="<interface type='user'><model type='virtio'/></interface>")
    )
    assert code == 0
    assert "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>" in out
