"""The real libvirtd the end-to-end tests run against (SPEC §9), in a private mount namespace.

A test run must leave the host as it found it: the daemon needs `user = "root"` in
qemu.conf (otherwise every define takes ~56 s) and the test hook installed *before* it
starts (libvirt reads the hook list at start-up), and neither may reach the host's
/etc/libvirt. So `ensure_daemon()` makes a temporary directory and runs, under
`unshare -m --propagation private`, a small holder process (this module's `hold`
entry point) that bind-mounts

    TMP/etc   over /etc/libvirt        the host's *.conf files, copied; qemu.conf edited
                                       there; hooks/qemu.d holds only the test hook
    TMP/run   over /run/libvirt        so the daemon's socket is TMP/run/libvirt-sock
    TMP/lib, TMP/log, TMP/cache  over /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt

and starts virtlogd then libvirtd inside. The host's domain, network, storage and secret
definitions are not copied: an autostarted network or guest must not come up a second
time. Only the daemons live in the namespace; the tests stay outside and connect through
the bind-mounted socket, URI `qemu+unix:///system?socket=TMP/run/libvirt-sock`. Read it
at call time, as `libvirtd.URI` or `libvirtd.uri()`: it exists only once the daemon runs.

The installed hook is a small shell wrapper that points the repository's hooks/qemu at a
test configuration (TMP/state/hook.toml, `TEST_HOOK_CONFIG`): libvirtd passes only a
scrubbed environment to hooks, so the config path cannot come from the test process.
Tests rewrite that TOML file with `write_hook_config()`; the hook reads it on every call.

`stop_daemon()` closes the holder's stdin; the holder then destroys the guests (libvirt
removes their cgroups), stops libvirtd and virtlogd by PID and kills any QEMU left, so
the namespace ends with it. The same happens when pytest is interrupted or killed (the
pipe closes with the process), and `stop_daemon()` also runs at exit and on
SIGTERM/SIGHUP. Afterwards no process may still see the temporary mounts.

Where the kernel refuses `unshare -m`, the daemon runs on the host instead: only if no
libvirtd or virtlogd runs there already (one the tests did not start is never touched),
and /etc/libvirt, as it was before the start, is put back byte for byte (with what
libvirtd itself wrote there taken away) when the daemon stops, at exit and on
SIGTERM/SIGHUP.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from tests.support import treesnapshot

REPO = Path(__file__).resolve().parents[2]
ETC = Path("/etc/libvirt")
HOOK_NAME = "50-hostdev-resolver"
UNSHARE = ("unshare", "-m", "--propagation", "private", "--")
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
# The host directories the namespace replaces, and the TMP subdirectory each one becomes.
MOUNTS = (
    (ETC, "etc"),
    (Path("/run/libvirt"), "run"),
    (Path("/var/lib/libvirt"), "lib"),
    (Path("/var/log/libvirt"), "log"),
    (Path("/var/cache/libvirt"), "cache"),
)
# The daemon's URI and the test hook's config file, once ensure_daemon() has started it.
# Tests read them at call time (libvirtd.URI), never with `from ... import URI`.
URI = ""
TEST_HOOK_CONFIG: Path | None = None


class DaemonUnavailable(Exception):
    """The real-daemon tests cannot run here (packages missing, not root, host daemon busy)."""


@dataclass
class _Restorer:
    """Puts trees (and the directories made for mount points) back exactly as they were."""

    trees: list[tuple[Path, treesnapshot.Snapshot]] = field(default_factory=list)
    made_dirs: list[Path] = field(default_factory=list)

    def save_tree(self, root: Path) -> None:
        """Record everything under root before it is changed, by us or the daemon (libvirtd
        makes nwfilter/, secrets/ and qemu/ in /etc/libvirt and writes guests there)."""
        self.trees.append((root, treesnapshot.snapshot(root)))

    def makedirs(self, path: Path) -> None:
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            directory.mkdir()
            self.made_dirs.append(directory)

    def restore(self) -> None:
        while self.trees:
            root, before = self.trees.pop()
            treesnapshot.restore(root, before)
        while self.made_dirs:
            directory = self.made_dirs.pop()
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()


@dataclass
class _Daemon:
    root: Path
    uri: str
    holder: subprocess.Popen[str] | None  # None: running on the host (no namespace)
    restorer: _Restorer


_daemon: _Daemon | None = None
_handlers_installed = False


def uri() -> str:
    """The URI of the daemon ensure_daemon() started."""
    if not URI:
        raise RuntimeError("no test libvirtd is running: call ensure_daemon() first")
    return URI


def virsh(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", uri(), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _configure_qemu_conf(path: Path) -> None:
    # Without user/group root every define takes ~56 s on these machines (SPEC §9).
    text = path.read_text() if path.exists() else ""
    wanted = [line for line in ('user = "root"', 'group = "root"') if line not in text]
    if wanted:
        path.write_text(text + "\n# added by hostdev-resolver tests\n" + "\n".join(wanted) + "\n")


def _install_test_hook(path: Path, config: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        "# hostdev-resolver test hook: the repository's hook with the test config\n"
        f'HOSTDEV_RESOLVER_CONFIG={config} exec {sys.executable} {REPO / "hooks" / "qemu"} "$@"\n'
    )
    path.chmod(0o755)


def _copy_config(etc: Path) -> None:
    """The host's libvirt *.conf files, with their modes and owners; no object definitions."""
    etc.mkdir(mode=0o755)
    if ETC.is_dir():
        for source in sorted(ETC.iterdir()):
            if source.name.endswith(".conf") and source.is_file():
                target = etc / source.name
                shutil.copy2(source, target)
                info = source.stat()
                os.chown(target, info.st_uid, info.st_gid)


