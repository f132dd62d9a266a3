"""`map show NAME`: a pool's members and which running guests hold them (issue 16, item 11).

The running guests come from libvirt: its test driver (`test:///FILE.xml` serves
running guests with PCI hostdevs, which no guest on this machine can have: no IOMMU)
and the real libvirtd (a running guest whose live record names a member, as the hook
leaves it after a start). What a guest holds is read as the wrapper's pool logic reads
it: hostdev sources and `hr:resolution` records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostdev_resolver.core.claims import holders
from hostdev_resolver.doors.cli import common
from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.xml.domain import domain_name
from hostdev_resolver.xml.store import PciMapping, UsbMapping, parse_store
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.support import libvirtd
from tests.support.hosttree import HostSpec, HostTree, PciSpec

HR = "http://hostdev-resolver.org/xmlns/domain/1"
SERIALS = ["00-1b-21-ff-ff-00-00-10", "00-1b-21-ff-ff-00-00-11", "00-1b-21-ff-ff-00-00-12"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A pool of three NICs on hv1 (10, 11, 12:00.0), and the same mapping on hv2."""
    sysfs, path = tmp_path / "sys", tmp_path / "m.xml"
    HostTree.build(
        sysfs,
        HostSpec(
            pci=[
                PciSpec(
                    f"0000:{0x10 + i:02x}:00.0",
                    "8086",
                    "1533",
                    "8086",
                    "0001",
                    "020000",
                    iommu_group=10 + i,
                    serial=serial,
                )
                for i, serial in enumerate(SERIALS)
            ]
        ),
    )
    for node, address, pool in (
        ("hv1", "10:00.0", []),
        ("hv1", "11:00.0", ["--pool"]),
        ("hv1", "12:00.0", ["--pool"]),
        ("hv2", "10:00.0", []),
    ):
        add = ["map", "add", "pci", "nic", "--address", address, *pool]
        assert cli.main([*add, "--store", str(path), "--sysfs", str(sysfs), "--node", node]) == 0
    capsys.readouterr()
    return path


def _record(address: str, member: int) -> str:
    """A record as resolution writes it from member `member` (0, 1, 2) of the pool: the
    entry's identity and port path, the address the device was found at."""
    return (
        f"<hr:pci map='nic' address='{address}' vendor='8086' device='1533' "
        f"subsystem-vendor='8086' subsystem-device='0001' class='020000' "
        f"serial='{SERIALS[member]}' iommu-group='{10 + member}' "
        f"port-path='pci0000:{0x10 + member:02x}/00.0'/>"
    )


def _guest(name: str, *, source: str | None = None, record: str | None = None) -> str:
    metadata = (
        f"<metadata><hr:resolution xmlns:hr='{HR}' node='hv1'>{record}</hr:resolution></metadata>"
        if record
        else ""
    )
    hostdev = ""
    if source:
        bus = source.split(":")[1]
        hostdev = (
            "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
            f"<address domain='0x0000' bus='0x{bus}' slot='0x00' function='0x0'/>"
            "</source></hostdev>"
        )
    return (
        f"<domain type='test'><name>{name}</name><memory>65536</memory>"
        f"<os><type>hvm</type></os>{metadata}<devices>{hostdev}</devices></domain>"
    )


@pytest.fixture
def node_file(tmp_path: Path) -> Path:
    """libvirt's test driver: every domain in the file runs."""
    path = tmp_path / "hv1.xml"
    path.write_text(
        "<node>"
        # Defined by hand with the member's address: it holds the device all the same.
        + _guest("web1", source="0000:11:00.0")
        # Resolved from the third member, which has since moved to 15:00.0.
        + _guest("web2", source="0000:15:00.0", record=_record("0000:15:00.0", 2))
        + _guest("other", source="0000:99:00.0")
        + "</node>"
    )
    return path


