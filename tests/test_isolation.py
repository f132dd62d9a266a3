"""A test run leaves the machine as it found it (issue 10).

The real daemon runs in a private mount namespace (tests/support/libvirtd.py); these
tests check that its configuration never reaches the host's /etc/libvirt, that stopping
it (also by Ctrl-C, SIGTERM or SIGKILL of the test process) leaves no process behind, and
that the fallback without namespaces puts back every file it changed.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import libvirtd, treesnapshot

REPO = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    return libvirtd._proc_state(pid) not in (None, "Z")


# -- tree snapshots ---------------------------------------------------------------------


def test_snapshot_sees_every_kind_of_change(tmp_path: Path) -> None:
    root = tmp_path / "etc"
    (root / "hooks").mkdir(parents=True)
    conf = root / "qemu.conf"
    conf.write_text('#user = "qemu"\n')
    (root / "link").symlink_to("qemu.conf")
    (root / "hooks" / "gone").write_text("x")
    before = treesnapshot.snapshot(root)
    assert treesnapshot.differences(root, before, treesnapshot.snapshot(root)) == []

    conf.write_text('#user = "qemu"\nuser = "root"\n')
    conf.chmod(0o600)
    (root / "link").unlink()
    (root / "link").symlink_to("hooks")
    (root / "hooks" / "gone").unlink()
    (root / "hooks" / "new").write_text("x")
    (root / "hooks").chmod(0o700)
    os.chown(root / "hooks", 0, 1)
    assert treesnapshot.differences(root, before, treesnapshot.snapshot(root)) == [
        f"{root}/hooks: mode, group changed",
        f"{root}/hooks/gone: removed",
        f"{root}/hooks/new: created",
        f"{root}/link: content changed",
        f"{root}/qemu.conf: mode, content changed",
    ]


def test_directories_removed_by_a_purge_come_back_with_mode_and_owner(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    (hooks / "qemu.d").mkdir(parents=True)
    (hooks / "qemu.d").chmod(0o750)
    os.chown(hooks / "qemu.d", 0, 1)
    hooks.chmod(0o700)
    before = treesnapshot.snapshot(tmp_path)
    (hooks / "qemu.d").rmdir()
    hooks.rmdir()
    treesnapshot.restore_directories(tmp_path, before)
    assert treesnapshot.differences(tmp_path, before, treesnapshot.snapshot(tmp_path)) == []


_SESSION = """
import sys
import pytest
from pathlib import Path
from tests.support import libvirtd

libvirtd.ETC = Path(sys.argv[1])
sys.exit(pytest.main(["-q", "-p", "tests.conftest", "-p", "no:cacheprovider", sys.argv[2]]))
"""


@pytest.mark.parametrize("change", [False, True])
def test_a_run_that_changes_etc_libvirt_fails(tmp_path: Path, change: bool) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "qemu.conf").write_text("# as shipped\n")
    test = tmp_path / "test_touch.py"
    test.write_text(
        "from pathlib import Path\n"
        "def test_passes() -> None:\n"
        f"    if {change}:\n"
        f"        Path({str(etc / 'qemu.conf')!r}).write_text('user = \"root\"\\n')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", _SESSION, str(etc), str(test)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if change:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"the test run changed {etc} (or something else" in proc.stdout
        assert f"{etc}/qemu.conf: content changed" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the fallback without namespaces ------------------------------------------------------


def test_restorer_puts_the_tree_back_as_it_was(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "qemu" / "networks").mkdir(parents=True)
    conf = etc / "qemu.conf"
    conf.write_bytes(b"# as shipped\n")
    conf.chmod(0o600)
    os.chown(conf, 0, 1)
    (etc / "qemu" / "networks" / "default.xml").write_text("<network/>")
    (etc / "qemu" / "autostart").symlink_to("networks")
    before = treesnapshot.snapshot(etc)

    restorer = libvirtd._Restorer()
    restorer.save_tree(etc)
    libvirtd._configure_qemu_conf(conf)
    libvirtd._install_test_hook(etc / "hooks" / "qemu.d" / "50-test", tmp_path / "hook.toml")
    conf.chmod(0o644)
    os.chown(conf, 0, 0)
    # What libvirtd does to a host's /etc/libvirt: directories of its own, guests defined.
    (etc / "nwfilter").mkdir(mode=0o700)
    (etc / "qemu" / "guest.xml").write_text("<domain/>")
    (etc / "qemu" / "networks" / "default.xml").unlink()
    (etc / "qemu" / "autostart").unlink()
    (etc / "qemu" / "autostart").mkdir()
    assert treesnapshot.differences(etc, before, treesnapshot.snapshot(etc))
    restorer.restore()
    assert treesnapshot.differences(etc, before, treesnapshot.snapshot(etc)) == []


_INTERRUPTED_CHILD = """
import sys, time
from pathlib import Path
from tests.support import libvirtd

