"""hostdev-virsh against the real libvirtd (SPEC §7, §9).

This machine has no IOMMU and no USB bus, so no guest holding a host device can run
here: libvirt refuses such a start after our part is done. What the tests prove is
what reaches libvirt: the resolved, recorded XML (define, edit, attach), the pooled
re-resolution before a start, libvirt's own words when it refuses, and that every
other command is virsh's, byte for byte.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostdev_resolver.core.claims import claims_of
from hostdev_resolver.doors.wrapper import is_local, split_command_line, with_references
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.support import libvirtd
from tests.support.hosttree import HostSpec, HostTree, PciSpec

WRAPPER = str(Path(sys.executable).with_name("hostdev-virsh"))
NODE = "wraptest"
HR = "http://hostdev-resolver.org/xmlns/domain/1"

SPEC = HostSpec(
    pci=[
        PciSpec(
            "0000:05:00.0",
            "8086",
            "1533",
            "8086",
            "0001",
            "020000",
            iommu_group=5,
            serial="00-1b-21-ff-ff-00-00-05",
        ),
        PciSpec(
            "0000:06:00.0",
            "8086",
            "1533",
            "8086",
            "0001",
            "020000",
            iommu_group=6,
            serial="00-1b-21-ff-ff-00-00-06",
        ),
    ]
)

STORE = f"""<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>
  <pci name='nic'>
    <node name='{NODE}' address='0000:05:00.0' vendor='8086' device='1533' subsystem-vendor='8086'
          subsystem-device='0001' class='020000' iommu-group='5' serial='00-1b-21-ff-ff-00-00-05'/>
    <node name='{NODE}' address='0000:06:00.0' vendor='8086' device='1533' subsystem-vendor='8086'
          subsystem-device='0001' class='020000' iommu-group='6' serial='00-1b-21-ff-ff-00-00-06'/>
  </pci>
</mappings>
"""


def domain(name: str, *, mapped: bool = True) -> str:
    hostdev = "<hostdev mode='subsystem' type='pci' managed='yes' hr:map='nic'/>" if mapped else ""
    return f"""<domain type='qemu' xmlns:hr='{HR}'>
  <name>{name}</name>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <!-- the NIC pool -->
    {hostdev}
  </devices>
