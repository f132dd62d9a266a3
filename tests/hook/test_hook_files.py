"""The hook as libvirtd runs it, against stores and configs that are not plain files.

libvirtd waits for its hooks, so a hook that blocks hangs the daemon: each case runs
hooks/qemu in a subprocess under a timeout, and a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .fixtures import domain_xml, gpu_host, make_host, mapped

HOOK = Path(__file__).resolve().parents[2] / "hooks" / "qemu"
TIMEOUT = 20

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")


def run_hook(config: Path, domain: str, op: str, subop: str, xml: bytes) -> tuple[int, str]:
    try:
        run = subprocess.run(
            [sys.executable, str(HOOK), domain, op, subop, "-"],
            input=xml,
            capture_output=True,
            env={**os.environ, "HOSTDEV_RESOLVER_CONFIG": str(config)},
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the hook blocked at {op} {subop} (> {TIMEOUT} s)")
    stderr = run.stderr.decode()
    assert "Traceback" not in stderr
    return run.returncode, stderr


@pytest.mark.parametrize("trust_any_owner", [False, True])
@pytest.mark.parametrize("op", [("prepare", "begin"), ("reconnect", "begin")])
def test_a_fifo_store_neither_blocks_nor_passes(
    tmp_path: Path, trust_any_owner: bool, op: tuple[str, str]
) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("fifo-s", mapped("nvme0", managed="yes")))
    if trust_any_owner:
        host.write_config(extra="trust_any_owner = true\n")
    host.store.unlink()
    os.mkfifo(host.store, 0o644)
    code, stderr = run_hook(host.config, "fifo-s", *op, xml)
    # A refused start tells libvirt on stderr; reconnect only logs (syslog = false: the
    # fixture's log file), since libvirt discards a successful hook's stderr.
    said = stderr if op[0] == "prepare" else host.log.read_text()
    assert f"{host.store}: the mapping store is a FIFO, not a regular file" in said
    assert len(said.splitlines()) == 1
    assert code == (0 if op[0] == "reconnect" else 2 if trust_any_owner else 3)


def test_a_fifo_config_neither_blocks_nor_passes(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("fifo-c", mapped("nvme0", managed="yes")))
    host.config.unlink()
    os.mkfifo(host.config, 0o644)
    code, stderr = run_hook(host.config, "fifo-c", "prepare", "begin", xml)
    assert code == 3
    assert stderr.strip() == (
        f"hostdev-resolver: {host.config}: the hook config is a FIFO, not a regular file; "
        "not read; point the hook at the hook config file itself"
    )


def test_a_device_node_store_is_refused(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("dev-s", mapped("nvme0", managed="yes")))
    host.write_config(extra="trust_any_owner = true\n")
    host.store.unlink()
    host.store.symlink_to("/dev/zero")  # trust_any_owner reads through links
    code, stderr = run_hook(host.config, "dev-s", "prepare", "begin", xml)
    assert code == 2
    assert "the mapping store is a character device, not a regular file" in stderr


def test_a_user_who_owns_a_directory_behind_a_link_cannot_pick_the_store(
    tmp_path: Path,
) -> None:
    """The attack: the config names etc/hostdev/mappings.xml, etc/hostdev is a link into
    uid 1000's directory, and that user points it at a root-owned store of their choice
    that allows their guest. Every directory on the written path is root's."""
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("acl-guest", mapped("nvme0", managed="yes")))
    # The store the administrator meant denies the guest ...
    denying = host.store.read_text().replace(
        "<pci name='nvme0'>", "<pci name='nvme0'>\n    <allow domain='db-*'/>"
    )
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chown(home, 1000, 1000)
    for name, text in (("meant", denying), ("other", host.store.read_text())):
        (home / name).mkdir(mode=0o755)
        (home / name / "mappings.xml").write_text(text)
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755)
    (etc / "hostdev").symlink_to(home / "meant")
    host.write_config(extra="")
    host.config.write_text(
        host.config.read_text().replace(str(host.store), str(etc / "hostdev" / "mappings.xml"))
    )
    # ... and uid 1000 may rename in home/: it swaps in the one that allows everyone.
    os.rename(home / "meant", home / "denying")
    os.rename(home / "other", home / "meant")
    code, stderr = run_hook(host.config, "acl-guest", "prepare", "begin", xml)
    assert code == 3, stderr
    assert (
        f"the mapping store is under {home} (reached through the symlink {etc / 'hostdev'}), "
        "which another user can change (owner uid 1000, mode 755); not trusted" in stderr
    )
