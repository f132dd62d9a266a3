"""vf and mdev mappings through the command line: the store they write, UUIDs kept,
resolution from a snapshot (no sysfs), RNG validity (issue 14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.xml.rng import domain_rng_errors
from hostdev_resolver.xml.store import MdevMapping, VfEntry, VfMapping
from tests.support.hosttree import HostSpec, HostTree

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    HostTree.build(tmp_path / "sys", HostSpec.load(GOLDEN / "hosts" / "sriov.json"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOSTDEV_RESOLVER_STORE", raising=False)
    return tmp_path


def _run(*args: str) -> int:
    return cli.main([*args, "--store", "mappings.xml", "--sysfs", "sys", "--node", "hv1"])


def test_map_add_vf_records_pf_identity_index_and_vf_ids(host: Path) -> None:
    assert _run("map", "add", "vf", "nic", "--pf", "0000:3b:00.0", "--index", "1") == 0
    mapping = load_store("mappings.xml").get("nic")  # schema-checked
    assert isinstance(mapping, VfMapping)
    (entry,) = mapping.entries
    assert isinstance(entry, VfEntry)
    assert (str(entry.address), entry.index, entry.vf_vendor, entry.vf_device) == (
        "0000:3b:00.0",
        1,
        0x15B3,
        0x1018,
    )
    assert entry.identity.serial == "b8-59-9f-ff-fe-a1-b2-c3" and entry.physical_slot == "6"
    # Another index on the same PF is another device: a pool, not a replacement.
    assert _run("map", "add", "vf", "nic", "--pf", "0000:3b:00.0", "--index", "2") == 0
    again = load_store("mappings.xml").get("nic")
    assert isinstance(again, VfMapping)
    assert [e.index for e in again.entries if isinstance(e, VfEntry)] == [1, 2]


def test_map_add_mdev_keeps_the_uuid_it_generated(host: Path) -> None:
    assert _run("map", "add", "mdev", "v", "--parent", "0000:41:00.0", "--type", "nvidia-222") == 0
    first = load_store("mappings.xml").get("v")
    assert isinstance(first, MdevMapping) and len(first.uuid) == 36
    # Adding a parent later (a pool) keeps the guest's UUID.
    assert _run("map", "add", "mdev", "v", "--parent", "0000:42:00.0", "--type", "nvidia-222") == 0
    second = load_store("mappings.xml").get("v")
    assert isinstance(second, MdevMapping)
    assert second.uuid == first.uuid
    assert [str(e.address) for e in second.entries] == ["0000:41:00.0", "0000:42:00.0"]
    # Another type under the same name is refused, not silently changed.
    assert _run("map", "add", "mdev", "v", "--parent", "0000:42:00.0", "--type", "nvidia-230") == 1


def test_mdev_parent_may_name_a_pci_mapping(host: Path) -> None:
    assert _run("map", "add", "pci", "t4a", "--address", "0000:41:00.0") == 0
    assert _run("map", "add", "pci", "t4a", "--address", "0000:42:00.0", "--pool") == 0
    args = [
        "--parent",
        "t4a",
        "--type",
        "nvidia-222",
        "--uuid",
        "4B20D080-1B54-4048-85B3-A6A62D165C01",
    ]
    assert _run("map", "add", "mdev", "v", *args) == 0
    mapping = load_store("mappings.xml").get("v")
    assert isinstance(mapping, MdevMapping)
    assert mapping.uuid == "4b20d080-1b54-4048-85b3-a6a62d165c01"
    assert [str(e.address) for e in mapping.entries] == ["0000:41:00.0", "0000:42:00.0"]


def test_bad_uuid_is_a_usage_error(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(
        "map", "add", "mdev", "v", "--parent", "0000:41:00.0", "--type", "nvidia-222", "--uuid", "x"
    )
    assert rc == 2
    assert "'x' is not a UUID" in capsys.readouterr().err


def test_resolve_from_a_snapshot_follows_virtfn_order(
    host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without sysfs (a snapshot from another machine) VF N is the Nth VF in address order,
    and an mdev is placed without capacity figures; the output is the same XML."""
    shutil.copy(GOLDEN / "stores" / "sriov.xml", "mappings.xml")
    shutil.copy(GOLDEN / "resolve-vf-and-mdev" / "domain.xml", "domain.xml")
    assert _run("inventory", "--format", "json") == 0
    snapshot = json.loads(capsys.readouterr().out)
    assert snapshot["mdev"][0]["types"][0] == {
        "type": "nvidia-222",
        "name": "GRID T4-1B",
        "available_instances": 4,
        "device_api": "vfio-pci",
    }
    Path("snap.json").write_text(json.dumps(snapshot))
    rc = cli.main(["resolve", "domain.xml", "--store", "mappings.xml", "--host", "snap.json"])
    out = capsys.readouterr().out
    assert rc == 0
    expected = (GOLDEN / "resolve-vf-and-mdev" / "expected.out").read_text()
    # The snapshot cannot see capacity: the pool's first parent is chosen.
    assert out.replace("0000:41:00.0", "P").replace("0000:42:00.0", "P") == expected.replace(
        "0000:41:00.0", "P"
    ).replace("0000:42:00.0", "P").replace(
        "48-b0-2d-ff-ff-0d-0e-0f", "48-b0-2d-ff-ff-0a-0b-0c"
    ).replace(
        "slot='4' port-path='pci0000:40/03.1/00.0'", "slot='2' port-path='pci0000:40/01.1/00.0'"
    )
    assert domain_rng_errors(out.encode(), "out") == []


def test_validate_finds_one_mdev_given_to_two_domains(
    host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(GOLDEN / "stores" / "sriov.xml", "mappings.xml")
    resolved = (GOLDEN / "verify-vf-and-mdev-ok" / "domain.xml").read_text()
    Path("a.xml").write_text(resolved)
    Path("b.xml").write_text(resolved.replace("<name>net-guest</name>", "<name>other</name>"))
    assert _run("validate", "a.xml", "b.xml") == 1
    out = capsys.readouterr().err  # validate's problems go to stderr
    assert "mdev 4b20d080-1b54-4048-85b3-a6a62d165c01" in out


def test_require_reset_is_written_and_read(host: Path) -> None:
    assert _run("map", "add", "pci", "nic", "--address", "0000:00:1f.6", "--require-reset") == 0
    mapping = load_store("mappings.xml").get("nic")
    assert mapping is not None and getattr(mapping, "require_reset", False) is True
