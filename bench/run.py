"""Runs every benchmark in bench/ (make bench). Each prints ratios against a baseline
measured in the same run, because these machines are shared and noisy, and returns
its targets; the run exits 1 naming every target missed."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    print(
        f"make bench, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores, "
        f"baseline: '{sys.executable} -c pass' (and /usr/bin/python3 for the hook)",
        flush=True,
    )
    missed = []
    for path in sorted(HERE.glob("bench_*.py")):
        print(f"== {path.stem}", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        missed += [t.label for t in module.main() if not t.ok]
        print(flush=True)
    if missed:
        print("make bench: targets missed:", file=sys.stderr)
        for label in missed:
            print(f"  {label}", file=sys.stderr)
        return 1
    print("make bench: every target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
