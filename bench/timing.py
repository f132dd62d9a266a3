"""Shared by the benchmarks: whole-process timing, interleaved, reported as medians.

Every figure is a median over runs that take turns (case A, B, C, A, B, C, ...), so a
burst of load from the other users of this machine hits every case alike; best-of
figures are never reported. Ratios are to a baseline measured in the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Case:
    argv: list[str]
    stdin: bytes = b""
    env: dict[str, str] | None = None
    ok_codes: tuple[int, ...] = (0,)
    cwd: str | None = None


@dataclass
class Target:
    label: str
    ratio: float
    limit: float

    @property
    def ok(self) -> bool:
        return self.ratio <= self.limit

    def line(self) -> str:
        verdict = "ok" if self.ok else "OVER TARGET"
        return f"  {self.label:<62} {self.ratio:6.2f}x  (target <= {self.limit}x) {verdict}"


@dataclass
class Results:
    medians: dict[str, float] = field(default_factory=dict)
    runs: int = 0


def _private_verdict_cache() -> None:
    """Stores the benchmarks make and load (in-process or in children) put their schema
    verdicts in a cache of this run, never root's /var/cache/hostdev-resolver."""
    import atexit
    import shutil
    import tempfile

    if "HOSTDEV_RESOLVER_CACHE" in os.environ:
        return
    directory = tempfile.mkdtemp(prefix="bench-verdicts.")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ["HOSTDEV_RESOLVER_CACHE"] = os.path.join(directory, "c")


_private_verdict_cache()


def child_env() -> dict[str, str]:
    """As under libvirtd or a shell: bytecode caches are used (and written on the warm-up)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(name: str, case: Case) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        case.argv,
        input=case.stdin,
        env=case.env,
        cwd=case.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in case.ok_codes:
        raise SystemExit(
            f"bench: {name} ({' '.join(case.argv[:4])} ...) exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip()[:500]}"
        )
    return elapsed


def interleaved(cases: dict[str, Case], runs: int, warmup: int = 1) -> Results:
    for _ in range(warmup):
        for name, case in cases.items():
            run_once(name, case)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            samples[name].append(run_once(name, case))
    return Results({n: statistics.median(v) for n, v in samples.items()}, runs)


def print_medians(title: str, results: Results, names: Sequence[str] | None = None) -> None:
    print(f"{title} ({results.runs} interleaved runs each, median wall time)")
    for name in names or results.medians:
        print(f"  {name:<28} {results.medians[name] * 1000:9.1f} ms")
