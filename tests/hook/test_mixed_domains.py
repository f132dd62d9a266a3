"""Every record kind, in domains that mix every device kind in any order.

A realistic SAN guest has a file-backed boot disk, a cdrom and a NIC next to its LUNs and
host devices. Each record in `hr:resolution` must be matched to its own element (by its
source), whatever else the domain holds and in whatever order: `verify` and the hook's
`prepare begin` must accept the resolved guest, and a record whose element is gone must
be reported as that record's problem, not another's.
"""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostdev_resolver.doors import hook
from hostdev_resolver.doors.cli import main as cli
from tests.support.hosttree import HostSpec, HostTree, PciSpec, UsbSpec
from tests.support.scsitree import ScsiTree, naa, page83
from tests.support.simkernel import SimKernel

NODE = "hv1"
NIC1, NIC2 = "0000:03:00.0", "0000:04:00.0"
# Four LUNs of one array: by store mapping (disk, hostdev) and by hr:wwn (disk, hostdev).
LUNS = {f"sd{c}": f"6001405a1b2c3d4e5f60718293a4b5c{i}" for i, c in enumerate("bcde")}
WWN_DISK, WWN_HOSTDEV = f"0x{LUNS['sdd']}", f"0x{LUNS['sde']}"

STORE = f"""<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>
  <pci name='nic1'>
    <node name='hv1' address='{NIC1}' vendor='8086' device='10d3' subsystem-vendor='8086'
          subsystem-device='a01f' class='020000' iommu-group='12'/>
  </pci>
  <pci name='nic2'>
    <node name='hv1' address='{NIC2}' vendor='8086' device='1533' subsystem-vendor='8086'
          subsystem-device='0001' class='020000' iommu-group='13'/>
  </pci>
  <usb name='yubikey'><node name='hv1' vendor='1050' product='0407' serial='17253849'/></usb>
  <lun name='data' wwn='0x{LUNS["sdb"]}'/>
  <scsi name='tape' wwn='0x{LUNS["sdc"]}'/>
</mappings>
"""

# One element of each kind; the referencing ones are keyed by the record they produce.
OTHERS = {
    "boot-disk": """    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/db1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>""",
    "cdrom": """    <disk type='file' device='cdrom'>
      <source file='/var/lib/libvirt/images/install.iso'/>
      <target dev='sdz' bus='sata'/>
      <readonly/>
    </disk>""",
    "lvm-disk": """    <disk type='block' device='disk'>
      <source dev='/dev/vg0/db1-swap'/>
      <target dev='vdb' bus='virtio'/>
    </disk>""",
    "network": """    <interface type='network'>
      <source network='default'/>
      <model type='virtio'/>
    </interface>""",
}
REFERENCES = {
    "nic1": "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='nic1'/>",
    "nic2": "    <hostdev mode='subsystem' type='pci' managed='no' hr:map='nic2'/>",
    "yubikey": "    <hostdev mode='subsystem' type='usb' managed='yes' hr:map='yubikey'/>",
    "data": """    <disk type='block' device='lun' hr:map='data'>
      <target dev='sda' bus='scsi'/>
    </disk>""",
    WWN_DISK: f"""    <disk type='block' device='lun' hr:wwn='{WWN_DISK}'>
      <target dev='sdb' bus='scsi'/>
    </disk>""",
    "tape": "    <hostdev mode='subsystem' type='scsi' hr:map='tape'/>",
    WWN_HOSTDEV: f"    <hostdev mode='subsystem' type='scsi' hr:wwn='{WWN_HOSTDEV}'/>",
}


def _orders() -> list[list[str]]:
    names = [*OTHERS, *REFERENCES]
    orders = [names, names[::-1], [*REFERENCES, *OTHERS]]
    rng = random.Random(10)
    for _ in range(5):
        shuffled = names[:]
        rng.shuffle(shuffled)
        orders.append(shuffled)
    return orders


def domain(order: list[str]) -> str:
    parts = [OTHERS.get(name) or REFERENCES[name] for name in order]
    body = "\n".join(parts)
    return f"""<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>db1</name>
  <memory unit='MiB'>512</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
{body}
  </devices>
</domain>
"""


@dataclass(frozen=True)
class San:
    base: Path

    @property
    def sysfs(self) -> Path:
        return self.base / "sys"

    @property
    def store(self) -> Path:
        return self.base / "mappings.xml"

    @property
    def args(self) -> list[str]:
        return [
            "--store",
            str(self.store),
            "--sysfs",
            str(self.sysfs),
            "--dev-root",
            str(self.base / "dev"),
            "--node",
            NODE,
        ]

    @property
    def log(self) -> Path:
        return self.base / "hook.log"

    def hook_config(self) -> Path:
        config = self.base / "hook.toml"
        config.write_text(
            f"store = '{self.store}'\nnode = '{NODE}'\nsysfs = '{self.sysfs}'\n"
            f"dev_root = '{self.base / 'dev'}'\nstate_dir = '{self.base / 'state'}'\n"
            f"log_file = '{self.log}'\nsyslog = false\n"
        )
        return config


