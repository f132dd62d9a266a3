"""Host inventory sources: sysfs lookups stay on one device; snapshots round-trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.snapshot import HostSnapshot, inventory_to_json
from hostdev_resolver.host.sysfs import CONFIG_LIMIT, SysfsDir, SysfsInventory, SysfsReader
from hostdev_resolver.model.pciaddress import PciAddress
from tests.support.hosttree import HostSpec, HostTree, PciSpec

GOLDEN_HOST = Path(__file__).parent / "golden" / "hosts" / "hv1.json"


class RecordingReader(SysfsReader):
    """A SysfsReader that remembers every path it touched."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.touched: list[Path] = []

    def text(self, path: str | os.PathLike[str]) -> str | None:
        self.touched.append(Path(path))
        return super().text(path)

    def bytes(self, path: str | os.PathLike[str], limit: int = CONFIG_LIMIT) -> bytes | None:
        self.touched.append(Path(path))
        return super().bytes(path, limit)

    def link_name(self, path: str | os.PathLike[str]) -> str | None:
        self.touched.append(Path(path))
        return super().link_name(path)

    def listdir(self, path: str | os.PathLike[str]) -> list[str]:
        self.touched.append(Path(path))
        return super().listdir(path)

    def directory(self, path: str | os.PathLike[str]) -> SysfsDir | None:
        self.touched.append(Path(path))
        return super().directory(path)


def test_lookup_by_address_reads_only_that_device(tmp_path: Path) -> None:
    HostTree.build(tmp_path, HostSpec.load(GOLDEN_HOST))
    reader = RecordingReader(tmp_path)
    inventory = SysfsInventory(reader=reader)
    dev = inventory.pci_device(PciAddress.parse("0000:41:00.0"))
    assert dev is not None and dev.identity.serial == "48-b0-2d-ff-ff-12-34-56"
    own = tmp_path / "bus" / "pci" / "devices" / "0000:41:00.0"
    slots = tmp_path / "bus" / "pci" / "slots"
    strays = [
        p for p in reader.touched if own not in (p, *p.parents) and slots not in (p, *p.parents)
    ]
    assert strays == []
    assert own in reader.touched


def test_snapshot_round_trips_every_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    HostTree.build(tmp_path / "sys", HostSpec.load(GOLDEN_HOST))
    live = SysfsInventory(tmp_path / "sys")
    snap_file = tmp_path / "hv1.json"
    snap_file.write_text(json.dumps(inventory_to_json(live, "hv1")))
    snap = HostSnapshot.load(snap_file)
    assert snap.node == "hv1"
    assert list(snap.pci_devices()) == list(live.pci_devices())
    assert list(snap.usb_devices()) == list(live.usb_devices())
    assert snap.iommu_group_members(33) == live.iommu_group_members(33)


def test_inventory_json_is_what_host_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    HostTree.build(tmp_path / "sys", HostSpec.load(GOLDEN_HOST))
    assert (
        cli.main(
            ["inventory", "--format", "json", "--sysfs", str(tmp_path / "sys"), "--node", "hv1"]
        )
        == 0
    )
    (tmp_path / "snap.json").write_text(capsys.readouterr().out)
    assert cli.main(["inventory", "--host", str(tmp_path / "snap.json")]) == 0
    from_snapshot = capsys.readouterr().out
    assert cli.main(["inventory", "--sysfs", str(tmp_path / "sys"), "--node", "hv1"]) == 0
    assert capsys.readouterr().out == from_snapshot
    assert "0000:41:00.0" in from_snapshot and "48-b0-2d-ff-ff-12-34-56" in from_snapshot


