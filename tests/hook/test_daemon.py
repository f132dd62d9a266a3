"""The hook under a real libvirtd (SPEC §9): what `virsh -c qemu:///system` users see.

The test hook installed by tests/support/libvirtd.py runs this checkout's hooks/qemu
with the config at TEST_HOOK_CONFIG, which each test points at its own store and tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import libvirtd

from .fixtures import GPU, Host, domain_xml, gpu_host, make_host, mapped

pytestmark = pytest.mark.daemon
HOOK = Path(__file__).resolve().parents[2] / "hooks" / "qemu"


@pytest.fixture
def daemon(libvirt_uri: str) -> Iterator[str]:
    libvirtd.undefine_all("hook-")
    yield libvirt_uri
    libvirtd.undefine_all("hook-")
    # Back to the defaults, so other tests' guests meet an unconfigured hook.
    libvirtd.write_hook_config("")


def _point_hook_at(host: Host, sysfs: Path, node: str = "hv1") -> None:
    libvirtd.write_hook_config(
        f"store = '{host.store}'\nnode = '{node}'\nsysfs = '{sysfs}'\nstate_dir = '{host.state}'\n"
        f"log_file = '{host.log}'\nsyslog = false\n"
    )


def test_start_of_a_shifted_device_is_refused_with_the_hooks_message(
    daemon: str, tmp_path: Path
) -> None:
    host = make_host(tmp_path / "then")
    resolved = host.resolve(domain_xml("hook-shifted", mapped("gpu0")))
    path = tmp_path / "hook-shifted.xml"
    path.write_bytes(resolved)
    # A card was fitted before the GPU's slot: firmware renumbered its bus 41 -> 44.
    now = make_host(tmp_path / "now", gpu_host(gpu_at="0000:44:00.0"))
    _point_hook_at(host, now.root)
    libvirtd.virsh("define", str(path))

    start = libvirtd.virsh("start", "hook-shifted", check=False)

    assert start.returncode == 1, start
    error = start.stderr
    assert "Hook script execution failed" in error
    assert "prepare begin" in error and "unexpected exit status 1: " in error
    assert (
        f"gpu0: no device is at {GPU} on node hv1; the device with serial "
        "00-11-22-33-44-55-66-77 is now at 0000:44:00.0" in error
    )
    assert "hostdev-resolver map add pci gpu0 --node hv1 --address 0000:44:00.0" in error
    assert libvirtd.virsh("domstate", "hook-shifted").stdout.strip() == "shut off"


def test_a_domain_without_metadata_starts_though_the_store_is_corrupt(
    daemon: str, tmp_path: Path
) -> None:
    host = make_host(tmp_path)
    host.store.write_text("<mappings this is not XML")
    _point_hook_at(host, host.root)
    path = tmp_path / "hook-plain.xml"
    path.write_text(domain_xml("hook-plain", ""))
    libvirtd.virsh("define", str(path))

    start = libvirtd.virsh("start", "hook-plain", check=False)

    assert start.returncode == 0, start.stderr
    assert libvirtd.virsh("domstate", "hook-plain").stdout.strip() == "running"
    libvirtd.virsh("destroy", "hook-plain")
    # The release hook ran too (domain stopped), and had nothing to give back.
    assert libvirtd.virsh("domstate", "hook-plain").stdout.strip() == "shut off"


def test_migrate_filter_output_is_xml_libvirt_accepts(daemon: str, tmp_path: Path) -> None:
    source = make_host(tmp_path / "hv1")
    resolved = source.resolve(
        domain_xml("hook-migrated", mapped("gpu0", managed="yes")), node="hv1"
    )
    # The destination hv2 has the same GPU at another address.
    dest = make_host(tmp_path / "hv2", gpu_host(gpu_at="0000:45:00.0"))
    dest.write_config(node="hv2")
    env = {**os.environ, "HOSTDEV_RESOLVER_CONFIG": str(dest.config)}

    run = subprocess.run(
        [sys.executable, str(HOOK), "hook-migrated", "migrate", "begin", "-"],
        input=resolved,
        capture_output=True,
        env=env,
        check=False,
    )

    assert run.returncode == 0, run.stderr.decode()
    out = run.stdout.decode()
    assert "bus='0x45'" in out and "node='hv2'" in out
    path = tmp_path / "hook-migrated.xml"
    path.write_bytes(run.stdout)
    libvirtd.virsh("define", str(path))
    dumped = libvirtd.virsh("dumpxml", "hook-migrated").stdout
    assert "bus='0x45'" in dumped
    # libvirt keeps the resolution record under <metadata>: the next start verifies it.
    assert "hostdev-resolver.org/xmlns/domain/1" in dumped and 'node="hv2"' in dumped


def test_define_accepts_a_resolved_mdev_hostdev_and_interface_vf(
    daemon: str, tmp_path: Path
) -> None:
    """libvirt takes what `resolve` writes for a vf mapping on <interface type='hostdev'>
    and <hostdev type='pci'>, and for an mdev mapping (issue 14); the records survive."""
    golden = Path(__file__).resolve().parents[1] / "golden" / "resolve-vf-and-mdev"
    resolved = (
        (golden / "expected.out")
        .read_text()
        .replace("<domain type='kvm'", "<domain type='qemu'")
        .replace("<name>net-guest</name>", "<name>hook-vf-mdev</name>")
    )
    path = tmp_path / "hook-vf-mdev.xml"
    path.write_text(resolved)

    libvirtd.virsh("define", str(path))

    dumped = libvirtd.virsh("dumpxml", "hook-vf-mdev").stdout
    assert "<address uuid='4b20d080-1b54-4048-85b3-a6a62d165c01'/>" in dumped
    assert "<address uuid='0c5e7a2b-9d41-4f3e-8b6a-1e2d3c4b5a69'/>" in dumped
    assert "<interface type='hostdev' managed='yes'>" in dumped
    assert "<address type='pci' domain='0x0000' bus='0x3b' slot='0x00' function='0x5'/>" in dumped
    assert "<vlan>" in dumped and "52:54:00:6d:90:02" in dumped
    # The records stay under <metadata> (libvirt rewrites their quoting, not their content).
    assert "hostdev-resolver.org/xmlns/domain/1" in dumped
    assert "nic-vf2" in dumped and "vgpu-pool" in dumped
