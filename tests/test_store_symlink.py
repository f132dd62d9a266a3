"""`map add` / `map remove` through a symlinked store edit the real store, never the link."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.xml.store import PciMapping
from tests.test_store import _tree


def test_map_add_writes_through_a_symlinked_store(tmp_path: Path) -> None:
    sys_root = _tree(tmp_path / "sys", 2)
    shared = tmp_path / "shared"
    shared.mkdir()
    real = shared / "mappings.xml"
    real.write_text(
        "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>\n"
        "  <!-- the administrator's -->\n</mappings>\n"
    )
    real.chmod(0o640)
    link = tmp_path / "m.xml"
    link.symlink_to("shared/mappings.xml")  # relative, as `ln -s` is usually used
    common = ["--store", str(link), "--sysfs", str(sys_root), "--node", "hv1"]
    assert cli.main(["map", "add", "pci", "nic0", "--address", "10:00.0", *common]) == 0
    assert cli.main(["map", "add", "pci", "nic1", "--address", "11:00.0", *common]) == 0
    assert link.is_symlink() and link.resolve() == real
    assert list(load_store(str(real)).mappings) == ["nic0", "nic1"]
    assert "the administrator's" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640
    assert cli.main(["map", "remove", "nic0", *common]) == 0
    assert link.is_symlink()
    after = load_store(str(real)).mappings
    assert [len(m.entries) for m in after.values() if isinstance(m, PciMapping)] == [0, 1]
    # The lock and the temporary file live beside the real store, not beside the link.
    assert (shared / "mappings.xml.lock").exists()
    assert not (tmp_path / "m.xml.lock").exists()


def test_a_dangling_store_link_is_refused_not_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys_root = _tree(tmp_path / "sys", 1)
    link = tmp_path / "m.xml"
    link.symlink_to(tmp_path / "unmounted" / "mappings.xml")
    common = ["--store", str(link), "--sysfs", str(sys_root), "--node", "hv1"]
    assert cli.main(["map", "add", "pci", "nic0", "--address", "10:00.0", *common]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"hostdev-resolver: {link}: the mapping store is a symlink to "
        f"{tmp_path / 'unmounted' / 'mappings.xml'}, which does not exist; create the store "
        "there (or fix the link), or give --store the real file"
    ]
    assert link.is_symlink() and not (tmp_path / "unmounted").exists()