def _proc_state(pid: int) -> str | None:
    """The process's state letter, None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _terminate(pidfile: Path, comm_prefix: str) -> None:
    """SIGTERM the process a PID file names (if it still is that program), SIGKILL after 15 s."""
    try:
        pid = int(pidfile.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return
    # A stale PID file may name a PID the kernel has since given to another program.
    if not comm.startswith(comm_prefix):
        return
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _proc_state(pid) in (None, "Z"):  # a zombie is its reaper's business
                return
            time.sleep(0.1)


def _teardown(uri: str, run_dir: Path, state: Path) -> None:
    """Destroy the guests, then stop libvirtd, virtlogd and any QEMU left over."""
    try:
        listed = _quiet_virsh(uri, "list", "--name")
        for name in listed.split():
            # libvirt removes the guest's cgroups (shared with the host) only on a destroy.
            _quiet_virsh(uri, "destroy", name)
    finally:
        _terminate(state / "libvirtd.pid", "libvirtd")
        _terminate(state / "virtlogd.pid", "virtlogd")
        for pidfile in sorted((run_dir / "qemu").glob("*.pid")):
            _terminate(pidfile, "qemu")


def _quiet_virsh(uri: str, *args: str) -> str:
    """virsh's stdout; empty when it fails or hangs (the daemons get killed next anyway)."""
    try:
        proc = subprocess.run(
            ["virsh", "-c", uri, *args],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout


def _start_daemons(state: Path, log: IO[str] | None) -> None:
    for daemon in ("virtlogd", "libvirtd"):
        subprocess.run(
            [daemon, "-d", "--pid-file", str(state / f"{daemon}.pid")],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def hold(root: Path) -> int:
    """The namespace's holder (run under unshare): a reaper, and a worker that mounts, starts
    the daemons, waits for EOF on stdin and tears them down."""
    # The daemons, libvirtd's QEMU capability probes and the guests' QEMUs all fork away
    # from their parent. libvirtd waits for a probe's or a destroyed guest's PID to vanish,
    # which a zombie never does, and PID 1 may be slow to reap them (it is here). As their
    # subreaper the holder becomes their parent and reaps them at once. The work is done by
    # a child, so that this wait loop takes no exit status from its subprocess calls.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    worker = os.fork()
    if worker == 0:
        code = 1
        try:
            code = _work(root)
        except (OSError, subprocess.SubprocessError):  # stderr is state/holder.log
            traceback.print_exc()
        finally:
            os._exit(code)
    status = 1
    while True:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        if pid == worker:
            status = os.waitstatus_to_exitcode(wait_status)
            # Whatever the teardown could not stop must not keep the namespace alive.
            for leftover in _namespace_processes(root):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(leftover, signal.SIGKILL)
    # Also when the test process was killed and cannot do it any more.
    shutil.rmtree(root, ignore_errors=True)
    return status


def _work(root: Path) -> int:
    for target, name in MOUNTS:
        subprocess.run(["mount", "--bind", str(root / name), str(target)], check=True)
    _start_daemons(root / "state", sys.stderr)
    print("started", flush=True)
    # EOF once stop_daemon() closed the pipe, or the pytest process is gone.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    _teardown("qemu:///system", Path("/run/libvirt"), root / "state")
    return 0


def _namespace_processes(root: Path) -> list[int]:
    """Processes that still see root's etc/ mounted over /etc/libvirt: the namespace's own
    and QEMU's (libvirt gives each QEMU a private mount namespace cloned from the daemon's)."""
    suffix = f"/{root.name}/etc"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            lines = (proc / "mountinfo").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # Once the source directory is deleted, the kernel shows it as "…//deleted".
            source = fields[3].removesuffix("//deleted") if len(fields) > 4 else ""
            if fields[4:5] == [str(ETC)] and source.endswith(suffix):
                found.append(int(proc.name))
                break
    return found


def namespaces_work(probe: Path) -> bool:
    """Does this kernel let us make a private mount namespace and bind-mount in it?"""
    proc = subprocess.run(
        [*UNSHARE, "mount", "--bind", str(probe), str(probe)],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def _host_daemons() -> list[str]:
    """libvirt daemons running in our own mount namespace (i.e. on the host)."""
    own = os.readlink("/proc/self/ns/mnt")
    found = []
    for proc in Path("/proc").iterdir():
        try:
            comm = (proc / "comm").read_text().strip()
            if (
                comm in ("libvirtd", "virtqemud", "virtlogd")
                and _proc_state(int(proc.name)) != "Z"
                and os.readlink(proc / "ns" / "mnt") == own
            ):
                found.append(f"{comm} (PID {proc.name})")
        except (OSError, ValueError):
            continue
    return found


def _start_namespaced(root: Path, hook_config: Path) -> None:
    global _daemon
    restorer = _Restorer()
    _daemon = _Daemon(root, f"qemu+unix:///system?socket={root}/run/libvirt-sock", None, restorer)
    _copy_config(root / "etc")
    _configure_qemu_conf(root / "etc" / "qemu.conf")
    _install_test_hook(root / "etc" / "hooks" / "qemu.d" / HOOK_NAME, hook_config)
    for target, name in MOUNTS:
        (root / name).mkdir(mode=0o755, exist_ok=True)
        # /run/libvirt exists only once a libvirtd has run since boot: a mount point is
        # needed, and it is taken away again afterwards.
        restorer.makedirs(target)
    with (root / "state" / "holder.log").open("w") as log:
        _daemon.holder = subprocess.Popen(
            [*UNSHARE, sys.executable, "-m", "tests.support.libvirtd", "hold", str(root)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            # Not in the terminal's process group: Ctrl-C reaches pytest, whose teardown
            # stops the daemons; a holder killed by it first would leave them running.
            start_new_session=True,
        )
    assert _daemon.holder.stdout is not None
    if _daemon.holder.stdout.readline().strip() != "started":
        _daemon.holder.wait(timeout=60)
        reason = (root / "state" / "holder.log").read_text().strip().splitlines()[-1:]
        raise RuntimeError(f"the test libvirtd did not start in its namespace: {reason}")


def _start_on_host(root: Path, hook_config: Path) -> None:
    global _daemon
    running = _host_daemons()
    if running:
        raise DaemonUnavailable(
            f"no private mount namespace here (unshare -m refused) and {', '.join(running)} "
            "already runs: the tests never reconfigure a daemon they did not start"
        )
    restorer = _Restorer()
    # Set before the first change, so that a signal from here on puts it back.
    _daemon = _Daemon(root, "qemu:///system", None, restorer)
    restorer.save_tree(ETC)
    _configure_qemu_conf(ETC / "qemu.conf")
    _install_test_hook(ETC / "hooks" / "qemu.d" / HOOK_NAME, hook_config)
    with (root / "state" / "daemons.log").open("w") as log:
        _start_daemons(root / "state", log)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stop_daemon()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, previous)
    os.kill(os.getpid(), signum)


_previous_handlers: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}


def _install_exit_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(stop_daemon)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        _previous_handlers[signum] = signal.getsignal(signum)
        signal.signal(signum, _on_signal)


def ensure_daemon() -> str:
    """Start (or reuse) this run's libvirtd; returns its URI."""
    global _daemon, URI, TEST_HOOK_CONFIG
    if _daemon is not None:
        if _daemon.holder is not None and _daemon.holder.poll() is not None:
            raise RuntimeError(f"the test libvirtd's namespace holder exited ({_daemon.root})")
        return _daemon.uri
    if shutil.which("libvirtd") is None or shutil.which("virtlogd") is None:
        raise DaemonUnavailable(
            "libvirt-daemon-system is not installed (run scripts/bootstrap as root)"
        )
    if os.geteuid() != 0:
        raise DaemonUnavailable("the real-daemon tests need root")
    # In /tmp whatever TMPDIR says: a socket path must stay under 108 bytes, and the hook
    # trusts its config only below root-owned directories that others cannot write to.
    root = Path(tempfile.mkdtemp(prefix="hostdev-resolver-libvirtd-", dir="/tmp"))
    (root / "state").mkdir()
    hook_config = root / "state" / "hook.toml"
    hook_config.write_text("")
    _install_exit_handlers()
    try:
        if namespaces_work(root):
            _start_namespaced(root, hook_config)
        else:
            _start_on_host(root, hook_config)
    except BaseException:
        started, _daemon = _daemon, None
        if started is not None:
            _cleanup(started)
        shutil.rmtree(root, ignore_errors=True)
        raise
    assert _daemon is not None
    URI, TEST_HOOK_CONFIG = _daemon.uri, hook_config
    deadline = time.monotonic() + 120
    last = ""
    while time.monotonic() < deadline:
        # The first answer takes ~2-3 s here while the daemon probes QEMU's capabilities
        # (~12 s when PID 1 is slow to reap the probes; the holder reaps them at once).
        try:
            proc = virsh("version", check=False, timeout=60)
        except subprocess.TimeoutExpired:
            break
        if proc.returncode == 0:
            return URI
        last = proc.stderr.strip()
        time.sleep(0.5)
    stop_daemon()
    raise RuntimeError(f"libvirtd did not answer on {hook_config.parent.parent} in time: {last}")


def _cleanup(daemon: _Daemon) -> list[int]:
    """Stop everything of `daemon`, put back what it changed; the PIDs that had to be killed."""
    try:
        if daemon.holder is not None:
            if daemon.holder.stdin is not None:
                daemon.holder.stdin.close()
            try:
                daemon.holder.wait(timeout=120)
            except subprocess.TimeoutExpired:
                daemon.holder.kill()
                daemon.holder.wait()
        else:
            _teardown(daemon.uri, Path("/run/libvirt"), daemon.root / "state")
        left = _namespace_processes(daemon.root)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return left
    finally:
        daemon.restorer.restore()
        shutil.rmtree(daemon.root, ignore_errors=True)


def stop_daemon() -> None:
    """Stop this run's daemons and their namespace (if this process started them)."""
    global _daemon, URI, TEST_HOOK_CONFIG
    daemon, _daemon = _daemon, None
    URI, TEST_HOOK_CONFIG = "", None
    if daemon is None:
        return
    left = _cleanup(daemon)
    if left:
        raise RuntimeError(f"processes outlived the test libvirtd's namespace: {left}")


def write_hook_config(text: str) -> None:
    """Point the installed test hook at a store / host tree (read on every hook call)."""
    if TEST_HOOK_CONFIG is None:
        raise RuntimeError("no test libvirtd is running: call ensure_daemon() first")
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


if __name__ == "__main__" and sys.argv[1:2] == ["hold"]:
    sys.exit(hold(Path(sys.argv[2])))
