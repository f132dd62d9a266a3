"""Golden cases: tests/golden/<case>/ (see tests/golden/README.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.xml.rng import domain_rng_errors
from tests.scsi.hosts import iscsi_tree
from tests.support.hosttree import HostSpec, HostTree

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "case.json").exists())


def _host_spec(case: dict[str, object]) -> HostSpec:
    data = json.loads((GOLDEN / "hosts" / f"{case['host']}.json").read_text())
    for edit in case.get("host_edits", []):  # type: ignore[attr-defined]
        if "remove" in edit:
            data["pci"] = [d for d in data["pci"] if d["address"] != edit["remove"]]
            continue
        for dev in data["pci"]:
            if dev["address"] == edit["address"]:
                dev.update(edit["set"])
    return HostSpec.from_json(data)


def _compare(path: Path, got: str, regen: bool) -> None:
    if regen:
        path.write_text(got)
        return
    assert path.exists(), f"missing golden {path}; write it with HOSTDEV_REGEN=1 and review it"
    expected = path.read_text()
    assert got == expected, f"{path.name} differs"


@pytest.mark.parametrize("name", CASES)
def test_golden(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    regen: bool,
) -> None:
    src = GOLDEN / name
    case = json.loads((src / "case.json").read_text())
    work = tmp_path / name
    shutil.copytree(src, work)
    monkeypatch.chdir(work)
    monkeypatch.delenv("HOSTDEV_RESOLVER_STORE", raising=False)
    args = list(case["args"])
    if "host" in case:
        HostTree.build(work / "sys", _host_spec(case))
    if "iscsi_host" in case:  # an iSCSI session's LUN in the same sys/ (and dev/)
        iscsi_tree(work, host=int(case["iscsi_host"]))
        args += ["--dev-root", "dev"]
    if "store" in case:
        shutil.copy(GOLDEN / "stores" / f"{case['store']}.xml", work / "mappings.xml")
    if not case.get("no_defaults"):
        args += ["--store", "mappings.xml", "--sysfs", "sys", "--node", "hv1"]
    rc = cli.main(args)
    out, err = capsys.readouterr()
    _compare(src / "expected.out", out, regen)
    _compare(src / "expected.err", err, regen)
    _compare(src / "expected.rc", f"{rc}\n", regen)
    if args[0] == "resolve" and rc == 0:
        # SPEC §3: resolved output always validates against libvirt's own schema.
        assert domain_rng_errors(out.encode(), "out") == []
        # ...and resolving it again changes nothing.
        (work / "again.xml").write_text(out)
        again = cli.main(["resolve", "again.xml", *args[2:]])
        assert again == 0
        assert capsys.readouterr().out == out