</domain>
"""


@pytest.fixture
def env(libvirt_uri: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    tree = tmp_path / "sys"
    HostTree.build(tree, SPEC)
    store = tmp_path / "mappings.xml"
    store.write_text(STORE)
    libvirtd.write_hook_config(
        f'store = "{store}"\nnode = "{NODE}"\nsysfs = "{tree}"\ntrust_any_owner = true\n'
        f'state_dir = "{tmp_path / "state"}"\nlog_file = "{tmp_path / "hook.log"}"\nsyslog = false\n'
    )
    libvirtd.undefine_all("wrap-")
    yield {"uri": libvirt_uri, "store": str(store), "sysfs": str(tree), "dir": str(tmp_path)}
    libvirtd.undefine_all("wrap-")


def wrap(
    env: dict[str, str], *args: str, editor: str | None = None
) -> subprocess.CompletedProcess[str]:
    ours = ["--store", env["store"], "--node", NODE, "--sysfs", env["sysfs"]]
    environ = dict(os.environ)
    if editor is not None:
        environ["EDITOR"] = editor
    return subprocess.run(
        [WRAPPER, "-c", env["uri"], *args, *ours],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        stdin=subprocess.DEVNULL,
    )


def dumpxml(name: str, *flags: str) -> str:
    return libvirtd.virsh("dumpxml", name, *flags).stdout


def write(env: dict[str, str], name: str, text: str) -> str:
    path = Path(env["dir"]) / name
    path.write_text(text)
    return str(path)


@pytest.mark.daemon
def test_define_resolves_and_records(env: dict[str, str]) -> None:
    path = write(env, "a.xml", domain("wrap-def"))
    proc = wrap(env, "define", path)
    assert proc.returncode == 0, proc.stderr
    # virsh's own words: it defined the resolved document, handed over as /dev/fd/N.
    assert re.fullmatch(r"Domain 'wrap-def' defined from /dev/fd/\d+\n\n", proc.stdout)
    xml = dumpxml("wrap-def")
    assert "<address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>" in xml
    assert f'<hr:resolution xmlns:hr="{HR}" node="{NODE}">' in xml
    assert 'serial="00-1b-21-ff-ff-00-00-05"' in xml


@pytest.mark.daemon
def test_our_errors_are_one_line_and_nothing_reaches_libvirt(env: dict[str, str]) -> None:
    path = write(env, "bad.xml", domain("wrap-bad").replace("hr:map='nic'", "hr:map='gpu9'"))
    proc = wrap(env, "define", path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"hostdev-virsh: {path}:")
    assert "no mapping named 'gpu9'" in proc.stderr and proc.stderr.count("\n") == 1
    assert "wrap-bad" not in libvirtd.virsh("list", "--all", "--name").stdout


@pytest.mark.daemon
def test_libvirt_errors_in_libvirts_words(env: dict[str, str]) -> None:
    path = write(env, "c.xml", domain("wrap-create"))
    proc = wrap(env, "create", path)
    # The resolved address reaches libvirt, which cannot give a device this host lacks:
    # virsh (which create hands the resolved document to) says so, exit 1.
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: Failed to create domain from /dev/fd/")
    # The same words virsh gives for the resolved file.
    resolved = write(env, "c.resolved.xml", "")
    subprocess.run(
        [
            str(Path(sys.executable).with_name("hostdev-resolver")),
            "resolve",
            path,
            "-o",
            resolved,
            "--store",
            env["store"],
            "--node",
            NODE,
            "--sysfs",
            env["sysfs"],
        ],
        check=True,
    )
    theirs = libvirtd.virsh("create", resolved, check=False)
    assert theirs.returncode == proc.returncode
    assert re.sub(r"/dev/fd/\d+", resolved, proc.stderr) == theirs.stderr
    plain = write(env, "p.xml", domain("wrap-plain", mapped=False))
    created = wrap(env, "create", plain)
    assert created.returncode == 0, created.stderr
    assert created.stdout == f"Domain 'wrap-plain' created from {plain}\n\n"
    assert "running" in libvirtd.virsh("domstate", "wrap-plain").stdout


@pytest.mark.daemon
def test_pass_through_is_virsh(env: dict[str, str]) -> None:
    wrap(env, "define", write(env, "a.xml", domain("wrap-pass")))
    for args in (("list", "--all"), ("dumpxml", "wrap-pass"), ("dominfo", "wrap-nonexistent")):
        ours = subprocess.run([WRAPPER, "-c", env["uri"], *args], capture_output=True, text=True)
        theirs = libvirtd.virsh(*args, check=False)
        assert (ours.returncode, ours.stdout, ours.stderr) == (
            theirs.returncode,
            theirs.stdout,
            theirs.stderr,
        ), args


@pytest.mark.daemon
def test_edit_shows_references_and_defines_the_result(env: dict[str, str]) -> None:
    wrap(env, "define", write(env, "a.xml", domain("wrap-edit")))
    seen = Path(env["dir"]) / "seen.xml"
    script = write(
        env,
        "editor.py",
        "import shutil, sys\n"
        f"shutil.copy(sys.argv[1], {str(seen)!r})\n"
        "p = sys.argv[1]\n"
        "t = open(p).read().replace('65536', '131072')\n"
        "open(p, 'w').write(t)\n",
    )
    proc = wrap(env, "edit", "wrap-edit", editor=f"{sys.executable} {script}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Domain 'wrap-edit' XML configuration edited.\n\n"
    assert "hr:map='nic'" in seen.read_text()
    xml = dumpxml("wrap-edit", "--inactive")
    assert "<memory unit='KiB'>131072</memory>" in xml
    assert (
        "bus='0x05'" in xml
        and "hr:resolution" in xml
        and "hr:map" not in xml.split("<metadata>")[0]
    )


@pytest.mark.daemon
def test_start_re_resolves_a_pool_before_starting(env: dict[str, str]) -> None:
    wrap(env, "define", write(env, "a.xml", domain("wrap-pool")))
    assert "bus='0x05'" in dumpxml("wrap-pool", "--inactive")
    # The card is pulled (its sysfs entry goes): the pool's other card is free.
    (Path(env["sysfs"]) / "bus" / "pci" / "devices" / "0000:05:00.0").unlink()
    proc = wrap(env, "start", "wrap-pool")
    xml = dumpxml("wrap-pool", "--inactive")
    assert "bus='0x06'" in xml and 'serial="00-1b-21-ff-ff-00-00-06"' in xml
    redefined, error = proc.stderr.splitlines()
    assert redefined == (
        f"hostdev-virsh: redefined 'wrap-pool' for node {NODE} before starting it: "
        "nic 0000:05:00.0 -> 0000:06:00.0"
    )
    # libvirt then cannot hand over a PCI device on this host; its words, exit 1.
    assert proc.returncode == 1 and error.startswith("hostdev-virsh: error: "), proc.stderr


@pytest.mark.daemon
def test_two_guests_compete_for_a_two_device_pool(env: dict[str, str]) -> None:
    from hostdev_resolver.core.resolution import resolve_domain
    from hostdev_resolver.host.storeread import load_store
    from hostdev_resolver.host.sysfs import SysfsInventory

    wrap(env, "define", write(env, "a.xml", domain("wrap-a")))
    wrap(env, "define", write(env, "b.xml", domain("wrap-b")))
    # Both were defined while nothing ran: both hold the pool's first card.
    running_a = parse_bytes(dumpxml("wrap-a").encode(), "wrap-a")
    b = parse_bytes(dumpxml("wrap-b", "--inactive").encode(), "wrap-b")
    claimed = claims_of([running_a, b], "wrap-b")
    from hostdev_resolver.model.pciaddress import PciAddress

    assert claimed == {PciAddress.parse("0000:05:00.0")}
    result = resolve_domain(
        b, load_store(env["store"]), SysfsInventory(env["sysfs"]), NODE, claimed=list(claimed)
    )
    assert b"bus='0x06'" in result.data


def test_command_line_split() -> None:
    inv = split_command_line(
        [
            "-c",
            "qemu:///system",
            "-q",
            "--store=/s.xml",
            "define",
            "f.xml",
            "--policy",
            "tuned",
            "--validate",
        ]
    )
    assert (inv.uri, inv.quiet, inv.command, inv.args) == (
        "qemu:///system",
        True,
        "define",
        ("f.xml", "--validate"),
    )
    assert inv.ours == {"--store": "/s.xml", "--policy": "tuned"}
    assert inv.virsh_globals == ("-c", "qemu:///system", "-q")
    passed = split_command_line(["--connect=test:///default", "list", "--node", "x"])
    assert passed.args == ("list", "--node", "x")[1:] and passed.ours == {}
    assert is_local("qemu:///system") and not is_local("qemu+ssh://hv2/system")
    assert not is_local("test:///default")


def test_with_references_restores_map_names() -> None:
    data = (
        f"<domain><name>d</name><metadata><hr:resolution xmlns:hr='{HR}' node='n'>"
        "<hr:pci map='nic' address='0000:05:00.0' vendor='8086' device='1533'/></hr:resolution>"
        "</metadata><devices><hostdev mode='subsystem' type='pci'><source>"
        "<address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/></source></hostdev>"
        "</devices></domain>"
    ).encode()
    out = with_references(data, "d.xml").decode()
    assert f"<domain xmlns:hr='{HR}'>" in out
    assert "<hostdev mode='subsystem' type='pci' hr:map='nic'>" in out
