"""`hostdev-virsh start` after a shift (issue 16, item 8).

A guest whose device moved where it can be followed safely (serial, slot, port path)
is re-resolved and redefined before the start, saying what moved; a device that cannot
be followed (a look-alike with nothing to tell it apart, a missing device) is left for
the hook to refuse in its own words, and plain `virsh start` keeps being refused.

The fast tests decide on a real sysfs tree what the start path would do; the daemon
tests drive the real libvirtd with the repository's hook installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostdev_resolver.core.metadata import read_resolution
from hostdev_resolver.core.resolution import resolve_domain
from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.doors.wrapper import Session, followable, moves
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.support import libvirtd
from tests.support.hosttree import HostSpec, HostTree, PciSpec

WRAPPER = str(Path(sys.executable).with_name("hostdev-virsh"))
NODE = "starttest"
HR = "http://hostdev-resolver.org/xmlns/domain/1"
GPU_SERIAL = "48-b0-2d-ff-ff-12-34-56"


def _gpu(address: str) -> PciSpec:
    """A GPU with a PCIe Device Serial Number: it can be followed wherever it goes."""
    return PciSpec(
        address, "10de", "20b5", "10de", "1533", "030200", iommu_group=31, serial=GPU_SERIAL
    )


def _twin(address: str) -> PciSpec:
    """A card with no serial and no slot: after a move, any identical card looks the same."""
    return PciSpec(address, "10de", "1eb8", "10de", "12a2", "030200", iommu_group=32)


def _host(root: Path, gpu: str | None, twin: str | None) -> None:
    if root.exists():
        shutil.rmtree(root)
    HostTree.build(root, HostSpec(pci=[s for s in (gpu and _gpu(gpu), twin and _twin(twin)) if s]))


def _domain(name: str, mapping: str, kind: str = "qemu") -> str:
    return f"""<domain type='{kind}' xmlns:hr='{HR}'>
  <name>{name}</name>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='{mapping}'/>
  </devices>
