"""Cluster mode's costs (issue 15), as ratios measured in one run:

- the hook's `prepare begin` reading an agent's cache of 10,000 mappings across 100
  nodes, against a cache of 50 mappings (target <= 1.2x): the agent writes this
  node's view next to the cache, so the hook reads a hundred mappings, not 10,000;
- `map add` against a local etcd, against `map add` on a file store (target <= 2x).

Both caches are written by the real agent (`agent --once`) from a real etcd started on
loopback ports (tests/support/etcd.py). Whole-process runs, interleaved, medians.
Exits non-zero when a target is missed. Run standalone or through `make bench`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.hook.fixtures import domain_xml, gpu_host, make_host, mapped  # noqa: E402
from tests.support.etcd import EtcdCluster  # noqa: E402
from timing import Target  # noqa: E402

from hostdev_resolver.core.resolution import resolve_domain  # noqa: E402
from hostdev_resolver.host.storeread import load_store  # noqa: E402
from hostdev_resolver.host.sysfs import SysfsInventory  # noqa: E402
from hostdev_resolver.xml.xmldoc import parse_bytes  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
HOOK = REPO / "hooks" / "qemu"
CLI = [sys.executable, "-m", "hostdev_resolver.doors.cli.main"]
NS = "http://hostdev-resolver.org/xmlns/store/1"


def _store(mappings: int, nodes: int, base: str) -> str:
    """`mappings` PCI mappings spread over `nodes` nodes; hv1 holds the fixture's own
    four (gpu0, gpu0-audio, gpu0-usb, nvme0) among them."""
    own = load_store(base)
    lines = [f"<mappings xmlns='{NS}'>"]
    text = Path(base).read_text()
    body = text[text.index(">") + 1 : text.rindex("</mappings>")].strip("\n")
    lines.append(body)
    for i in range(mappings - len(own.mappings)):
        node = f"hv{1 + i % nodes}"
        lines.append(
            f"  <pci name='dev{i}'><node name='{node}' address='0000:{1 + i % 200:02x}:00.0' "
            f"vendor='8086' device='1533' subsystem-vendor='8086' subsystem-device='0000' "
            f"class='020000' iommu-group='{i % 500}'/></pci>"
        )
    lines.append("</mappings>\n")
    return "\n".join(lines)


def _run(cmd: list[str], env: dict[str, str], stdin: bytes = b"") -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:6])}… failed: {proc.stderr.decode().strip()}")
    return elapsed


def main() -> list[Target]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO / "src")
    with tempfile.TemporaryDirectory(prefix="bench-cluster.") as tmp:
        base = Path(tmp)
        # 10,000 mappings in one import: above etcd's default transaction limits.
        cluster = EtcdCluster(
            base / "etcd", extra=("--max-txn-ops", "20000", "--max-request-bytes", "33554432")
        ).start()
        try:
            return _bench(base, cluster, env)
        finally:
            cluster.stop()


def _bench(base: Path, cluster: EtcdCluster, env: dict[str, str]) -> list[Target]:
    host = make_host(base / "host", gpu_host())
    xml = domain_xml("bench", mapped("nvme0", managed="yes"))
    doc = parse_bytes(xml.encode(), "bench.xml")
    resolved = resolve_domain(doc, load_store(str(host.store)), SysfsInventory(host.root), "hv1")
    cases: dict[str, tuple[list[str], dict[str, str], bytes]] = {}
    for label, mappings, nodes in (("cache-50", 50, 5), ("cache-10000", 10_000, 100)):
        source = base / f"{label}.xml"
        source.write_text(_store(mappings, nodes, str(host.store)))
        url = cluster.url(f"/{label}")
        _run([*CLI, "store", "import", str(source), "--store", url], env)
        cache = base / f"{label}.cache.xml"
        _run(
            [
                *CLI,
                "agent",
                "--once",
                "--store",
                url,
                "--cache",
                str(cache),
                "--node",
                "hv1",
                "--sysfs",
                str(host.root),
            ],
            env,
        )
        config = base / f"{label}.toml"
        config.write_text(
            f"store = '{cache}'\nnode = 'hv1'\nsysfs = '{host.root}'\n"
            f"state_dir = '{base / 'state'}'\nlog_file = '{base / 'hook.log'}'\n"
            "syslog = false\n"
        )
        cases[label] = (
            [sys.executable, str(HOOK), "bench", "prepare", "begin", "-"],
            {**env, "HOSTDEV_RESOLVER_CONFIG": str(config)},
            resolved.data,
        )
    file_store = base / "file-store.xml"
    file_store.write_text(host.store.read_text())
    etcd_url = cluster.url("/map-add")
    _run([*CLI, "store", "import", str(host.store), "--store", etcd_url], env)
    adds = {"map-add-file": str(file_store), "map-add-etcd": etcd_url}

    def add_cmd(store: str, i: int) -> list[str]:
        return [
            *CLI,
            "map",
            "add",
            "pci",
            f"nic{i}",
            "--node",
            "hv1",
            "--address",
            "0000:43:00.0",
            "--store",
            store,
            "--sysfs",
            str(host.root),
        ]

    for cmd, case_env, stdin in cases.values():  # warm caches, write bytecode
        _run(cmd, case_env, stdin)
    for store in adds.values():
        _run(add_cmd(store, -1), env)
    samples: dict[str, list[float]] = {name: [] for name in [*cases, *adds]}
    for i in range(RUNS):  # interleaved: load changes hit every case alike
        for name, (cmd, case_env, stdin) in cases.items():
            samples[name].append(_run(cmd, case_env, stdin))
        for name, store in adds.items():
            samples[name].append(_run(add_cmd(store, i), env))
    med = {name: statistics.median(v) for name, v in samples.items()}
    print(f"cluster bench ({RUNS} interleaved runs each, median wall time, {sys.executable})")
    for name, value in med.items():
        print(f"  {name:<14} {value * 1000:7.1f} ms")
    targets = [
        Target("hook, cache of 10,000 mappings / of 50", med["cache-10000"] / med["cache-50"], 1.2),
        Target("map add, local etcd / file store", med["map-add-etcd"] / med["map-add-file"], 2.0),
    ]
    for target in targets:
        print(target.line())
    return targets


if __name__ == "__main__":
    sys.exit(0 if all(t.ok for t in main()) else 1)