def san_host(base: Path) -> San:
    """Two NICs in IOMMU groups of their own, a YubiKey, and an iSCSI session with 4 LUNs."""
    HostTree.build(
        base / "sys",
        HostSpec(
            pci=[
                PciSpec(NIC1, "8086", "10d3", "8086", "a01f", "020000", 12, 0, "e1000e"),
                PciSpec(NIC2, "8086", "1533", "8086", "0001", "020000", 13, 0, "igb"),
            ],
            usb=[UsbSpec("1-2", 1, 4, "1050", "0407", "17253849")],
        ),
    )
    (base / "sys" / "bus" / "pci" / "drivers" / "vfio-pci").mkdir()
    tree = ScsiTree(base / "sys", base / "dev")
    tree.add_host(5)
    for lun, (block, digits) in enumerate(LUNS.items()):
        tree.add_device(
            f"5:0:0:{lun}",
            vendor="LIO-ORG",
            model=f"block{lun}",
            pg83=page83(naa(digits)),
            block=block,
            sg=f"sg{lun + 1}",
            links=[f"wwn-0x{digits}", f"scsi-3{digits}"],
        )
    san = San(base)
    san.store.write_text(STORE)
    return san


def resolve(san: San, xml: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = san.base / "db1.xml"
    path.write_text(xml)
    out = san.base / "db1.resolved.xml"
    assert cli.main(["resolve", str(path), "-o", str(out), *san.args]) == 0, capsys.readouterr()
    return out.read_text()


def verify(san: San, xml: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    path = san.base / "check.xml"
    path.write_text(xml)
    capsys.readouterr()
    rc = cli.main(["verify", str(path), *san.args])
    return rc, capsys.readouterr().out.splitlines()


def prepare(san: San, xml: str) -> tuple[int, list[str], list[SimKernel]]:
    kernels: list[SimKernel] = []

    def kernel(root: str) -> SimKernel:
        kernels.append(SimKernel(Path(root), {NIC1: "e1000e", NIC2: "igb"}))
        return kernels[-1]

    stderr = io.StringIO()
    rc = hook.main(
        ["db1", "prepare", "begin", "-"],
        io.BytesIO(xml.encode()),
        stdout=io.BytesIO(),
        stderr=stderr,
        environ={"HOSTDEV_RESOLVER_CONFIG": str(san.hook_config())},
        writer_factory=kernel,
    )
    refusals = [line for line in stderr.getvalue().splitlines() if ": db1: " not in line]
    return rc, refusals, kernels


@pytest.mark.parametrize("order", _orders(), ids=lambda o: "-".join(n[:6] for n in o))
def test_every_record_kind_verifies_in_any_order(
    order: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    san = san_host(tmp_path)
    resolved = resolve(san, domain(order), capsys)
    assert "hr:map=" not in resolved and "hr:wwn=" not in resolved
    assert resolved.count("<hr:") == 1 + len(REFERENCES)  # hr:resolution + one per device

    rc, out = verify(san, resolved, capsys)
    assert rc == 0, out
    assert len(out) == len(REFERENCES) and all(line.startswith("ok: ") for line in out), out

    rc, refusals, kernels = prepare(san, resolved)
    assert (rc, refusals) == (0, [])
    # nic2 is managed='no': the hook binds it (and nothing else) to vfio-pci.
    assert [w.value for k in kernels for w in k.writes if "drivers_probe" in w.path] == [NIC2]


def _drop(xml: str, ref: str) -> str:
    """The resolved domain without the element that carried reference `ref`."""
    elements = re.findall(
        r"    <(?:disk|hostdev)[^>]*>(?:(?!    </(?:disk|hostdev)>).)*?    </(?:disk|hostdev)>\n"
        r"|    <hostdev[^>]*/>\n",
        xml,
        flags=re.S,
    )
    needle = {
        "nic1": "bus='0x03'",
        "nic2": "bus='0x04'",
        "yubikey": "<vendor id='0x1050'/>",
        "data": f"wwn-0x{LUNS['sdb']}",
        "tape": "<address bus='0' target='0' unit='1'/>",
        WWN_DISK: f"wwn-0x{LUNS['sdd']}",
        WWN_HOSTDEV: "<address bus='0' target='0' unit='3'/>",
    }[ref]
    (element,) = [e for e in elements if needle in e]
    return xml.replace(element, "")


@pytest.mark.parametrize("ref", list(REFERENCES))
def test_a_record_without_its_element_is_that_records_problem(
    ref: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    san = san_host(tmp_path)
    order = [*OTHERS, *REFERENCES]
    random.Random(ref).shuffle(order)
    resolved = resolve(san, domain(order), capsys)
    broken = _drop(resolved, ref)

    rc, out = verify(san, broken, capsys)
    assert rc == 1
    problems = [line for line in out if not line.startswith("ok: ")]
    assert len(out) == len(REFERENCES) and len(problems) == 1, out
    assert problems[0].startswith("STALE: ") and "no longer has" in problems[0]
    label = ref if not ref.startswith("0x") else ref[2:]
    assert label in problems[0].replace("naa.", "").replace("0x", "")

    rc, refusals, kernels = prepare(san, broken)
    assert rc == 1 and len(refusals) == 1 and "no longer has" in refusals[0]
    assert kernels == []


# -- hr:wwn names its LUN itself: no store needed -----------------------------------------

WWN_ONLY = [*OTHERS, WWN_DISK, WWN_HOSTDEV]


def _hook(san: San, op: str, xml: str) -> tuple[int, str, str]:
    stdout, stderr = io.BytesIO(), io.StringIO()
    rc = hook.main(
        ["db1", op, "begin", "-"],
        io.BytesIO(xml.encode()),
        stdout=stdout,
        stderr=stderr,
        environ={"HOSTDEV_RESOLVER_CONFIG": str(san.hook_config())},
    )
    return rc, stdout.getvalue().decode(), stderr.getvalue()


def test_a_domain_with_only_hr_wwn_needs_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    san = san_host(tmp_path)
    san.store.unlink()  # a SAN-only host: nobody ever ran 'map add'
    resolved = resolve(san, domain(WWN_ONLY), capsys)
    assert f"wwn-0x{LUNS['sdd']}" in resolved and "<adapter name='scsi_host5'/>" in resolved

    rc, out = verify(san, resolved, capsys)
    assert rc == 0 and len(out) == 2 and all(line.startswith("ok: ") for line in out), out

    (san.base / "v.xml").write_text(domain(WWN_ONLY))
    assert cli.main(["validate", str(san.base / "v.xml"), *san.args]) == 0
    assert "mapping store" not in capsys.readouterr().err

    rc, refusals, _ = prepare(san, resolved)
    assert (rc, refusals) == (0, [])
    rc, stdout, stderr = _hook(san, "restore", resolved)
    assert rc == 0 and stdout == "", stderr  # re-resolved for this node: unchanged


def test_a_missing_store_is_still_an_error_where_a_mapping_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    san = san_host(tmp_path)
    mixed = [*WWN_ONLY, "data"]
    resolved = resolve(san, domain(mixed), capsys)
    san.store.unlink()
    unresolved = san.base / "db1.xml"
    unresolved.write_text(domain(mixed))

    assert cli.main(["resolve", str(unresolved), *san.args]) == 2
    assert "mapping store not found" in capsys.readouterr().err
    assert cli.main(["validate", str(unresolved), *san.args]) == 2
    assert "mapping store not found" in capsys.readouterr().err  # validate's problems: stderr
    # A resolved domain no longer has hr:map: its record names the mapping.
    (san.base / "r.xml").write_text(resolved)
    assert cli.main(["verify", str(san.base / "r.xml"), *san.args]) == 2
    assert "mapping store not found" in capsys.readouterr().err
    rc, refusals, _ = prepare(san, resolved)
    assert rc != 0 and len(refusals) == 1 and "mapping store not found" in refusals[0]


def test_hostdev_virsh_resolves_hr_wwn_without_a_store(tmp_path: Path) -> None:
    from hostdev_resolver.doors.wrapper import Session, resolve_for_node

    san = san_host(tmp_path)
    san.store.unlink()
    ours: dict[str, str | bool] = {"--store": str(san.store), "--node": NODE}
    ours["--sysfs"] = str(san.sysfs)
    session = Session(None, "test:///default", ours, True)
    xml = domain([*OTHERS, WWN_HOSTDEV]).encode()
    out = resolve_for_node(xml, "db1.xml", session).decode()
    assert "<adapter name='scsi_host5'/>" in out and "hr:wwn=" not in out


def test_reconnect_checks_luns_against_the_hosts_scsi_view(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A running SAN guest's reconnect logs ok for its LUNs, not 'no SCSI inventory'."""
    san = san_host(tmp_path)
    resolved = resolve(san, domain([*OTHERS, *REFERENCES]), capsys)
    rc, stdout, stderr = _hook(san, "reconnect", resolved)
    assert (rc, stdout, stderr) == (0, "", "")  # reconnect logs; libvirt shows no stderr
    lines = san.log.read_text().splitlines()
    assert len(lines) == len(REFERENCES) and all(": reconnect begin: " in line for line in lines)
    assert not any("SCSI inventory" in line for line in lines), lines
    luns = [line for line in lines if "/dev/disk/by-id/" in line or ": 5:0:0:" in line]
    assert len(luns) == 4 and all(line.endswith(" ok") for line in luns), lines


def test_a_scsi_hostdev_position_means_what_it_means_to_libvirt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """libvirt reads bus/target/unit with strtoul base 0: unit='0x1' is the recorded unit 1."""
    san = san_host(tmp_path)
    resolved = resolve(san, domain([*OTHERS, "tape"]), capsys)
    hex_unit = resolved.replace(
        "<address bus='0' target='0' unit='1'/>", "<address bus='0' target='0x0' unit='0x1'/>"
    )
    assert hex_unit != resolved
    rc, out = verify(san, hex_unit, capsys)
    assert (rc, len(out)) == (0, 1) and out[0].startswith("ok: tape"), out
    rc, out = verify(san, resolved.replace("unit='1'", "unit='2'"), capsys)
    assert rc == 1 and out[0].startswith("STALE: "), out
