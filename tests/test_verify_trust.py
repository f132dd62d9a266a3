"""The domain file is not trusted: verification locates the store's entry, not the record.

Whoever may define domains writes the domain XML, metadata included. A record that
names an identical card the store never mapped (same IDs, another address) must be
refused, so that the root hook never verifies - or binds to vfio-pci - a device
the store did not give that mapping.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from tests.test_store import _tree

DOMAIN = """<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>guest</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='no' hr:map='nic'/>
  </devices>
</domain>
"""


def test_a_record_pointing_at_an_unmapped_twin_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys_root = _tree(tmp_path / "sys", 2)  # two identical NICs: 10:00.0 and 11:00.0
    common = ["--store", str(tmp_path / "m.xml"), "--sysfs", str(sys_root), "--node", "hv1"]
    assert cli.main(["map", "add", "pci", "nic", "--address", "10:00.0", "--vfio", *common]) == 0
    (tmp_path / "d.xml").write_text(DOMAIN)
    resolved = tmp_path / "r.xml"
    assert cli.main(["resolve", str(tmp_path / "d.xml"), "-o", str(resolved), *common]) == 0
    assert cli.main(["verify", "--dry-run", str(resolved), *common]) == 0
    assert "drivers/igb/unbind" in capsys.readouterr().out  # the mapped NIC would be bound
    # Rewrite the source and the record to the other card, dropping the IOMMU group.
    forged = tmp_path / "forged.xml"
    text = resolved.read_text()
    text = text.replace("address='0000:10:00.0'", "address='0000:11:00.0'")
    text = text.replace("bus='0x10'", "bus='0x11'").replace(" iommu-group='0'", "")
    assert "0000:11:00.0" in text and "bus='0x11'" in text
    forged.write_text(text)
    assert cli.main(["verify", str(forged), *common]) == 1
    out = capsys.readouterr().out
    assert (
        "nic: guest uses 0000:11:00.0 on node hv1, but the store's nic there is the device "
        "at 0000:10:00.0" in out
    )
    assert cli.main(["verify", "--dry-run", str(forged), *common]) == 1
    assert "unbind" not in capsys.readouterr().out
