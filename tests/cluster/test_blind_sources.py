"""resolve, verify and snapshots through a source that cannot see every field (libvirt).

A store captured from sysfs records subsystem IDs, the DSN and the slot; libvirt's
node-device XML shows none of them. Through such a source those fields are left out
of the comparison (the hook checks them on the node itself) - never counted as
different, never as matching - and the resolution record keeps the store's full identity.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from tests.cluster.test_cluster import HV1, STORE

DOMAIN = """<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>ml-train</name>
  <memory unit='MiB'>512</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'/>
  </devices>
</domain>
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "mappings.xml").write_text(STORE)
    (tmp_path / "d.xml").write_text(DOMAIN)
    return tmp_path


def test_resolve_through_libvirt_keeps_the_full_identity(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(files / "mappings.xml")
    assert (
        cli.main(["resolve", str(files / "d.xml"), "--store", store, "--connect", f"hv1={HV1}"])
        == 0
    )
    out = capsys.readouterr().out
    assert "<address domain='0x0000' bus='0x41' slot='0x00' function='0x0'/>" in out
    # the record is what the hook verifies on the node: the store's identity, all of it
    assert "subsystem-vendor='10de'" in out and "serial='00-11-22-ff-ff-33-44-55'" in out


def test_a_snapshot_taken_through_libvirt_says_what_it_cannot_see(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["inventory", "--format", "json", "--connect", f"hv1={HV1}"]) == 0
    snapshot = json.loads(capsys.readouterr().out)
    assert "subsystem" in snapshot["unobserved"]["pci"]
    assert "serial" in snapshot["unobserved"]["usb"]
    path = files / "hv1.json"
    path.write_text(json.dumps(snapshot))
    store = str(files / "mappings.xml")
    resolved = files / "r.xml"
    assert (
        cli.main(
            [
                "resolve",
                str(files / "d.xml"),
                "--store",
                store,
                "--host",
                str(path),
                "-o",
                str(resolved),
            ]
        )
        == 0
    )
    assert cli.main(["verify", str(resolved), "--store", store, "--host", str(path)]) == 0
    assert "ok: gpu0: 0000:41:00.0 on node hv1 is as expected" in capsys.readouterr().out


def test_fields_a_source_does_show_are_still_compared(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong_class = STORE.replace(
        "class='030200' iommu-group='31'", "class='030000' iommu-group='31'"
    )
    (files / "mappings.xml").write_text(wrong_class)
    store = str(files / "mappings.xml")
    assert (
        cli.main(["resolve", str(files / "d.xml"), "--store", store, "--connect", f"hv1={HV1}"])
        == 1
    )
    assert "has class 030200 (expected 030000)" in capsys.readouterr().err


def test_map_check_exit_codes_tell_wrong_devices_from_unreachable_nodes(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", str(files / "mappings.xml")]
    bogus = "hv9=bogus:///nowhere"
    # nothing could be looked at: environment (3), not "devices are wrong" (1)
    assert cli.main(["map", "check", *store, "--connect", bogus]) == 3
    assert "unreachable" in capsys.readouterr().out
    # one node given twice would give two contradicting rows for it
    assert (
        cli.main(["map", "check", *store, "--connect", f"hv1={HV1}", "--connect", f"hv1={HV1}"])
        == 2
    )
    assert "node hv1 is given more than once" in capsys.readouterr().err
