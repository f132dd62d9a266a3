"""Real etcd members on loopback for the cluster-store tests (no mocks, no system etcd).

Each member gets free ports and a data directory under the test's tmp_path; it is
started as a child process and stopped by its PID (also when the test fails).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Member:
    def __init__(self, name: str, base: Path, extra: tuple[str, ...] = ()) -> None:
        self.name = name
        self.extra = extra
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data = base / f"{name}.etcd"
        self.log = base / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, state: str = "new") -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    ETCD,
                    "--name",
                    self.name,
                    "--data-dir",
                    str(self.data),
                    "--listen-client-urls",
                    f"http://{self.endpoint}",
                    "--advertise-client-urls",
                    f"http://{self.endpoint}",
                    "--listen-peer-urls",
                    self.peer_url,
                    "--initial-advertise-peer-urls",
                    self.peer_url,
                    "--initial-cluster",
                    initial_cluster,
                    "--initial-cluster-state",
                    state,
                    # Short heartbeats: elections (and quorum loss) show within a second.
                    "--heartbeat-interval",
                    "50",
                    "--election-timeout",
                    "500",
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False


class EtcdCluster:
    """`size` members on loopback; `url(prefix)` is the store URL naming all of them."""

    def __init__(self, base: Path, size: int = 1, extra: tuple[str, ...] = ()) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.members = [Member(f"m{i}", base, extra) for i in range(size)]
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start(self) -> EtcdCluster:
        for m in self.members:
            m.start(self.initial)
        self.wait_healthy(self.members)
        return self

    def wait_healthy(self, members: list[Member], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(m.healthy() for m in members):
                return
            for m in members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited: {m.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("etcd did not become healthy")

    def restart(self, member: Member) -> None:
        member.start(self.initial, "existing")
        self.wait_healthy([member])

    def url(self, prefix: str = "/hr") -> str:
        return f"etcd://{','.join(m.endpoint for m in self.members)}{prefix}"

    def stop(self) -> None:
        for m in self.members:
            with contextlib.suppress(OSError):
                m.stop()
