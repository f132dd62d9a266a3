"""How long libvirt waits for the hook, as ratios to a bare interpreter start (issue 3).

Measures, in one run and for each interpreter (the checkout's venv, and /usr/bin/python3,
which the Debian package's hook runs under), the median wall time of:
- `python3 -c pass` (the floor: any Python hook costs at least this);
- hooks/qemu `prepare begin` for a domain with 8 mapped PCI devices, on a host tree of
  16 and of 2,048 PCI functions (the hook must read only the devices it checks);
- hooks/qemu `prepare begin` for a domain without `hr` metadata.
Targets: mapped <= 2.5x bare, 2048/16 <= 1.1x, no metadata <= 1.5x bare.

The children run without PYTHONDONTWRITEBYTECODE, as under libvirtd (which runs hooks
with a scrubbed environment), so they use cached bytecode like the real hook does.
Run standalone (`python bench/bench_hook.py`) or through `make bench`.
"""

from __future__ import annotations

import os
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
from hostdev_resolver.xml.xmldoc import parse_bytes  # noqa: E402

HOOK = REPO / "hooks" / "qemu"
MAPPED = 8
RUNS = int(os.environ.get("BENCH_RUNS", "40"))
SYSTEM_PYTHON = "/usr/bin/python3"
NS = "http://hostdev-resolver.org/xmlns/domain/1"


def _domain(name: str, mapped: int) -> bytes:
    hostdevs = "\n".join(
        f"    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu{i}'/>"
        for i in range(mapped)
    )
    return (
        f"<domain type='kvm' xmlns:hr='{NS}'>\n  <name>{name}</name>\n  <memory>1048576</memory>\n"
        f"  <os><type arch='x86_64'>hvm</type></os>\n  <devices>\n{hostdevs}\n"
        "    <disk type='file' device='disk'><source file='/var/lib/x.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk>\n  </devices>\n</domain>\n"
    ).encode()


def _setup(base: Path, functions: int) -> tuple[Path, bytes]:
    """A host tree, store and config; returns the config and the resolved domain."""
    spec = host_spec(functions, MAPPED)
    root = base / f"sys{functions}"
    HostTree.build(root, spec)
    store = base / f"store{functions}.xml"
    store.write_text(store_xml(spec, MAPPED, ("bench",)))
    config = base / f"hook{functions}.toml"
    config.write_text(
        f"store = '{store}'\nnode = 'bench'\nsysfs = '{root}'\nstate_dir = '{base / 'state'}'\n"
        # With no /dev/log (as here) the hook logs to this file: part of what is measured.
        f"log_file = '{base / 'hook.log'}'\n"
    )
    doc = parse_bytes(_domain("bench", MAPPED), "bench.xml")
    resolved = resolve_domain(doc, load_store(str(store)), SysfsInventory(root), "bench")
    return config, resolved.data


def _cases(python: str, base: Path, configs: dict[int, tuple[Path, bytes]]) -> dict[str, Case]:
    env = child_env()
    cases = {"bare": Case([python, "-c", "pass"], env=env)}
    for functions, (config, xml) in configs.items():
        cases[f"mapped-{functions}"] = Case(
            [python, str(HOOK), "bench", "prepare", "begin", "-"],
            xml,
            {**env, "HOSTDEV_RESOLVER_CONFIG": str(config)},
        )
    plain = _domain("plain", 0).replace(f" xmlns:hr='{NS}'".encode(), b"")
    cases["no-metadata"] = Case(
        [python, str(HOOK), "plain", "prepare", "begin", "-"],
        plain,
        {**env, "HOSTDEV_RESOLVER_CONFIG": str(base / "missing.toml")},
    )
    return cases


def interpreters() -> list[str]:
    """The checkout's venv interpreter, and /usr/bin/python3: the one the Debian
    package's installed hook runs under."""
    found = [sys.executable]
    if os.path.exists(SYSTEM_PYTHON) and os.path.realpath(SYSTEM_PYTHON) != os.path.realpath(
        sys.executable
    ):
        found.append(SYSTEM_PYTHON)
    return found


def main() -> list[Target]:
    targets = []
    with tempfile.TemporaryDirectory(prefix="bench-hook.") as tmp:
        base = Path(tmp)
        configs = {functions: _setup(base, functions) for functions in (16, 2048)}
        for python in interpreters():
            res = interleaved(_cases(python, base, configs), RUNS)
            print_medians(f"hook ({python})", res)
            med = res.medians
            bare = med["bare"]
            targets += [
                Target(f"hook [{python}] prepare, 8 mapped, 16 fn / bare", med["mapped-16"] / bare, 2.5),
                Target(f"hook [{python}] prepare, 8 mapped, 2048 fn / bare", med["mapped-2048"] / bare, 2.5),
                Target(f"hook [{python}] 2048 fn / 16 fn", med["mapped-2048"] / med["mapped-16"], 1.1),
                Target(f"hook [{python}] no metadata / bare", med["no-metadata"] / bare, 1.5),
            ]  # fmt: skip
    for target in targets:
        print(target.line())
    return targets


if __name__ == "__main__":
    sys.exit(0 if all(t.ok for t in main()) else 1)