conf = Path(sys.argv[1])
restorer = libvirtd._Restorer()
restorer.save_tree(conf.parent)
libvirtd._configure_qemu_conf(conf)
# A host-mode daemon whose teardown finds nothing to stop (no PID files, test driver).
libvirtd._daemon = libvirtd._Daemon(Path(sys.argv[2]), "test:///default", None, restorer)
libvirtd._install_exit_handlers()
print("changed", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_fallback_restores_files_when_interrupted(tmp_path: Path, signum: int) -> None:
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "qemu.conf"
    conf.write_bytes(b"# the administrator's\n")
    state = tmp_path / "state"
    state.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_CHILD, str(conf), str(state)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "changed\n"
    assert b'user = "root"' in conf.read_bytes()
    child.send_signal(signum)
    child.wait(timeout=30)
    assert conf.read_bytes() == b"# the administrator's\n"
    assert not state.exists()
    # Ends by the signal itself, as it would have without the handlers.
    assert child.returncode == -signum


def test_a_holder_that_fails_to_start_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0 or not Path("/usr/sbin/libvirtd").exists():
        pytest.skip("needs root and libvirt-daemon-system")
    # Set aside (monkeypatch puts it back) whatever daemon this session already runs.
    for name, value in (("_daemon", None), ("URI", ""), ("TEST_HOOK_CONFIG", None)):
        monkeypatch.setattr(libvirtd, name, value)
    before = set(Path("/tmp").glob("hostdev-resolver-libvirtd-*"))
    monkeypatch.setattr(libvirtd, "namespaces_work", lambda probe: True)
    # The holder's command becomes `false …`: it exits without saying "started".
    monkeypatch.setattr(libvirtd, "UNSHARE", ("false",))
    with pytest.raises(RuntimeError, match="did not start in its namespace"):
        libvirtd.ensure_daemon()
    assert (libvirtd.URI, libvirtd.TEST_HOOK_CONFIG, libvirtd._daemon) == ("", None, None)
    assert set(Path("/tmp").glob("hostdev-resolver-libvirtd-*")) == before


# -- the real daemon ----------------------------------------------------------------------


def _daemon_pids() -> tuple[int, int]:
    state = libvirtd.TEST_HOOK_CONFIG.parent if libvirtd.TEST_HOOK_CONFIG else None
    assert state is not None
    return tuple(  # type: ignore[return-value]
        int((state / f"{name}.pid").read_text()) for name in ("libvirtd", "virtlogd")
    )


@pytest.mark.daemon
def test_daemon_sees_private_libvirt_dirs_and_host_etc_is_untouched(
    libvirt_uri: str, tmp_path: Path
) -> None:
    root = libvirtd.TEST_HOOK_CONFIG.parent.parent if libvirtd.TEST_HOOK_CONFIG else None
    assert root is not None and libvirt_uri == libvirtd.uri() == libvirtd.URI
    assert libvirt_uri == f"qemu+unix:///system?socket={root}/run/libvirt-sock"
    before = treesnapshot.snapshot(libvirtd.ETC)
    for pid in _daemon_pids():
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        mounts = {
            fields[4]: fields[3]
            for fields in map(str.split, Path(f"/proc/{pid}/mountinfo").read_text().splitlines())
        }
        for target, name in libvirtd.MOUNTS:
            assert mounts[str(target)].endswith(f"/{root.name}/{name}"), (target, mounts)
    # What the daemon reads is the edited copy; the host's file is not what it sees.
    conf = (root / "etc" / "qemu.conf").read_text()
    assert 'user = "root"' in conf and 'group = "root"' in conf
    assert sorted(p.name for p in (root / "etc" / "hooks" / "qemu.d").iterdir()) == [
        libvirtd.HOOK_NAME
    ]
    # A define writes the daemon's /etc/libvirt/qemu/NAME.xml: into the copy.
    domain = tmp_path / "iso.xml"
    domain.write_text(
        "<domain type='qemu'><name>iso-define</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )
    libvirtd.undefine_all("iso-")
    try:
        libvirtd.virsh("define", str(domain))
        assert (root / "etc" / "qemu" / "iso-define.xml").exists()
        assert not (libvirtd.ETC / "qemu" / "iso-define.xml").exists()
    finally:
        libvirtd.undefine_all("iso-")
    assert treesnapshot.differences(libvirtd.ETC, before, treesnapshot.snapshot(libvirtd.ETC)) == []


_DAEMON_CHILD = """
import os, sys, time
from tests.support import libvirtd

libvirtd.ensure_daemon()
state = libvirtd.TEST_HOOK_CONFIG.parent
domain = state / "guest.xml"
domain.write_text(
    "<domain type='qemu'><name>" + sys.argv[1] + "</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
)
libvirtd.virsh("create", str(domain))
run = state.parent / "run" / "qemu"
pids = [int((state / f"{n}.pid").read_text()) for n in ("libvirtd", "virtlogd")]
pids.append(int((run / f"{sys.argv[1]}.pid").read_text()))
print(state.parent, *pids, flush=True)
time.sleep(120)
"""


@pytest.mark.daemon
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_interrupted_run_leaves_no_daemon_no_guest_and_no_namespace(signum: signal.Signals) -> None:
    """Ctrl-C runs the teardown; SIGKILL closes the holder's pipe, and the holder does it.
    Either way the running guest is destroyed by libvirt, which removes its cgroups (those
    are the host's: no namespace covers them)."""
    if os.geteuid() != 0 or not Path("/usr/sbin/libvirtd").exists():
        pytest.skip("needs root and libvirt-daemon-system")
    guest = f"iso-run-{os.getpid()}-{signum.name}"
    child = subprocess.Popen(
        [sys.executable, "-c", _DAEMON_CHILD, guest],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline().split()
    assert len(line) == 4, child.communicate(timeout=60)
    root, pids = Path(line[0]), [int(pid) for pid in line[1:]]
    assert all(_alive(pid) for pid in pids)
    cgroups = f"/sys/fs/cgroup/**/qemu-*-{guest}.libvirt-qemu"
    assert glob.glob(cgroups, recursive=True)
    assert libvirtd._namespace_processes(root)
    child.send_signal(signum)
    child.wait(timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        any(_alive(pid) for pid in pids) or libvirtd._namespace_processes(root) or root.exists()
    ):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)
    assert libvirtd._namespace_processes(root) == []
    assert not root.exists()
    assert glob.glob(cgroups, recursive=True) == []


_FALLBACK_CHILD = """
import os, sys, time
from tests.support import libvirtd

libvirtd.namespaces_work = lambda probe: False
uri = libvirtd.ensure_daemon()
state = libvirtd.TEST_HOOK_CONFIG.parent
pids = [int((state / f"{n}.pid").read_text()) for n in ("libvirtd", "virtlogd")]
conf = (libvirtd.ETC / "qemu.conf").read_text()
hook = (libvirtd.ETC / "hooks" / "qemu.d" / libvirtd.HOOK_NAME).read_text()
print(uri, 'user = "root"' in conf, str(libvirtd.TEST_HOOK_CONFIG) in hook, *pids, flush=True)
if sys.argv[1] == "stop":
    libvirtd.stop_daemon()
else:
    time.sleep(120)
"""


@pytest.mark.daemon
@pytest.mark.parametrize("end", ["stop", "SIGTERM"])
def test_fallback_on_a_host_puts_etc_libvirt_back(tmp_path: Path, end: str) -> None:
    """The fallback for kernels without mount namespaces, run for real: on a stand-in host
    (a namespace of this test's own, so the machine's /etc/libvirt stays out of it)."""
    if os.geteuid() != 0 or not Path("/usr/sbin/libvirtd").exists():
        pytest.skip("needs root and libvirt-daemon-system")
    host = tmp_path / "host"
    for _, name in libvirtd.MOUNTS:
        (host / name).mkdir(parents=True)
    etc = host / "etc"
    for source in libvirtd.ETC.glob("*.conf"):
        (etc / source.name).write_bytes(source.read_bytes())
    (etc / "qemu.conf").write_text('#user = "qemu"\n')
    (etc / "qemu.conf").chmod(0o600)
    (etc / "hooks" / "qemu.d").mkdir(parents=True)
    (etc / "hooks" / "qemu.d" / libvirtd.HOOK_NAME).write_text("#!/bin/sh\n# the package's\n")
    before = treesnapshot.snapshot(etc)
    mounts = "; ".join(f"mount --bind {host / name} {target}" for target, name in libvirtd.MOUNTS)
    command = ["sh", "-c", f'{mounts}; exec "$@"', "sh", sys.executable, "-c", _FALLBACK_CHILD]
    child = subprocess.Popen(
        [*libvirtd.UNSHARE, *command, end],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline().split()
    assert line[:3] == ["qemu:///system", "True", "True"], child.communicate(timeout=60)
    pids = [int(pid) for pid in line[3:]]
    if end == "SIGTERM":
        child.send_signal(signal.SIGTERM)
    child.wait(timeout=120)
    assert child.returncode == (0 if end == "stop" else -signal.SIGTERM)
    assert not any(_alive(pid) for pid in pids)
    assert treesnapshot.differences(etc, before, treesnapshot.snapshot(etc)) == []
