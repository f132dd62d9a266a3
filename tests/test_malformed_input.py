"""Malformed input gives one line and exit 2, never a traceback (issue 10, item 10).

Each case goes through the command line as a user would meet it: elements nested
deeper than libxml2 reads, numbers with thousands of digits in a resolution record,
USB devices whose busnum/devnum are not numbers, host snapshots with values of the
wrong JSON type.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from tests.support.hosttree import HostSpec, HostTree, PciSpec, UsbSpec

NS = "http://hostdev-resolver.org/xmlns/store/1"
DOMAIN = """<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>guest</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='nic'/>
    <hostdev mode='subsystem' type='usb' hr:map='key'/>
  </devices>
</domain>
"""


class Host:
    def __init__(self, tmp_path: Path) -> None:
        spec = HostSpec(
            pci=[PciSpec("0000:10:00.0", "8086", "1533", "8086", "0000", "020000", 4, 0, "igb")],
            usb=[UsbSpec("1-2", 1, 4, "1050", "0407", "12345")],
        )
        self.tree = HostTree.build(tmp_path / "sys", spec)
        self.store = tmp_path / "mappings.xml"
        self.common = ["--store", str(self.store), "--sysfs", str(self.tree.root), "--node", "hv1"]
        self.domain = tmp_path / "d.xml"
        self.domain.write_text(DOMAIN)
        self.resolved = tmp_path / "r.xml"


@pytest.fixture
def host(tmp_path: Path) -> Host:
    h = Host(tmp_path)
    assert cli.main(["map", "add", "pci", "nic", "--address", "10:00.0", *h.common]) == 0
    assert (
        cli.main(["map", "add", "usb", "key", "--vendor", "1050", "--product", "0407", *h.common])
        == 0
    )
    assert cli.main(["resolve", str(h.domain), "-o", str(h.resolved), *h.common]) == 0
    return h


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_nesting_deeper_than_libxml2_reads_in_validate(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.xml"
    text = host.domain.read_text()
    deep.write_text(
        text.replace(
            "</devices>", "</devices><metadata>" + "<a>" * 300 + "</a>" * 300 + "</metadata>"
        )
    )
    capsys.readouterr()
    assert cli.main(["validate", str(deep), *host.common]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    found = [
        line
        for line in (captured.out + captured.err).splitlines()
        if "nested deeper than 256 levels, which libxml2 (and so libvirt) refuses" in line
    ]
    assert len(found) == 1 and str(deep) in found[0]


@pytest.mark.parametrize(
    "command", [["map", "remove", "nic"], ["map", "add", "pci", "x", "--address", "10:00.0"]]
)
def test_nesting_deeper_than_libxml2_reads_in_a_store(
    host: Host, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    text = host.store.read_text()
    deep = "<x:a xmlns:x='urn:x'>" * 300 + "</x:a>" * 300
    last_line = text.rstrip("\n").count("\n") + 1  # where the deep part goes
    host.store.write_text(text.replace("</mappings>", deep + "</mappings>"))
    capsys.readouterr()
    assert cli.main([*command, *host.common]) == 2
    assert one_error(capsys) == (
        f"hostdev-resolver: {host.store}:{last_line}: elements are nested deeper than 256 levels, "
        "which libxml2 (and so libvirt) refuses; flatten the document"
    )


@pytest.mark.parametrize("attribute", ["iommu-group", "numa-node"])
@pytest.mark.parametrize("command", ["verify", "resolve", "validate"])
def test_a_number_with_thousands_of_digits_in_the_record(
    host: Host, capsys: pytest.CaptureFixture[str], attribute: str, command: str
) -> None:
    text = host.resolved.read_text()
    assert f" {attribute}='" in text
    start = text.index(f" {attribute}='") + len(attribute) + 3
    end = text.index("'", start)
    host.resolved.write_text(text[:start] + "9" * 5000 + text[end:])
    capsys.readouterr()
    code = cli.main([command, str(host.resolved), *host.common])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err + captured.out
    lines = [
        line
        for line in (captured.out + captured.err).splitlines()
        if f"{attribute}='99999999999999999999999999999999'… (5000 characters) is not a "
        "non-negative integer of at most 64 digits" in line
    ]
    assert len(lines) == 1
    assert len(lines[0]) < 300


@pytest.mark.parametrize("value", ["x", "", "1e3", "-1", "9" * 5000])
@pytest.mark.parametrize(
    "command",
    [
        ["inventory"],
        ["map", "add", "usb", "key2", "--vendor", "1050", "--product", "0407"],
        ["map", "check"],
        ["verify", "RESOLVED"],
        ["resolve", "DOMAIN"],
    ],
)
def test_a_usb_device_with_a_bad_busnum(
    host: Host, capsys: pytest.CaptureFixture[str], value: str, command: list[str]
) -> None:
    usb = host.tree.root / "bus" / "usb" / "devices" / "1-2"
    (usb / "busnum").write_text(value + "\n")
    args = [
        str(host.resolved) if a == "RESOLVED" else str(host.domain) if a == "DOMAIN" else a
        for a in command
    ]
    capsys.readouterr()
    assert cli.main([*args, *host.common]) == 2
    line = one_error(capsys)
    assert line.startswith(f"hostdev-resolver: {usb / 'busnum'}: ")
    assert "is not a USB bus or device number; the kernel writes a decimal number here" in line


SNAPSHOT_CASES = {
    "null": (None, "not a host snapshot"),
    "list": ([], "not a host snapshot"),
    "pci null item": ({"pci": [None]}, "pci[0] must be an object, not null"),
    "pci a number": ({"pci": 5}, "pci must be an array, not a number"),
    "pci list item": ({"pci": [[]]}, "pci[0] must be an object, not an array"),
    "address number": (
        {"pci": [{"address": 5}]},
        "pci[0].address must be a non-empty string, not a number",
    ),
    "vendor null": (
        {"pci": [{"address": "0000:10:00.0", "vendor": None, "device": "1533"}]},
        "pci[0].vendor must be a non-empty string, not null",
    ),
    "driver list": (
        {"pci": [{"address": "0000:10:00.0", "vendor": "8086", "device": "1533", "driver": []}]},
        "pci[0].driver must be a string or null, not an array",
    ),
    "group string": (
        {
            "pci": [
                {"address": "0000:10:00.0", "vendor": "8086", "device": "1533", "iommu_group": "4"}
            ]
        },
        "pci[0].iommu_group must be a non-negative integer or null, not a string",
    ),
    "virtfns number": (
        {"pci": [{"address": "0000:10:00.0", "vendor": "8086", "device": "1533", "virtfns": 3}]},
        "pci[0].virtfns must be an array, not a number",
    ),
    "usb bus object": (
        {
            "usb": [
                {"bus": {}, "device": 1, "vendor": "1050", "product": "0407", "port_path": "1-2"}
            ]
        },
        "usb[0].bus must be a non-negative integer, not an object",
    ),
    "unobserved number": (
        {"unobserved": {"pci": 5}},
        "unobserved.pci must be an array, not a number",
    ),
    "scsi list": ({"scsi": []}, "scsi must be an object, not an array"),
}


@pytest.mark.parametrize("case", list(SNAPSHOT_CASES))
def test_a_malformed_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    body, message = SNAPSHOT_CASES[case]
    data = body if not isinstance(body, dict) else {"format": "hostdev-resolver-host/1", **body}
    snapshot = tmp_path / "snap.json"
    snapshot.write_text(json.dumps(data))
    assert cli.main(["inventory", "--host", str(snapshot)]) == 2
    line = one_error(capsys)
    assert line.startswith(f"hostdev-resolver: {snapshot}: ")
    assert message in line


def test_a_malformed_scsi_part_of_a_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = tmp_path / "snap.json"
    scsi = {"devices": [{"address": "0:0:0:0", "block": 5}]}
    snapshot.write_text(json.dumps({"format": "hostdev-resolver-host/1", "scsi": scsi}))
    assert cli.main(["inventory", "--host", str(snapshot)]) == 2
    assert "malformed SCSI part of the host snapshot" in one_error(capsys)