</domain>
"""


def _map_add(store: Path, sysfs: Path, name: str, address: str) -> None:
    common = ["--store", str(store), "--sysfs", str(sysfs), "--node", NODE]
    assert cli.main(["map", "add", "pci", name, "--address", address, *common]) == 0


@pytest.fixture
def host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """The store captured while the GPU sat at 41:00.0 and the twin at 42:00.0."""
    sysfs, store = tmp_path / "sys", tmp_path / "mappings.xml"
    _host(sysfs, "0000:41:00.0", "0000:42:00.0")
    _map_add(store, sysfs, "gpu", "41:00.0")
    _map_add(store, sysfs, "twin", "42:00.0")
    capsys.readouterr()
    return {"sysfs": sysfs, "store": store}


def _session(host: dict[str, Path]) -> Session:
    ours: dict[str, str | bool] = {
        "--store": str(host["store"]),
        "--sysfs": str(host["sysfs"]),
        "--node": NODE,
    }
    return Session(None, "qemu:///system", ours, quiet=True)


def _resolved(host: dict[str, Path], name: str, mapping: str) -> bytes:
    doc = parse_bytes(_domain(name, mapping).encode(), f"{name}.xml")
    store = load_store(str(host["store"]))
    return resolve_domain(doc, store, SysfsInventory(str(host["sysfs"])), NODE).data


def test_only_a_device_that_can_be_followed_is_re_resolved(host: dict[str, Path]) -> None:
    gpu = parse_bytes(_resolved(host, "g", "gpu"), "g")
    twin = parse_bytes(_resolved(host, "t", "twin"), "t")
    assert not followable(gpu, _session(host))  # nothing moved: nothing to do

    # Firmware renumbered the buses: 41 -> 43, 42 -> 44.
    _host(host["sysfs"], "0000:43:00.0", "0000:44:00.0")
    assert followable(gpu, _session(host))  # the DSN says where the GPU went
    assert not followable(twin, _session(host))  # a look-alike: the hook refuses it

    _host(host["sysfs"], None, "0000:42:00.0")  # the GPU was pulled
    assert not followable(gpu, _session(host))


def test_a_moved_and_a_missing_device_together_are_left_to_the_hook(
    host: dict[str, Path],
) -> None:
    both = _domain("b", "gpu").replace(
        "</devices>",
        "  <hostdev mode='subsystem' type='pci' managed='yes' hr:map='twin'/>\n  </devices>",
    )
    store = load_store(str(host["store"]))
    data = resolve_domain(
        parse_bytes(both.encode(), "b.xml"), store, SysfsInventory(str(host["sysfs"])), NODE
    ).data
    _host(host["sysfs"], "0000:43:00.0", None)
    # Following the GPU would not make the start succeed: the twin is gone.
    assert not followable(parse_bytes(data, "b"), _session(host))


def test_moves_names_what_changed(host: dict[str, Path]) -> None:
    before = read_resolution(parse_bytes(_resolved(host, "g", "gpu"), "g"))
    _host(host["sysfs"], "0000:43:00.0", "0000:42:00.0")
    after = read_resolution(parse_bytes(_resolved(host, "g", "gpu"), "g"))
    assert moves(before, after) == ["gpu 0000:41:00.0 -> 0000:43:00.0"]
    assert moves(after, after) == []
    assert moves(None, after) == ["gpu (new) -> 0000:43:00.0"]


# -- against the real libvirtd ------------------------------------------------------


@pytest.fixture
def daemon(libvirt_uri: str, host: dict[str, Path], tmp_path: Path) -> Iterator[str]:
    libvirtd.write_hook_config(
        f'store = "{host["store"]}"\nnode = "{NODE}"\nsysfs = "{host["sysfs"]}"\n'
        f'trust_any_owner = true\nstate_dir = "{tmp_path / "state"}"\n'
        f'log_file = "{tmp_path / "hook.log"}"\nsyslog = false\n'
    )
    libvirtd.undefine_all("start-")
    yield libvirt_uri
    libvirtd.undefine_all("start-")
    libvirtd.write_hook_config("")


def _wrap(uri: str, host: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    ours = ["--store", str(host["store"]), "--node", NODE, "--sysfs", str(host["sysfs"])]
    return subprocess.run(
        [WRAPPER, "-c", uri, *args, *ours],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _define(uri: str, host: dict[str, Path], tmp_path: Path, name: str, mapping: str) -> None:
    path = tmp_path / f"{name}.xml"
    path.write_text(_domain(name, mapping))
    proc = _wrap(uri, host, "define", str(path))
    assert proc.returncode == 0, proc.stderr


def _inactive(name: str) -> str:
    return libvirtd.virsh("dumpxml", name, "--inactive").stdout


@pytest.mark.daemon
def test_start_follows_a_moved_device_and_plain_virsh_is_still_refused(
    daemon: str, host: dict[str, Path], tmp_path: Path
) -> None:
    _define(daemon, host, tmp_path, "start-moved", "gpu")
    _define(daemon, host, tmp_path, "start-plain", "gpu")
    assert "bus='0x41'" in _inactive("start-moved")
    _host(host["sysfs"], "0000:43:00.0", "0000:44:00.0")

    # Started by other means: the hook refuses, saying where the device went.
    plain = libvirtd.virsh("start", "start-plain", check=False)
    assert plain.returncode == 1
    assert "Hook script execution failed" in plain.stderr and "prepare begin" in plain.stderr
    assert f"the device with serial {GPU_SERIAL} is now at 0000:43:00.0" in plain.stderr
    assert "bus='0x41'" in _inactive("start-plain")

    proc = _wrap(daemon, host, "start", "start-moved")
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        f"hostdev-virsh: warning: gpu: no device is at 0000:41:00.0 on node {NODE}; the device "
        f"with serial {GPU_SERIAL} is now at 0000:43:00.0; using it — refresh the store with "
        f"'hostdev-resolver map add pci gpu --node {NODE} --address 0000:43:00.0'"
    )
    assert lines[1] == (
        f"hostdev-virsh: redefined 'start-moved' for node {NODE} before starting it: "
        "gpu 0000:41:00.0 -> 0000:43:00.0"
    )
    xml = _inactive("start-moved")
    assert "<address domain='0x0000' bus='0x43' slot='0x00' function='0x0'/>" in xml
    assert 'address="0000:43:00.0"' in xml  # the record the hook verifies
    # The hook accepted it; libvirt then cannot hand over a PCI device on this host (no
    # IOMMU): that refusal is libvirt's own, after prepare, and not ours.
    assert proc.returncode == 1, proc.stderr
    assert lines[2].startswith("hostdev-virsh: error: ") and len(lines) == 3, proc.stderr
    assert "Hook script" not in proc.stderr and "hostdev-resolver" not in lines[2]
    log = (tmp_path / "hook.log").read_text()
    assert (
        f"start-moved: prepare begin: gpu: 0000:43:00.0 on node {NODE} is the mapped device" in log
    )


@pytest.mark.daemon
def test_start_leaves_a_look_alike_to_the_hook(
    daemon: str, host: dict[str, Path], tmp_path: Path
) -> None:
    _define(daemon, host, tmp_path, "start-twin", "twin")
    before = _inactive("start-twin")
    _host(host["sysfs"], "0000:43:00.0", "0000:44:00.0")

    proc = _wrap(daemon, host, "start", "start-twin")

    assert proc.returncode == 1
    assert proc.stderr.startswith("hostdev-virsh: error: Hook script execution failed")
    assert "no device is at 0000:42:00.0" in proc.stderr
    assert "a device with the same IDs is at 0000:44:00.0" in proc.stderr
    assert "redefined" not in proc.stderr
    assert _inactive("start-twin") == before