def test_bad_snapshot_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "snap.json"
    bad.write_text('{"format": "hostdev-resolver-host/1", "pci": [{"address": "0000:41:00.0"}]}')
    assert cli.main(["inventory", "--host", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    bad.write_text("{not json")
    assert cli.main(["inventory", "--host", str(bad)]) == 2
    assert f"{bad}:1: not JSON" in capsys.readouterr().err


def test_attributes_that_cannot_be_read_are_absent_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """EIO/ENODEV from a device going away, simulated by an attribute that is a directory."""
    HostTree.build(tmp_path / "sys", HostSpec.load(GOLDEN_HOST))
    config = tmp_path / "sys" / "bus" / "pci" / "devices" / "0000:41:00.0" / "config"
    config.unlink()
    config.mkdir()
    dangling = tmp_path / "sys" / "class" / "scsi_device" / "3:0:0:0"
    dangling.parent.mkdir(parents=True)
    dangling.symlink_to(tmp_path / "gone")
    assert cli.main(["inventory", "--sysfs", str(tmp_path / "sys"), "--node", "hv1"]) == 0
    out = capsys.readouterr().out
    assert "0000:41:00.0" in out and "48-b0-2d-ff-ff-12-34-56" not in out  # no DSN read
    assert "3:0:0:0" not in out


def test_uevent_and_attribute_files_give_the_same_devices(tmp_path: Path) -> None:
    """The full scan reads the IDs from uevent (one read instead of five); a tree copied
    without uevent files is read file by file, to the same devices."""
    HostTree.build(tmp_path / "a", HostSpec.load(GOLDEN_HOST))
    HostTree.build(tmp_path / "b", HostSpec.load(GOLDEN_HOST))
    gone = list((tmp_path / "b" / "devices").rglob("uevent"))
    assert gone
    for path in gone:
        path.unlink()
    with_uevent = list(SysfsInventory(tmp_path / "a").pci_devices())
    assert with_uevent == list(SysfsInventory(tmp_path / "b").pci_devices())
    assert any(d.identity.subsystem_vendor is not None for d in with_uevent)
    assert all(d.port_path and d.port_path.startswith("pci") for d in with_uevent)


def test_uevent_ids_are_read_as_the_kernel_writes_them(tmp_path: Path) -> None:
    HostTree.build(tmp_path, HostSpec.load(GOLDEN_HOST))
    dev_dir = tmp_path / "bus" / "pci" / "devices" / "0000:41:00.0"
    (dev_dir / "uevent").write_text(
        "DRIVER=vfio-pci\nPCI_CLASS=20000\nPCI_ID=8086:15BB\nPCI_SUBSYS_ID=17AA:2292\n"
        "PCI_SLOT_NAME=0000:41:00.0\nMODALIAS=pci:v00008086d000015BB\n"
    )
    dev = SysfsInventory(tmp_path).pci_device(PciAddress.parse("0000:41:00.0"))
    assert dev is not None
    assert (dev.identity.vendor, dev.identity.device) == (0x8086, 0x15BB)
    assert (dev.identity.subsystem_vendor, dev.identity.subsystem_device) == (0x17AA, 0x2292)
    assert dev.identity.class_code == 0x020000


def test_a_pf_lists_its_vfs_in_order(tmp_path: Path) -> None:
    from tests.support.hosttree import PciSpec

    pf, vfs = "0000:43:00.0", ["0000:43:02.0", "0000:43:02.1", "0000:43:02.2"]
    spec = HostSpec(
        pci=[
            PciSpec(pf, "8086", "1592", klass="020000", iommu_group=40),
            *(
                PciSpec(vf, "8086", "1889", klass="020000", iommu_group=41 + i, physfn=pf)
                for i, vf in enumerate(vfs)
            ),
        ]
    )
    HostTree.build(tmp_path, spec)
    inventory = SysfsInventory(tmp_path)
    dev = inventory.pci_device(PciAddress.parse(pf))
    assert dev is not None and dev.virtfns == tuple(PciAddress.parse(v) for v in vfs)
    vf = inventory.pci_device(PciAddress.parse(vfs[1]))
    assert vf is not None and vf.physfn == PciAddress.parse(pf) and vf.virtfns == ()


def test_the_full_scan_gives_what_each_lookup_gives(tmp_path: Path) -> None:
    """pci_devices reads relative to one open bus/pci/devices; pci_device walks from the
    root: the same devices, SR-IOV links included."""
    from tests.support.hosttree import PciSpec

    spec = HostSpec.load(GOLDEN_HOST)
    pf, vfs = "0000:43:00.0", ["0000:43:02.0", "0000:43:02.1"]
    spec.pci += [
        PciSpec(pf, "8086", "1592", klass="020000", iommu_group=40),
        *(
            PciSpec(vf, "8086", "1889", klass="020000", iommu_group=41 + i, physfn=pf)
            for i, vf in enumerate(vfs)
        ),
    ]
    HostTree.build(tmp_path, spec)
    inventory = SysfsInventory(tmp_path)
    each = [inventory.pci_device(a) for a in inventory.pci_addresses()]
    assert list(inventory.pci_devices()) == each
    assert any(d is not None and d.virtfns for d in each)
    assert any(d is not None and d.physfn for d in each)


def test_attribute_links_empty_files_and_directories(tmp_path: Path) -> None:
    """A link to a regular file is followed (a tree copied with links), an empty
    attribute is empty, a directory where an attribute should be is an absent one."""
    HostTree.build(tmp_path, HostSpec.load(GOLDEN_HOST))
    dev_dir = tmp_path / "bus" / "pci" / "devices" / "0000:41:00.0"
    (tmp_path / "numa").write_text("1\n")
    (dev_dir / "numa_node").unlink()
    (dev_dir / "numa_node").symlink_to(tmp_path / "numa")
    d = SysfsReader(tmp_path).directory(dev_dir)
    assert d is not None
    try:
        assert d.text("numa_node") == "1"
        (dev_dir / "empty").write_bytes(b"")
        assert d.bytes("empty") == b""
        (dev_dir / "adir").mkdir()
        assert d.bytes("adir") is None
        assert d.bytes("absent") is None
    finally:
        d.close()
    dev = SysfsInventory(tmp_path).pci_device(PciAddress.parse("0000:41:00.0"))
    assert dev is not None and dev.numa_node == 1


def _varied_host(root: Path, vmd: bool) -> None:
    """Functions of every shape the table shows: a PF and its VFs (one VF without
    numa_node), an unbound function, one without subsystem IDs or IOMMU group, one in a
    slot, an mdev parent, one whose tree has no uevent file; with `vmd`, one in a 32-bit
    PCI domain (named 10000:e1:00.0, as the kernel names it)."""
    from tests.support.hosttree import PciSpec

    pci = [
        PciSpec("0000:00:00.0", "1022", "1480", klass="060000"),
        PciSpec("0000:00:14.0", "8086", "a36d", klass="0c0330", iommu_group=5, driver="xhci_hcd"),
        PciSpec(
            "0000:41:00.0", "10de", "20b5", "10de", "1533", "030200", iommu_group=31,
            numa_node=1, driver="vfio-pci", serial="48-b0-2d-ff-ff-12-34-56", slot="2",
        ),
        PciSpec(
            "0000:42:00.0", "10DE", "1EB8", "10de", "12a2", "030200", iommu_group=33,
            numa_node=0, driver="nvidia", mdev_types={"nvidia-222": {"name": "GRID T4-1B"}},
        ),
        PciSpec("0000:42:00.1", "10de", "1aef", klass="040300", iommu_group=33),
        PciSpec(
            "0000:43:00.0", "8086", "1592", "8086", "0002", "020000", iommu_group=40,
            numa_node=0, driver="ice", serial="00-11-22-33-44-55-66-77", sriov_totalvfs=8,
        ),
        *(
            PciSpec(
                vf, "8086", "1889", "8086", "0000", "020000", iommu_group=41 + i,
                numa_node=0, driver="iavf", physfn="0000:43:00.0",
            )
            for i, vf in enumerate(["0000:43:01.0", "0000:43:01.1", "0000:43:01.2"])
        ),
    ]  # fmt: skip
    if vmd:
        pci.append(PciSpec("10000:e1:00.0", "144d", "a808", klass="010802", iommu_group=60))
    HostTree.build(root, HostSpec(pci=pci))
    devices = root / "bus" / "pci" / "devices"
    (devices / "0000:43:01.1" / "numa_node").unlink()  # as a kernel without CONFIG_NUMA
    (devices / "0000:00:14.0" / "uevent").unlink()  # a tree copied without uevent files


@pytest.mark.parametrize("vmd", [False, True], ids=["kernel-names", "32-bit-domain"])
def test_the_table_shows_what_the_records_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vmd: bool
) -> None:
    """`inventory` reads its table straight from sysfs, without records: row for row it
    is what `pci_devices()` says, and the text is what the same host's snapshot gives."""
    from hostdev_resolver.host.sysfs import pci_row, pci_table

    sys_root = tmp_path / "sys"
    _varied_host(sys_root, vmd)
    inventory = SysfsInventory(sys_root)
    rows, parents = pci_table(inventory)
    devices = sorted(SysfsInventory(sys_root).pci_devices(), key=lambda d: d.address)
    assert rows == [pci_row(d) for d in devices]
    assert parents == inventory.pci_facts().mdev_parents() == [PciAddress.parse("0000:42:00.0")]
    shown = {row[1]: row for row in rows}
    assert shown["0000:43:01.1"][5] == "-" and shown["0000:43:01.0"][5] == "0"
    assert shown["0000:43:00.0"][10] == 3 and shown["0000:43:01.2"][9] == "0000:43:00.0"
    assert shown["0000:42:00.0"][3] == "10de:1eb8" and shown["0000:42:00.1"][6] is None
    assert shown["0000:00:14.0"][6] == "xhci_hcd"  # no uevent: the driver link
    assert cli.main(["inventory", "--format", "json", "--sysfs", str(sys_root), "--node", "n"]) == 0
    (tmp_path / "snap.json").write_text(capsys.readouterr().out)
    assert cli.main(["inventory", "--host", str(tmp_path / "snap.json")]) == 0
    from_snapshot = capsys.readouterr().out
    assert cli.main(["inventory", "--sysfs", str(sys_root), "--node", "n"]) == 0
    from_sysfs = capsys.readouterr().out
    table = 3 + len(rows)  # the node line, a blank line, the header and a line each
    assert from_sysfs.splitlines()[:table] == from_snapshot.splitlines()[:table]
    assert "mdev parent 0000:42:00.0:" in from_sysfs
    assert "VF of 0000:43:00.0" in from_sysfs and "3 VFs" in from_sysfs and "slot 2" in from_sysfs


def test_the_driver_is_read_from_uevent(tmp_path: Path) -> None:
    """The kernel writes DRIVER=<name> into uevent exactly while the device is bound
    (dev_uevent): the name the driver link has, without reading the link."""
    from hostdev_resolver.host.sysfs import pci_table

    HostTree.build(tmp_path, HostSpec.load(GOLDEN_HOST))
    dev_dir = tmp_path / "bus" / "pci" / "devices" / "0000:41:00.0"
    assert (dev_dir / "uevent").read_text().startswith("DRIVER=vfio-pci\nPCI_CLASS=30200\n")
    # A link that no kernel would show beside this uevent: only uevent is read.
    (dev_dir / "driver").unlink()
    (dev_dir / "driver").symlink_to("../../bus/pci/drivers/nouveau")
    dev = SysfsInventory(tmp_path).pci_device(PciAddress.parse("0000:41:00.0"))
    assert dev is not None and dev.driver == "vfio-pci"
    # Without DRIVER=: unbound, as the kernel shows it, or a tree made without DRIVER=
    # lines (examples/workstation/sys), whose driver link says which.
    (dev_dir / "uevent").write_text("PCI_CLASS=30200\nPCI_ID=10DE:20B5\n")
    dev = SysfsInventory(tmp_path).pci_device(PciAddress.parse("0000:41:00.0"))
    assert dev is not None and dev.driver == "nouveau"
    (dev_dir / "driver").unlink()
    dev = SysfsInventory(tmp_path).pci_device(PciAddress.parse("0000:41:00.0"))
    assert dev is not None and dev.driver is None
    rows, _ = pci_table(SysfsInventory(tmp_path))
    assert {row[1]: row[6] for row in rows}["0000:41:00.0"] is None


def test_system_calls_per_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a host's thousands of functions cost: `pci_devices` opens each function's
    directory and three attributes, reads two links (the bus link and iommu_group: the
    driver comes from uevent) and probes physfn and virtfn0; the table `inventory` prints
    reads one link, the bus link's port path not being shown, and probes physfn only (its
    PFs are the functions VFs name); whether the mdev core is loaded is one stat."""
    from hostdev_resolver.host.sysfs import pci_table
    from tests.support.hosttree import PciSpec

    functions = 64
    spec = HostSpec(
        pci=[
            PciSpec(
                f"0000:01:{i // 8:02x}.{i % 8}", "8086", "1521", "8086", "0001", "020000",
                iommu_group=i, numa_node=0, driver="igb",
            )
            for i in range(functions)
        ]
    )  # fmt: skip
    HostTree.build(tmp_path, spec)
    inventory = SysfsInventory(tmp_path)
    inventory._slot_map()
    calls: dict[str, int] = {}
    for name in ("open", "readlink", "access", "stat", "listdir", "scandir"):
        real = getattr(os, name)

        def counted(*args: object, _name: str = name, _real: object = real, **kw: object) -> object:
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(os, name, counted)
    assert len(inventory.pci_devices()) == functions
    assert calls.pop("listdir") == 1
    assert {k: v / functions for k, v in calls.items()} == {
        "open": 4 + 1 / functions,  # each directory, uevent, config, numa_node; the bus
        "readlink": 2,
        "access": 2,
    }
    calls.clear()
    rows, _ = pci_table(inventory)
    assert len(rows) == functions
    assert calls.pop("listdir") == 1
    assert {k: v / functions for k, v in calls.items()} == {
        "open": 4 + 1 / functions,
        "readlink": 1,
        "access": 1,  # physfn
        "stat": 1 / functions,  # class/mdev_bus
    }


def test_a_pf_gone_before_it_is_read_again_is_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table reads a PF again once its VFs have named it; a PF gone by then is left
    out, as `pci_devices` (reading after it went) would not list it."""
    from hostdev_resolver.host import sysfs

    sys_root = tmp_path / "sys"
    _varied_host(sys_root, vmd=False)
    careful = sysfs._careful_row

    def gone(inventory: object, dfd: int, base: str, name: str, *rest: object) -> object:
        return None if name == "0000:43:00.0" else careful(inventory, dfd, base, name, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(sysfs, "_careful_row", gone)
    rows, _ = sysfs.pci_table(SysfsInventory(sys_root))
    names = [row[1] for row in rows]
    assert "0000:43:00.0" not in names and "0000:43:01.0" in names
    assert names == sorted(names)


def test_the_mdev_parents_are_the_mdev_cores_links(tmp_path: Path) -> None:
    """The mdev core links each parent it registers into class/mdev_bus (as mdevctl
    lists them): a link to a PCI function with mdev_supported_types is a parent; a
    non-PCI parent (the ap matrix) and a link to a function without types are not; no
    class/mdev_bus (the mdev core not loaded), no parents."""
    from hostdev_resolver.host.sysfs import pci_table

    sys_root = tmp_path / "sys"
    _varied_host(sys_root, vmd=False)
    links = sys_root / "class" / "mdev_bus"
    matrix = sys_root / "devices" / "vfio_ap" / "matrix"
    (matrix / "mdev_supported_types" / "vfio_ap-passthrough").mkdir(parents=True)
    (links / "matrix").symlink_to(os.path.relpath(matrix, links))
    (links / "0000:41:00.0").symlink_to(
        os.path.relpath(sys_root / "bus" / "pci" / "devices" / "0000:41:00.0", links)
    )
    inventory = SysfsInventory(sys_root)
    gpu = PciAddress.parse("0000:42:00.0")
    assert pci_table(inventory)[1] == inventory.pci_facts().mdev_parents() == [gpu]
    assert [t.type_id for t in inventory.pci_facts().mdev_types(gpu)] == ["nvidia-222"]
    for link in links.iterdir():
        link.unlink()
    links.rmdir()
    assert pci_table(inventory)[1] == inventory.pci_facts().mdev_parents() == []


def test_has_entries_says_what_listdir_would_without_listing(tmp_path: Path) -> None:
    from hostdev_resolver.host.sysfs import SysfsReader

    reader = SysfsReader(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "groups").mkdir()
    for n in range(3):
        (tmp_path / "groups" / str(n)).mkdir()
    for name in ("empty", "groups", "missing"):
        path = reader.path(name)
        assert reader.has_entries(path) == bool(reader.listdir(path))


def test_a_host_without_scsi_is_listed_without_loading_the_scsi_reader(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "sys"
    HostTree.build(
        root,
        HostSpec(pci=[PciSpec("0000:05:00.0", "8086", "1533", "8086", "0001", "020000")]),
    )
    probe = (
        "import sys\n"
        "from hostdev_resolver.doors.cli.main import main\n"
        "code = main(['inventory', '--sysfs', sys.argv[1]])\n"
        "print('hostdev_resolver.host.scsisysfs' in sys.modules, code, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(root)], capture_output=True, text=True, check=True
    )
    assert proc.stderr.split() == ["False", "0"]
    assert "0000:05:00.0" in proc.stdout
    # One device-mapper device is enough for the SCSI section to be read (a multipath
    # map shows there).
    (root / "block" / "dm-0" / "dm").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(root)], capture_output=True, text=True, check=True
    )
    assert proc.stderr.split() == ["True", "0"]
