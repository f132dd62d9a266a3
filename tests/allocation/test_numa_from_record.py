"""--numa-aware takes host NUMA nodes from the domain's resolution record when the
domain went through `resolve`: the same layout as giving them with --host-numa."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli

CASE = Path(__file__).parent / "golden" / "tuned-numa"
RECORD = """  <metadata>
    <hr:resolution xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1' node='hv1'>
      <hr:pci map='gpu0' address='0000:41:00.0' vendor='10de' device='20b5' numa-node='1'/>
      <hr:pci map='nic0' address='0000:c1:00.0' vendor='8086' device='1533' numa-node='0'/>
    </hr:resolution>
  </metadata>
"""


def test_numa_nodes_come_from_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    given = tmp_path / "given.xml"
    given.write_text((CASE / "input.xml").read_text())
    recorded = tmp_path / "recorded.xml"
    recorded.write_text(
        (CASE / "input.xml").read_text().replace("  <memory unit=", RECORD + "  <memory unit=", 1)
    )
    host_numa = ["--host-numa", "0000:41:00.0=1", "--host-numa", "0000:c1:00.0=0"]
    assert cli.main(["allocate", str(given), "--policy", "tuned", "--numa-aware", *host_numa]) == 0
    with_flags = capsys.readouterr().out
    assert cli.main(["allocate", str(recorded), "--policy", "tuned", "--numa-aware"]) == 0
    from_record = capsys.readouterr().out
    assert "pcie-expander-bus" in with_flags
    assert from_record == with_flags.replace("  <memory unit=", RECORD + "  <memory unit=", 1)
