"""A real etcd for the cluster-store tests (tests/support/etcd.py), and helpers."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd import EtcdCluster

REPO = Path(__file__).resolve().parents[2]
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One member shared by a module; each test takes its own PREFIX (see `url`)."""
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def url(etcd: EtcdCluster) -> str:
    return etcd.url(f"/t{next(_prefixes)}")


def cli(*args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    """`hostdev-resolver ARGS` as its own process (the console script's entry point)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "hostdev_resolver.doors.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc
