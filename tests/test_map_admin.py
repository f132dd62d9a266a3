"""The administrator's `map` commands: a fresh host, re-mapping, pools from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.xml.store import PciEntry
from tests.support.hosttree import HostSpec, HostTree, PciSpec


def _host(root: Path, serials: dict[int, str] | None = None) -> Path:
    """Three identical NICs at 10:00.0, 11:00.0, 12:00.0 (with the given serials)."""
    spec = HostSpec(
        pci=[
            PciSpec(
                f"0000:{0x10 + i:02x}:00.0",
                "8086",
                "1533",
                "8086",
                "0000",
                "020000",
                iommu_group=i,
                driver="igb",
                serial=(serials or {}).get(i),
            )
            for i in range(3)
        ]
    )
    HostTree.build(root, spec)
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _members(store: Path, name: str = "nic") -> list[str]:
    mapping = load_store(str(store)).get(name)
    assert mapping is not None
    return [str(e.address) for e in mapping.entries if isinstance(e, PciEntry)]  # type: ignore[attr-defined]


def test_map_list_on_a_fresh_host_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "etc" / "mappings.xml"
    rc, out, err = _run(capsys, "map", "list", "--store", str(store))
    assert (rc, out) == (0, "")
    assert err == (
        f"hostdev-resolver: no mapping store yet at {store}; "
        "'hostdev-resolver map add' creates it\n"
    )
    rc, out, _ = _run(capsys, "map", "list", "--store", str(store), "--format", "json")
    assert (rc, json.loads(out)) == (0, [])
    assert not store.exists() and not store.parent.exists()


def test_map_add_of_another_device_re_maps_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sysfs, store = _host(tmp_path / "sys"), tmp_path / "m.xml"
    common = ["--store", str(store), "--sysfs", str(sysfs), "--node", "hv1"]
    assert _run(capsys, "map", "add", "pci", "nic", "--address", "10:00.0", *common)[0] == 0
    rc, out, _ = _run(capsys, "map", "add", "pci", "nic", "--address", "11:00.0", *common)
    assert rc == 0
    assert out == (
        f"pci nic: re-mapped on node hv1: 0000:10:00.0 → 0000:11:00.0; recorded in {store}\n"
    )
    assert _members(store) == ["0000:11:00.0"]
    # The same device again only refreshes it.
    rc, out, _ = _run(capsys, "map", "add", "pci", "nic", "--address", "11:00.0", *common)
    assert rc == 0 and "re-mapped" not in out and _members(store) == ["0000:11:00.0"]
    # Another node's entry is not touched by a re-map on hv1.
    other = ["--store", str(store), "--sysfs", str(sysfs), "--node", "hv2"]
    assert _run(capsys, "map", "add", "pci", "nic", "--address", "12:00.0", *other)[0] == 0
    assert _run(capsys, "map", "add", "pci", "nic", "--address", "10:00.0", *common)[0] == 0
    assert _members(store) == ["0000:10:00.0", "0000:12:00.0"]


def test_pools_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sysfs, store = _host(tmp_path / "sys"), tmp_path / "m.xml"
    common = ["--store", str(store), "--sysfs", str(sysfs), "--node", "hv1"]
    assert _run(capsys, "map", "add", "pci", "nic", "--address", "10:00.0", *common)[0] == 0
    rc, out, _ = _run(capsys, "map", "add", "pci", "nic", "--address", "11:00.0", "--pool", *common)
    assert rc == 0 and "added to the pool" in out
    assert _members(store) == ["0000:10:00.0", "0000:11:00.0"]

    rc, out, _ = _run(capsys, "map", "show", "nic", *common)  # --sysfs: asks no libvirt
    assert rc == 0
    assert "pool of 2 on node hv1" in out
    assert "node hv1: 0000:10:00.0" in out and "node hv1: 0000:11:00.0" in out

    # Without --pool, a third identical card (no serial) cannot say whom it replaces.
    before = store.read_bytes()
    rc, _, err = _run(capsys, "map", "add", "pci", "nic", "--address", "12:00.0", *common)
    assert rc == 1
    assert "is a pool of 2 devices on node hv1 (0000:10:00.0 [8086:1533]" in err
    assert "add --pool" in err and "map remove nic --node hv1 --address BDF" in err
    assert store.read_bytes() == before

    rc, out, _ = _run(
        capsys, "map", "remove", "nic", "--node", "hv1", "--address", "10:00.0", *common
    )
    assert rc == 0 and out == f"removed member 0000:10:00.0 on node hv1 of 'nic' from {store}\n"
    assert _members(store) == ["0000:11:00.0"]
    rc, _, err = _run(
        capsys, "map", "remove", "nic", "--node", "hv1", "--address", "13:00.0", *common
    )
    assert rc == 2 and "has no member at 0000:13:00.0 on node hv1 (it has 0000:11:00.0)" in err
    rc, _, err = _run(capsys, "map", "remove", "nic", "--address", "11:00.0", "--store", str(store))
    assert rc == 2 and "give --node as well" in err
    assert _members(store) == ["0000:11:00.0"]


def test_a_pool_member_that_moved_is_re_mapped_by_its_serial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serials = {0: "00-11-22-33-44-55-66-00", 1: "00-11-22-33-44-55-66-01"}
    sysfs, store = _host(tmp_path / "a", serials), tmp_path / "m.xml"
    common = ["--store", str(store), "--sysfs", str(sysfs), "--node", "hv1"]
    assert _run(capsys, "map", "add", "pci", "nic", "--address", "10:00.0", *common)[0] == 0
    assert (
        _run(capsys, "map", "add", "pci", "nic", "--address", "11:00.0", "--pool", *common)[0] == 0
    )
    # Firmware renumbered: the card with serial ...:01 is now at 12:00.0.
    moved = _host(tmp_path / "b", {0: serials[0], 2: serials[1]})
    rc, out, _ = _run(
        capsys, "map", "add", "pci", "nic", "--address", "12:00.0",
        "--store", str(store), "--sysfs", str(moved), "--node", "hv1",
    )  # fmt: skip
    assert rc == 0 and "re-mapped on node hv1: 0000:11:00.0 → 0000:12:00.0" in out
    assert _members(store) == ["0000:10:00.0", "0000:12:00.0"]
