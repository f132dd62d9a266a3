"""The mapping store: in-place edits, schema errors with lines, locking under concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.model.errors import InputError
from tests.support.hosttree import HostSpec, HostTree, PciSpec


def _tree(root: Path, count: int) -> Path:
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
            )
            for i in range(count)
        ]
    )
    HostTree.build(root, spec)
    return root


def test_map_add_edits_in_place_and_keeps_comments(tmp_path: Path) -> None:
    sys_root = _tree(tmp_path / "sys", 2)
    store = tmp_path / "m.xml"
    store.write_text(
        "<?xml version='1.0'?>\n<!-- keep me -->\n<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>\n"
        "  <!-- and me -->\n</mappings>\n"
    )
    common = ["--store", str(store), "--sysfs", str(sys_root), "--node", "hv1"]
    assert (
        cli.main(["map", "add", "pci", "nic", "--address", "10:00.0", "--allow", "web-*", *common])
        == 0
    )
    assert (
        cli.main(["map", "add", "pci", "nic", "--address", "11:00.0", "--vfio", "--pool", *common])
        == 0
    )  # joins the pool
    text = store.read_text()
    assert "<!-- keep me -->" in text and "<!-- and me -->" in text
    mapping = load_store(str(store)).get("nic")
    assert mapping is not None and mapping.kind == "pci"
    assert [str(e.address) for e in mapping.entries] == ["0000:10:00.0", "0000:11:00.0"]  # type: ignore[union-attr]
    assert mapping.allow == ("web-*",)
    assert mapping.vfio  # type: ignore[union-attr]
    assert cli.main(["map", "remove", "nic", "--node", "hv1", *common]) == 0
    assert load_store(str(store)).get("nic").entries == ()  # type: ignore[union-attr]
    assert "<!-- keep me -->" in store.read_text()


def test_refused_add_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys_root = _tree(tmp_path / "sys", 1)
    store = tmp_path / "m.xml"
    common = ["--store", str(store), "--sysfs", str(sys_root), "--node", "hv1"]
    assert cli.main(["map", "add", "pci", "nic", "--address", "10:00.0", *common]) == 0
    before = store.read_bytes()
    assert cli.main(["map", "add", "pci", "other", "--address", "77:00.0", *common]) == 1
    assert (
        cli.main(
            [
                "map",
                "add",
                "usb",
                "nic",
                "--vendor",
                "1050",
                "--product",
                "0407",
                "--offline",
                *common,
            ]
        )
        == 2
    )
    assert cli.main(["map", "add", "pci", "bad", "--address", "zz", *common]) == 2
    assert store.read_bytes() == before
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("hostdev-resolver: no PCI device at 0000:77:00.0 on node hv1")
    assert "exists as a pci mapping, not usb" in err[1]
    assert len(err) == 3
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".mappings.")]  # no temp files left


def test_schema_violation_names_the_line(tmp_path: Path) -> None:
    store = tmp_path / "m.xml"
    store.write_text(
        "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>\n"
        "  <usb name='k'>\n    <node name='hv1' vendor='1050' product='0407'/>\n  </usb>\n"
        "  <usb name='bad name'/>\n</mappings>\n"
    )
    with pytest.raises(InputError) as err:
        load_store(str(store))
    assert err.value.where.line == 5
    assert "store.xsd" in err.value.message


def test_concurrent_map_add_loses_nothing(tmp_path: Path) -> None:
    """Many processes adding at once: every mapping lands, the file is always whole."""
    count = 24
    sys_root = _tree(tmp_path / "sys", count)
    store = tmp_path / "m.xml"
    procs = [
        subprocess.Popen(
            [
                sys.executable, "-m", "hostdev_resolver.doors.cli.main", "map", "add", "pci", f"nic{i}",
                "--address", f"{0x10 + i:02x}:00.0", "--store", str(store), "--sysfs", str(sys_root), "--node", "hv1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(count)
    ]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    names = set(load_store(str(store)).mappings)
    assert names == {f"nic{i}" for i in range(count)}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--description", "a\x01b"], "--description 'a\\x01b' has a control character"),
        (["--allow", ""], "--allow needs a domain name pattern"),
    ],
)
def test_bad_map_add_text_names_the_option_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    sys_root = _tree(tmp_path / "sys", 1)
    store = tmp_path / "m.xml"
    common = ["--store", str(store), "--sysfs", str(sys_root), "--node", "hv1"]
    assert cli.main(["map", "add", "pci", "nic", "--address", "10:00.0", *common]) == 0
    before = store.read_bytes()
    capsys.readouterr()
    assert cli.main(["map", "add", "pci", "nic2", "--address", "10:00.0", *extra, *common]) == 2
    assert cli.main(["map", "add", "pci", "bad name", "--address", "10:00.0", *common]) == 2
    err = capsys.readouterr().err.splitlines()
    assert message in err[0] and "NAME 'bad name' is not a mapping name" in err[1]
    assert store.read_bytes() == before


def test_descriptions_keep_tabs_and_newlines(tmp_path: Path) -> None:
    sys_root = _tree(tmp_path / "sys", 1)
    store = tmp_path / "m.xml"
    common = ["--store", str(store), "--sysfs", str(sys_root), "--node", "hv1"]
    text = "line one\ttabbed\nline two"
    assert (
        cli.main(
            ["map", "add", "pci", "nic", "--address", "10:00.0", "--description", text, *common]
        )
        == 0
    )
    assert load_store(str(store)).get("nic").description == text  # type: ignore[union-attr]
