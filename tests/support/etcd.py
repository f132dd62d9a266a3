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
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


class Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.ca, ca_key = base / "ca.pem", base / "ca.key"
        self.server_cert, self.server_key = base / "server.pem", base / "server.key"
        self.client_cert, self.client_key = base / "client.pem", base / "client.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=test-ca", "-keyout", str(ca_key), "-out", str(self.ca)],
            check=True, capture_output=True,
        )  # fmt: skip
        ext = base / "san.cnf"
        ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        for cert, key, cn in (
            (self.server_cert, self.server_key, "127.0.0.1"),
            (self.client_cert, self.client_key, "client"),
        ):
            csr = base / f"{cn}.csr"
            subprocess.run(
                ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", str(key), "-out", str(csr)],
                check=True, capture_output=True,
            )  # fmt: skip
            subprocess.run(
                ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.ca),
                 "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
                 "-extfile", str(ext), "-out", str(cert)],
                check=True, capture_output=True,
            )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Member:
    def __init__(
        self, name: str, base: Path, extra: tuple[str, ...] = (), tls: Pki | None = None
    ) -> None:
        self.name = name
        self.extra = extra
        self.tls = tls
        self.scheme = "https" if tls else "http"
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
                    f"{self.scheme}://{self.endpoint}",
                    "--advertise-client-urls",
                    f"{self.scheme}://{self.endpoint}",
                    *self.tls_args(),
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

    def tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        return [
            "--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key),
            "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth",
        ]  # fmt: skip

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
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        try:
            with urllib.request.urlopen(
                f"{self.scheme}://{self.endpoint}/health", timeout=1, context=context
            ) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False


class EtcdCluster:
    """`size` members on loopback; `url(prefix)` is the store URL naming all of them."""

    def __init__(
        self, base: Path, size: int = 1, extra: tuple[str, ...] = (), tls: Pki | None = None
    ) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.members = [Member(f"m{i}", base, extra, tls) for i in range(size)]
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
        scheme = "etcds" if self.tls else "etcd"
        return f"{scheme}://{','.join(m.endpoint for m in self.members)}{prefix}"

    def stop(self) -> None:
        for m in self.members:
            with contextlib.suppress(OSError):
                m.stop()
