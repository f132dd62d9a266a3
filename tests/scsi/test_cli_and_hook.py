"""LUNs end to end through the CLI and the hook: map add, resolve, verify, prepare begin.

The scenario libvirt's docs warn about: an iSCSI session logs in again and the LUN comes
back under another SCSI host number. The disk (by WWN) keeps working; the SCSI hostdev
(by host number) is refused at start with the new numbers.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from hostdev_resolver.doors import hook
from hostdev_resolver.doors.cli import main as cli
from tests.scsi.hosts import ISCSI_LUN, iscsi_tree

DOMAIN = """<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>db1</name>
  <memory unit='MiB'>512</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='block' device='lun' hr:map='data'>
      <target dev='sda' bus='scsi'/>
    </disk>
    <hostdev mode='subsystem' type='scsi' hr:map='tape'/>
  </devices>
</domain>
"""


def _host(root: Path, number: int) -> list[str]:
    iscsi_tree(root, host=number)
    return ["--sysfs", str(root / "sys"), "--dev-root", str(root / "dev"), "--node", "hv1"]


def test_lun_survives_relogin_scsi_hostdev_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "mappings.xml")
    before = _host(tmp_path / "before", 5)
    assert (
        cli.main(
            ["map", "add", "lun", "data", "--wwn", f"0x{ISCSI_LUN}", "--store", store, *before]
        )
        == 0
    )
    assert (
        cli.main(
            ["map", "add", "scsi", "tape", "--wwn", f"naa.{ISCSI_LUN}", "--store", store, *before]
        )
        == 0
    )
    (tmp_path / "db1.xml").write_text(DOMAIN)
    resolved = tmp_path / "db1.resolved.xml"
    assert (
        cli.main(
            ["resolve", str(tmp_path / "db1.xml"), "-o", str(resolved), "--store", store, *before]
        )
        == 0
    )
    text = resolved.read_text()
    assert f"<source dev='/dev/disk/by-id/wwn-0x{ISCSI_LUN}'/>" in text
    assert "<adapter name='scsi_host5'/>" in text
    assert cli.main(["verify", str(resolved), "--store", store, *before]) == 0
    capsys.readouterr()

    after = _host(tmp_path / "after", 7)  # the session logged in again: host7 now
    assert cli.main(["verify", str(resolved), "--store", store, *after]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok: data")
    assert "scsi_host7" in out[1] and "tape" in out[1]

    config = tmp_path / "hook.toml"
    config.write_text(
        f'store = "{store}"\nnode = "hv1"\nsysfs = "{tmp_path / "after" / "sys"}"\n'
        f'dev_root = "{tmp_path / "after" / "dev"}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'log_file = "{tmp_path / "hook.log"}"\nsyslog = false\ntrust_any_owner = true\n'
    )
    stderr = io.StringIO()
    rc = hook.main(
        ["db1", "prepare", "begin", "-"],
        io.BytesIO(resolved.read_bytes()),
        stdout=io.BytesIO(),
        stderr=stderr,
        environ={"HOSTDEV_RESOLVER_CONFIG": str(config)},
    )
    assert rc == 1
    # Without /dev/log the hook logs its decisions to stderr too; the refusal is one line.
    refusals = [line for line in stderr.getvalue().splitlines() if ": ok:" not in line]
    assert len(refusals) == 1
    assert "tape" in refusals[0] and "scsi_host7" in refusals[0]


def test_a_host_snapshot_carries_the_scsi_view(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`inventory --format json` then `--host`: LUN guests validate away from the node."""
    store = str(tmp_path / "mappings.xml")
    before = _host(tmp_path / "before", 5)
    assert (
        cli.main(
            ["map", "add", "lun", "data", "--wwn", f"0x{ISCSI_LUN}", "--store", store, *before]
        )
        == 0
    )
    assert (
        cli.main(
            ["map", "add", "scsi", "tape", "--wwn", f"0x{ISCSI_LUN}", "--store", store, *before]
        )
        == 0
    )
    (tmp_path / "db1.xml").write_text(DOMAIN)
    capsys.readouterr()
    snapshots = {}
    for name, args in (("before", before), ("after", _host(tmp_path / "after", 7))):
        assert cli.main(["inventory", "--format", "json", *args]) == 0
        snapshots[name] = tmp_path / f"{name}.json"
        snapshots[name].write_text(capsys.readouterr().out)
    assert cli.main(["resolve", str(tmp_path / "db1.xml"), "--store", store, *before]) == 0
    from_sysfs = capsys.readouterr().out
    resolved = tmp_path / "r.xml"
    host = ["--store", store, "--node", "hv1", "--host"]
    assert (
        cli.main(
            [
                "resolve",
                str(tmp_path / "db1.xml"),
                "-o",
                str(resolved),
                *host,
                str(snapshots["before"]),
            ]
        )
        == 0
    )
    assert resolved.read_text() == from_sysfs
    assert cli.main(["verify", str(resolved), *host, str(snapshots["before"])]) == 0
    assert cli.main(["verify", str(resolved), *host, str(snapshots["after"])]) == 1
    assert "scsi_host7" in capsys.readouterr().out
