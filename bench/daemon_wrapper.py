"""`hostdev-virsh define` against `virsh define` of the already-resolved file (target <= 2x).

Not part of `make bench` (which times the test driver, no daemon): run it alone,
`.venv/bin/python bench/daemon_wrapper.py [RUNS]`. Needs the real libvirtd
(started or reused through tests/support/libvirtd.py, as root). Both sides are timed
as whole processes, as a user would run them; the median of RUNS is compared.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import timing  # noqa: E402,F401  (its import gives this run a private store-verdict cache)
from tests.support import libvirtd  # noqa: E402
from tests.support.hosttree import HostSpec, HostTree, PciSpec  # noqa: E402

HR = "http://hostdev-resolver.org/xmlns/domain/1"
NODE = "benchnode"
BIN = Path(sys.executable).parent


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.strip()}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    runs = int(args[0]) if args else 15
    uri = libvirtd.ensure_daemon()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        HostTree.build(
            root / "sys",
            HostSpec(
                pci=[
                    PciSpec("0000:05:00.0", "8086", "1533", "8086", "0001", "020000", iommu_group=5)
                ]
            ),
        )
        store = root / "mappings.xml"
        store.write_text(
            "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'><pci name='nic'>"
            f"<node name='{NODE}' address='0000:05:00.0' vendor='8086' device='1533' "
            "subsystem-vendor='8086' subsystem-device='0001' class='020000' iommu-group='5'/>"
            "</pci></mappings>\n"
        )
        domain = root / "bench.xml"
        domain.write_text(
            f"<domain type='qemu' xmlns:hr='{HR}'><name>wrap-bench</name><uuid>6f2c1a52-0b7e-4c51-9f0e-1d2a3b4c5d6e</uuid>"
            "<memory unit='KiB'>65536</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
            "<hostdev mode='subsystem' type='pci' managed='yes' hr:map='nic'/>"
            "</devices></domain>\n"
        )
        ours = ["--store", str(store), "--node", NODE, "--sysfs", str(root / "sys")]
        resolved = root / "resolved.xml"
        subprocess.run(
            [str(BIN / "hostdev-resolver"), "resolve", str(domain), "-o", str(resolved), *ours],
            check=True,
        )
        wrapper = [str(BIN / "hostdev-virsh"), "-c", uri, "define", str(domain), *ours]
        plain = ["virsh", "-c", uri, "define", str(resolved)]
        try:
            _time(plain)  # warm the daemon's caches for both sides
            wrapped_times, plain_times = [], []
            for _ in range(runs):
                wrapped_times.append(_time(wrapper))
                plain_times.append(_time(plain))
        finally:
            libvirtd.undefine_all("wrap-bench")
    w = statistics.median(wrapped_times)
    p = statistics.median(plain_times)
    print(f"hostdev-virsh define: {w * 1000:.1f} ms (median of {runs})")
    print(f"virsh define (resolved file): {p * 1000:.1f} ms")
    print(f"ratio: {w / p:.2f}x (target <= 2x)")
    return 0 if w / p <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
