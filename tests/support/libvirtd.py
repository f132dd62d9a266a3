"""The real libvirtd the end-to-end tests run against (SPEC §9).

One daemon per machine serves qemu:///system, so every test that needs it goes
through `ensure_daemon()`: it configures qemu.conf, installs the test hook
*before* the daemon starts (libvirt reads the hook list at start-up), starts
virtlogd then libvirtd by PID file, and reuses a daemon it started earlier in
the same run. `stop_daemon()` stops what it started, by PID.

The installed hook is a small shell wrapper that points the repository's
hooks/qemu at a test configuration (TEST_HOOK_CONFIG): libvirtd passes only a
scrubbed environment to hooks, so the config path cannot come from the test
process. Tests rewrite that TOML file to aim the hook at their own store and
host tree; the hook reads it on every call.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
URI = "qemu:///system"
STATE = Path("/run/hostdev-resolver-test")
TEST_HOOK_CONFIG = STATE / "hook.toml"
HOOKS_DIR = Path("/etc/libvirt/hooks")
HOOK_PATH = HOOKS_DIR / "qemu.d" / "50-hostdev-resolver"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
VIRTLOGD_PID = STATE / "virtlogd.pid"
LIBVIRTD_PID = STATE / "libvirtd.pid"


# Whether this process started the daemon: only then does stop_daemon() stop it, so a
# test run never takes the daemon away from another run that was using it first.
_started_here = False


class DaemonUnavailable(Exception):
    """The daemon packages are not installed, so the real-daemon tests cannot run."""


def _pid_alive(pidfile: Path) -> bool:
    """Is the daemon of this PID file running? A stale file (left by a machine reboot or a
    killed session) may name a PID now used by another program: check its name too."""
    try:
        pid = int(pidfile.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return False
    return comm == pidfile.stem


def _configure_qemu_conf() -> None:
    # Without user/group root every define takes ~56 s on these machines (SPEC §9).
    text = QEMU_CONF.read_text() if QEMU_CONF.exists() else ""
    wanted = []
    if 'user = "root"' not in text:
        wanted.append('user = "root"')
    if 'group = "root"' not in text:
        wanted.append('group = "root"')
    if wanted:
        QEMU_CONF.write_text(
            text + "\n# added by hostdev-resolver tests\n" + "\n".join(wanted) + "\n"
        )


def _install_test_hook() -> None:
    HOOK_PATH.parent.mkdir(parents=True, exist_ok=True)
    script = (
        "#!/bin/sh\n"
        "# hostdev-resolver test hook: the repository's hook with the test config\n"
        f'HOSTDEV_RESOLVER_CONFIG={TEST_HOOK_CONFIG} exec {sys.executable} {REPO / "hooks" / "qemu"} "$@"\n'
    )
    if not HOOK_PATH.exists() or HOOK_PATH.read_text() != script:
        tmp = HOOK_PATH.with_suffix(".tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(HOOK_PATH)


def virsh(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", URI, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ensure_daemon() -> str:
    """Start (or reuse) the real libvirtd; returns its URI."""
    if shutil.which("libvirtd") is None or shutil.which("virtlogd") is None:
        raise DaemonUnavailable(
            "libvirt-daemon-system is not installed (run scripts/bootstrap as root)"
        )
    if os.geteuid() != 0:
        raise DaemonUnavailable("the real-daemon tests need root")
    STATE.mkdir(parents=True, exist_ok=True)
    if not TEST_HOOK_CONFIG.exists():
        TEST_HOOK_CONFIG.write_text("")
    _install_test_hook()
    if _pid_alive(LIBVIRTD_PID):
        return URI
    _configure_qemu_conf()
    if not _pid_alive(VIRTLOGD_PID):
        subprocess.run(["virtlogd", "-d", "--pid-file", str(VIRTLOGD_PID)], check=True)
    subprocess.run(["libvirtd", "-d", "--pid-file", str(LIBVIRTD_PID)], check=True)
    global _started_here
    _started_here = True
    deadline = time.monotonic() + 120
    last = ""
    while time.monotonic() < deadline:
        # The first call takes ~12 s while the daemon probes QEMU capabilities.
        proc = virsh("version", check=False)
        if proc.returncode == 0:
            return URI
        last = proc.stderr.strip()
        time.sleep(0.5)
    raise RuntimeError(f"libvirtd did not answer on {URI} within 120 s: {last}")


def stop_daemon() -> None:
    """Stop the daemons by PID, if this process started them."""
    if not _started_here:
        return
    for pidfile in (LIBVIRTD_PID, VIRTLOGD_PID):
        if not _pid_alive(pidfile):
            continue
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


def write_hook_config(text: str) -> None:
    """Point the installed test hook at a store / host tree (read on every hook call)."""
    STATE.mkdir(parents=True, exist_ok=True)
    tmp = TEST_HOOK_CONFIG.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(TEST_HOOK_CONFIG)


def undefine_all(prefix: str) -> None:
    """Destroy and undefine every domain whose name starts with prefix."""
    proc = virsh("list", "--all", "--name", check=False)
    for name in proc.stdout.split():
        if name.startswith(prefix):
            virsh("destroy", name, check=False)
            virsh("undefine", name, "--nvram", check=False)