def test_map_show_names_the_running_guests_holding_each_member(
    store: Path, node_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connect = ["--store", str(store), "--connect", f"hv1=test://{node_file}"]
    rc, out, err = _run(capsys, "map", "show", "nic", *connect)
    assert (rc, err) == (0, "")
    members = [line for line in out.splitlines() if line.startswith("  node ")]
    assert members[0].startswith("  node hv1: 0000:10:00.0") and members[0].endswith("  free")
    assert members[1].startswith("  node hv1: 0000:11:00.0")
    assert members[1].endswith("  held by web1")
    assert members[2].startswith("  node hv1: 0000:12:00.0")
    assert members[2].endswith("  held by web2")
    # libvirt on hv1 says nothing about hv2's member.
    assert members[3].startswith("  node hv2: 0000:10:00.0") and "free" not in members[3]
    assert "held" not in members[3]

    rc, out, _ = _run(capsys, "map", "show", "nic", *connect, "--format", "json")
    entries = json.loads(out)["entries"]
    assert [e.get("held_by") for e in entries] == [[], ["web1"], ["web2"], None]


def test_unreachable_libvirt_is_one_line_and_the_members_are_still_listed(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"qemu+unix:///system?socket={tmp_path}/no-such-sock"
    rc, out, err = _run(capsys, "map", "show", "nic", "--store", str(store), "--connect", uri)
    assert rc == 0
    assert err.startswith(
        f"hostdev-resolver: note: running guests not shown: cannot connect to {uri}: "
    )
    assert err.count("\n") == 1
    assert out.count("  node ") == 4 and "held" not in out and "free" not in out


def test_a_captured_host_asks_no_libvirt(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sysfs = store.parent / "sys"
    rc, out, err = _run(capsys, "map", "show", "nic", "--store", str(store), "--sysfs", str(sysfs))
    assert (rc, err) == (0, "")
    assert "held" not in out and "free" not in out


def test_connect_is_given_once(
    store: Path, node_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"test://{node_file}"
    rc, _, err = _run(
        capsys, "map", "show", "nic", "--store", str(store), "--connect", uri, "--connect", uri
    )
    assert rc == 2 and "give --connect once" in err


def test_identical_members_are_told_apart_by_the_recorded_address() -> None:
    """Two members with nothing but their address to tell them apart: the record's
    address says which one the guest holds; a USB member is held through its record."""
    store_xml = (
        "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'><pci name='nic'>"
        "<node name='hv1' address='0000:10:00.0' vendor='8086' device='1533'/>"
        "<node name='hv1' address='0000:11:00.0' vendor='8086' device='1533'/>"
        "</pci><usb name='key'><node name='hv1' vendor='1050' product='0407' serial='17'/>"
        "</usb></mappings>"
    )
    store = parse_store(parse_bytes(store_xml.encode(), "m.xml"))
    nic, key = store.get("nic"), store.get("key")
    assert isinstance(nic, PciMapping) and isinstance(key, UsbMapping)
    guest = parse_bytes(
        (
            f"<domain><name>g</name><metadata><hr:resolution xmlns:hr='{HR}' node='hv1'>"
            "<hr:pci map='nic' address='0000:11:00.0' vendor='8086' device='1533'/>"
            "<hr:usb map='key' vendor='1050' product='0407' serial='17' bus='1' device='4'/>"
            "</hr:resolution></metadata><devices/></domain>"
        ).encode(),
        "g",
    )
    assert holders(nic, "hv1", [guest]) == {0: [], 1: ["g"]}
    assert holders(key, "hv1", [guest]) == {0: ["g"]}
    assert holders(key, "hv2", [guest]) == {}


@pytest.mark.daemon
def test_map_show_asks_the_real_daemon(
    libvirt_uri: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A running guest whose live record names the second member, as the hook leaves a
    guest it let start (no guest with a PCI hostdev can run here)."""
    libvirtd.write_hook_config("")  # the guest has no record when it starts
    libvirtd.undefine_all("show-")
    path = tmp_path / "show-holder.xml"
    path.write_text(
        "<domain type='qemu'><name>show-holder</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices/></domain>"
    )
    try:
        libvirtd.virsh("create", str(path))
        libvirtd.virsh(
            "metadata",
            "show-holder",
            "--uri",
            HR,
            "--key",
            "hr",
            "--live",
            "--set",
            f"<resolution node='hv1'>{_record('0000:11:00.0', 1)}</resolution>".replace("hr:", ""),
        )
        args = ["map", "show", "nic", "--store", str(store), "--connect", f"hv1={libvirt_uri}"]
        rc, out, err = _run(capsys, *args)
        assert (rc, err) == (0, "")
        assert "0000:10:00.0" in out
        lines = {
            line.split()[2]: line for line in out.splitlines() if line.startswith("  node hv1")
        }
        assert lines["0000:11:00.0"].endswith("  held by show-holder")
        assert lines["0000:10:00.0"].endswith("  free") and lines["0000:12:00.0"].endswith("  free")
    finally:
        libvirtd.undefine_all("show-")


def test_a_node_name_before_a_uri_with_its_own_equals_sign() -> None:
    """`--connect hv1=qemu+unix:///system?socket=PATH`: the node is what comes before the
    first "=" (it was split at the last one, taking `socket=` for the node's)."""
    import argparse

    from hostdev_resolver.host.hostsource import HostSource

    uri = "qemu+unix:///system?socket=/run/x/libvirt-sock"
    named = common.host_sources(argparse.Namespace(connect=[f"hv1={uri}"]))
    assert named == [HostSource("libvirt", uri, "hv1")]
    assert common.host_sources(argparse.Namespace(connect=[uri])) == [
        HostSource("libvirt", uri, None)
    ]


def test_vf_and_mdev_members_are_held_through_their_records() -> None:
    """A guest resolved against the SR-IOV/mdev store (the golden case's output) holds
    the VF entries it was resolved from and the mdev pool's parent it landed on; a VF
    entry's address is its PF's, which no guest holds as such."""
    golden = Path(__file__).parent / "golden"
    store = parse_store(parse_bytes((golden / "stores" / "sriov.xml").read_bytes(), "sriov.xml"))
    guest = parse_bytes(
        (golden / "resolve-vf-and-mdev" / "expected.out").read_bytes(), "resolved.xml"
    )
    who = domain_name(guest)

    def held(mapping: str) -> dict[int, list[str]]:
        found = store.get(mapping)
        assert found is not None
        return holders(found, "hv1", [guest])

    assert held("nic-vf2") == {0: [who]} and held("nic-vf3") == {0: [who]}
    assert held("vgpu-pool") == {0: [], 1: [who]}  # its mdev sits on the second parent
    assert held("vgpu0") == {0: [who]}
    assert held("vgpu-big") == {0: []}  # same parent GPU, another mdev: not this guest's
    assert held("l40-vgpu") == {0: []}
