"""Resolved LUN disks and SCSI hostdevs are accepted by the real libvirtd (SPEC §9)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scsi import hosts
from tests.scsi.test_resolve import domain, resolve
from tests.support import libvirtd

pytestmark = pytest.mark.daemon
PREFIX = "scsi-"


@pytest.fixture
def daemon(libvirt_uri: str) -> Iterator[str]:
    libvirtd.undefine_all(PREFIX)
    yield libvirt_uri
    libvirtd.undefine_all(PREFIX)


def test_virsh_define_accepts_resolved_lun_and_scsi_hostdev(daemon: str, tmp_path: Path) -> None:
    scsi = hosts.inventory(hosts.fc_tree(tmp_path / "host", multipath=True))
    devices = """    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='block' device='lun' hr:map='db-lun'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='scsi'/>
    </disk>
    <hostdev mode='subsystem' type='scsi' hr:map='path-b'/>"""
    resolved, _ = resolve(domain(devices, name="scsi-define"), scsi)
    path = tmp_path / "scsi-define.xml"
    path.write_bytes(resolved)

    libvirtd.virsh("define", str(path))

    dumped = libvirtd.virsh("dumpxml", "scsi-define").stdout
    assert f"<source dev='/dev/disk/by-id/dm-uuid-mpath-3{hosts.FC_LUN}'/>" in dumped
    assert "<adapter name='scsi_host3'/>" in dumped
    assert "<address bus='0' target='0' unit='1'/>" in dumped
    # libvirt keeps our record under <metadata> (re-serialised, double quotes): it is
    # what the hook verifies
    metadata = dumped.split("<metadata>")[1].split("</metadata>")[0]
    assert f'multipath="mpath-3{hosts.FC_LUN}"' in metadata
    assert 'address="3:0:0:1"' in metadata
