"""udev's side of SCSI identities under umockdev (pyudev reads a fake udev database).

umockdev's preload library must be in place before the process starts, so the cases
(cases_umockdev.py) run in a child pytest under `umockdev-run`. The testbed is
written here from the same VPD builders as the sysfs trees.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scsi import hosts
from tests.support.scsitree import naa, page80, page83, t10

REPO = Path(__file__).resolve().parents[2]


def _disk(
    path: str,
    block: str,
    vendor: str,
    model: str,
    pg83: bytes,
    pg80: bytes,
    props: dict[str, str],
    links: list[str],
) -> str:
    devlinks = " ".join(f"/dev/disk/by-id/{link}" for link in links)
    lines = [
        f"P: {path}",
        "E: DEVTYPE=scsi_device",
        "E: DRIVER=sd",
        "E: SUBSYSTEM=scsi",
        f"A: vendor={vendor}",
        f"A: model={model}",
        "A: type=0",
        f"H: vpd_pg83={pg83.hex()}",
        f"H: vpd_pg80={pg80.hex()}",
        "",
        f"P: {path}/block/{block}",
        f"N: {block}",
        f"E: DEVNAME=/dev/{block}",
        "E: DEVTYPE=disk",
        "E: SUBSYSTEM=block",
        *(f"E: {k}={v}" for k, v in props.items()),
        f"E: DEVLINKS={devlinks}",
        "",
    ]
    return "\n".join(lines) + "\n"


def umockdev_file() -> str:
    sas = _disk(
        "/devices/pci0000:00/0000:00:17.0/host0/target0:0:0/0:0:0:0",
        "sda",
        "SEAGATE",
        "ST4000NM0025",
        page83(naa(hosts.SAS_LUN), naa(hosts.SAS_PORT, association=1)),
        page80("ZC1ABCDE"),
        {
            "ID_WWN": f"0x{hosts.SAS_LUN}",
            "ID_WWN_WITH_EXTENSION": f"0x{hosts.SAS_LUN}",
            "ID_SCSI_SERIAL": "ZC1ABCDE",
            "ID_VENDOR": "SEAGATE",
            "ID_MODEL": "ST4000NM0025",
        },
        hosts.udev_links(hosts.SAS_LUN),
    )
    netapp = _disk(
        "/devices/pci0000:40/0000:40:01.1/0000:41:00.0/host2/rport-2:0-0/target2:0:0/2:0:0:1",
        "sdb",
        "NETAPP",
        "LUN C-Mode",
        page83(naa(hosts.FC_LUN), naa(hosts.TARGET_A[2:], association=1)),
        page80("80D4s+Jla5zA"),
        {
            # scsi_id: ID_WWN is the first 8 bytes of an NAA type 6 name
            "ID_WWN": f"0x{hosts.FC_LUN[:16]}",
            "ID_WWN_WITH_EXTENSION": f"0x{hosts.FC_LUN}",
            "ID_SCSI_SERIAL": "80D4s+Jla5zA",
            "ID_VENDOR": "NETAPP",
            "ID_MODEL": "LUN_C-Mode",
        },
        hosts.udev_links(hosts.FC_LUN),
    )
    usb = _disk(
        "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host6/target6:0:0/6:0:0:0",
        "sde",
        "Kingston",
        "DataTraveler 3.0",
        page83(t10(*hosts.USB_T10)),
        page80(hosts.USB_SERIAL),
        {
            "ID_BUS": "usb",
            "ID_SERIAL": "Kingston_DataTraveler_3.0_60A44C413E4EF0A0B9B4-0:0",
            "ID_SERIAL_SHORT": hosts.USB_SERIAL,
            "ID_VENDOR": "Kingston",
            "ID_MODEL": "DataTraveler_3.0",
        },
        [hosts.USB_LINK],
    )
    return sas + "\n" + netapp + "\n" + usb


@pytest.mark.umockdev
def test_udev_identities_under_umockdev(tmp_path: Path) -> None:
    if shutil.which("umockdev-run") is None:
        pytest.skip("umockdev-run is not installed (apt-get install -y umockdev)")
    bed = tmp_path / "scsi.umockdev"
    bed.write_text(umockdev_file())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [
            "umockdev-run",
            "-d",
            str(bed),
            "--",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rA",
            str(Path(__file__).with_name("cases_umockdev.py")),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    summary = re.search(r"(\d+) passed", output)
    assert summary is not None and int(summary.group(1)) == 3, output
    assert "skipped" not in output and "failed" not in output, output
