"""Whole commands as an administrator runs them, as ratios to a bare interpreter (issue 12).

Each command runs as its own process (the installed console script, XML read and
written), interleaved with `python -c pass` on the interpreter the scripts run under;
medians only. Targets:

- `resolve` of a domain with 8 hr:map references            <= 5x bare
- `map check`, 40 mappings on 3 nodes (snapshot sources)      <= 6x bare
- `inventory` of a 2,048-function host                         <= 8x bare
- `allocate` of a 64-device q35 guest                          <= 4x bare
- `validate` of N domain files (N = 400, 1,000)                <= 2x `xmllint --noout
  --relaxng /usr/share/libvirt/schemas/domain.rng` over the same N documents as they
  are after resolution (the RELAX NG pass validate itself must make: its floor)
- `hostdev-virsh define` <= 2x `virsh define` of the resolved file, both through the
  libvirt test driver (test:///default: no daemon; virsh's own cost only)

The store's schema verdict cache (storeschema) lives in a directory of this run; the
warm-up run fills it, as an administrator's first command after an edit does.
`python bench/bench_commands.py` runs it alone; BENCH_RUNS sets the run count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src"), str(REPO / "bench")]

from hostspec import host_spec, store_xml  # noqa: E402
from tests.support.hosttree import HostTree  # noqa: E402
from timing import Case, Target, child_env, interleaved, print_medians  # noqa: E402

from hostdev_resolver.core.resolution import resolve_domain  # noqa: E402
from hostdev_resolver.host.storeread import load_store  # noqa: E402
from hostdev_resolver.host.sysfs import SysfsInventory  # noqa: E402
from hostdev_resolver.xml.store import Store  # noqa: E402
from hostdev_resolver.xml.xmldoc import parse_bytes  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "30"))
VALIDATE_RUNS = int(os.environ.get("BENCH_VALIDATE_RUNS", "7"))
HR = "http://hostdev-resolver.org/xmlns/domain/1"
BIN = Path(sys.executable).parent
RNG = "/usr/share/libvirt/schemas/domain.rng"
MAPPED = 64  # functions with a serial that mappings name


def _domain(name: str, maps: list[int], dtype: str = "kvm", revision: int = 0) -> str:
    hostdevs = "\n".join(
        f"    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu{i}'/>" for i in maps
    )
    return (
        f"<domain type='{dtype}' xmlns:hr='{HR}'>\n  <name>{name}</name>\n"
        f"  <title>{name} revision {revision}</title>\n"
        f"  <memory unit='KiB'>{1048576 + 1024 * revision}</memory>\n  <vcpu>2</vcpu>\n"
        "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n  <devices>\n"
        "    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/x.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk>\n"
        "    <interface type='network'><source network='default'/><model type='virtio'/></interface>\n"
        f"{hostdevs}\n  </devices>\n</domain>\n"
    )


def _guest64() -> str:
    """A q35 guest with 64 PCI devices: NICs, disks and host devices."""
    devices = []
    for i in range(64):
        kind = i % 4
        if kind == 0:
            devices.append("<interface type='user'><model type='virtio'/></interface>")
        elif kind == 1:
            dev = f"vd{chr(97 + i // 26 % 26)}{chr(97 + i % 26)}"
            devices.append(
                f"<disk type='file' device='disk'><source file='/var/lib/x{i}.img'/>"
                f"<target dev='{dev}' bus='virtio'/></disk>"
            )
        elif kind == 2:
            devices.append(
                "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
                f"<address domain='0x0000' bus='{0x40 + i // 8:#04x}' slot='0x00' function='{i % 8:#x}'/>"
                "</source></hostdev>"
            )
        else:
            devices.append("<interface type='user'><model type='e1000e'/></interface>")
    body = "\n    ".join(devices)
    return (
        "<domain type='kvm'>\n  <name>alloc64</name>\n  <memory unit='KiB'>1048576</memory>\n"
        "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
        f"  <devices>\n    {body}\n  </devices>\n</domain>\n"
    )


def _resolved(
    data: bytes, source: str, store: Store, inventory: SysfsInventory, node: str
) -> bytes:
    """The document as `resolve` writes it (what xmllint is given as the baseline)."""
    return resolve_domain(parse_bytes(data, source), store, inventory, node).data


def _commands(base: Path, env: dict[str, str]) -> list[Target]:
    cli = str(BIN / "hostdev-resolver")
    root = base / "sys2048"
    spec = host_spec(2048, MAPPED)
    HostTree.build(root, spec)
    store8 = base / "store8.xml"
    store8.write_text(store_xml(spec, 8, ("bench",)))
    dom8 = base / "dom8.xml"
    dom8.write_text(_domain("bench8", list(range(8))))

    # map check: 40 mappings with an entry on each of 3 nodes, each node a snapshot.
    nodes = ("hv1", "hv2", "hv3")
    store40 = base / "store40.xml"
    store40.write_text(store_xml(spec, 40, nodes))
    small = base / "sys128"
    HostTree.build(small, host_spec(128, MAPPED))
    snaps = []
    for node in nodes:
        snap = base / f"{node}.json"
        with snap.open("wb") as out:
            subprocess.run(
                [cli, "inventory", "--format", "json", "--sysfs", str(small), "--node", node],
                stdout=out,
                check=True,
                env=env,
            )
        snaps += ["--host", str(snap)]

    guest = base / "alloc64.xml"
    guest.write_text(_guest64())

    cases = {
        "bare": Case([sys.executable, "-c", "pass"], env=env),
        "resolve (8 refs)": Case(
            [
                cli,
                "resolve",
                str(dom8),
                "-o",
                str(base / "out8.xml"),
                "--store",
                str(store8),
                "--node",
                "bench",
                "--sysfs",
                str(root),
            ],
            env=env,
        ),
        "map check (40 x 3 nodes)": Case(
            [cli, "map", "check", "--store", str(store40), *snaps], env=env
        ),
        "inventory (2048 functions)": Case(
            [cli, "inventory", "--sysfs", str(root), "--node", "bench"], env=env
        ),
        "allocate (64 devices)": Case(
            [cli, "allocate", str(guest), "-o", str(base / "alloc-out.xml")], env=env
        ),
    }
    res = interleaved(cases, RUNS)
    print_medians(f"commands ({sys.executable})", res)
    bare = res.medians["bare"]
    return [
        Target("resolve, 8 hr:map references / bare", res.medians["resolve (8 refs)"] / bare, 5),
        Target("map check, 40 mappings x 3 nodes / bare", res.medians["map check (40 x 3 nodes)"] / bare, 6),
        Target("inventory, 2048 functions / bare", res.medians["inventory (2048 functions)"] / bare, 8),
        Target("allocate, 64-device q35 guest / bare", res.medians["allocate (64 devices)"] / bare, 4),
    ]  # fmt: skip


def _validate(base: Path, env: dict[str, str]) -> list[Target]:
    if shutil.which("xmllint") is None:
        print("validate: xmllint not installed (apt install libxml2-utils): figure missing")
        return [Target("validate (xmllint missing: no baseline)", float("inf"), 2)]
    cli = str(BIN / "hostdev-resolver")
    root = base / "sys2048"  # built by _commands
    spec = host_spec(2048, MAPPED)
    store = base / "store48.xml"
    store.write_text(store_xml(spec, 48, ("bench",)))
    # A fleet's files: 12 guests, several revisions of each (no two files alike), 4
    # devices per guest (two files of one guest are one claimant: the run is clean).
    files: dict[int, list[str]] = {}
    resolved: dict[int, list[str]] = {}
    loaded, inventory = load_store(str(store)), SysfsInventory(root)
    for n in (400, 1000):
        folder = base / f"v{n}"
        (folder / "in").mkdir(parents=True)
        (folder / "out").mkdir()
        files[n], resolved[n] = [], []
        for i in range(n):
            g = i % 12
            data = _domain(f"guest{g}", [4 * g + k for k in range(4)], revision=i).encode()
            path = folder / "in" / f"d{i:04d}.xml"
            path.write_bytes(data)
            out = folder / "out" / f"d{i:04d}.xml"
            out.write_bytes(_resolved(data, str(path), loaded, inventory, "bench"))
            files[n].append(str(path))
            resolved[n].append(str(out))
    ours = ["--store", str(store), "--node", "bench", "--sysfs", str(root)]
    cases = {}
    for n in (400, 1000):
        cases[f"validate {n}"] = Case([cli, "validate", *files[n], *ours], env=env)
        cases[f"xmllint {n}"] = Case(["xmllint", "--noout", "--relaxng", RNG, *resolved[n]])
    res = interleaved(cases, VALIDATE_RUNS)
    print_medians("validate against xmllint (libxml2's RELAX NG pass, same documents)", res)
    return [
        Target(
            f"validate, {n} files / xmllint --relaxng domain.rng",
            res.medians[f"validate {n}"] / res.medians[f"xmllint {n}"],
            2,
        )
        for n in (400, 1000)
    ]


def _wrapper(base: Path, env: dict[str, str]) -> list[Target]:
    if shutil.which("virsh") is None:
        print("wrapper: virsh not installed: figure missing")
        return [Target("hostdev-virsh define (virsh missing)", float("inf"), 2)]
    spec = host_spec(16, MAPPED)
    root = base / "sys16"
    HostTree.build(root, spec)
    store = base / "store1.xml"
    store.write_text(store_xml(spec, 1, ("bench",)))
    # The test driver accepts only type='test' domains; it keeps nothing between runs.
    domain = base / "wrap.xml"
    domain.write_text(_domain("wrap-bench", [0], dtype="test"))
    resolved = base / "wrap.resolved.xml"
    resolved.write_bytes(
        _resolved(
            domain.read_bytes(), str(domain), load_store(str(store)), SysfsInventory(root), "bench"
        )
    )
    uri = "test:///default"
    ours = ["--store", str(store), "--node", "bench", "--sysfs", str(root)]
    cases = {
        "virsh define": Case(["virsh", "-c", uri, "define", str(resolved)], env=env),
        "hostdev-virsh define": Case(
            [str(BIN / "hostdev-virsh"), "-c", uri, "define", str(domain), *ours], env=env
        ),
    }
    res = interleaved(cases, RUNS)
    print_medians("hostdev-virsh define against virsh define (test:///default)", res)
    return [
        Target(
            "hostdev-virsh define / virsh define (test driver)",
            res.medians["hostdev-virsh define"] / res.medians["virsh define"],
            2,
        )
    ]


def main() -> list[Target]:
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="bench-commands.") as tmp:
        base = Path(tmp)
        env["HOSTDEV_RESOLVER_CACHE"] = str(base / "cache")
        targets = _commands(base, env)
        targets += _validate(base, env)
        targets += _wrapper(base, env)
    for target in targets:
        print(target.line())
    return targets


if __name__ == "__main__":
    sys.exit(0 if all(t.ok for t in main()) else 1)
