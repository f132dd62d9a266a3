"""`hostdev-resolver hook install` and `verify --dry-run`."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

from hostdev_resolver.doors.cli.hookinstall import hook_script, install_hook, is_ours
from hostdev_resolver.doors.cli.main import main as cli

from .fixtures import AUDIO, GPU, USB, domain_xml, gpu_host, make_host, mapped


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = cli(list(argv))
    return rc, out.getvalue()


REPO_HOOK = Path(__file__).resolve().parents[2] / "hooks" / "qemu"


def _executables(directory: Path) -> list[str]:
    """What libvirt would run: every executable entry, whatever its name."""
    return sorted(p.name for p in directory.iterdir() if os.access(p, os.X_OK))


def test_install_links_qemu_d_to_a_root_owned_launcher_that_runs(tmp_path: Path) -> None:
    hooks, launchers = tmp_path / "hooks", tmp_path / "libexec"
    rc, out = _cli(
        "hook", "install", "--hooks-dir", str(hooks), "--launcher-dir", str(launchers),
        "--config", "/etc/x.toml",
    )  # fmt: skip
    hook = hooks / "qemu.d" / "50-hostdev-resolver"
    launcher = launchers / "qemu-hook"
    assert rc == 0
    assert f"installed the hostdev-resolver hook as {hook} -> {launcher}" in out
    assert "restart libvirtd" in out
    # qemu.d holds only a symlink: nothing dpkg or rpm could leave a side copy of.
    assert hook.is_symlink() and Path(os.readlink(hook)) == launcher
    info = launcher.stat()
    assert stat.S_IMODE(info.st_mode) == 0o755
    if os.geteuid() == 0:
        assert info.st_uid == 0 and hook.lstat().st_uid == 0
    assert launcher.read_text().startswith(f"#!{sys.executable}\n")
    assert "os.environ['HOSTDEV_RESOLVER_CONFIG'] = '/etc/x.toml'" in launcher.read_text()
    run = subprocess.run(
        [str(hook), "hook-i", "prepare", "begin", "-"],
        input=b"<domain type='qemu'><name>hook-i</name></domain>",
        capture_output=True,
        check=False,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")
    # Replacing it is not "new": no restart needed.
    rc, out = _cli("hook", "install", "--hooks-dir", str(hooks), "--launcher-dir", str(launchers))
    assert rc == 0 and "restart libvirtd" not in out
    assert "HOSTDEV_RESOLVER_CONFIG" not in launcher.read_text()
    assert sorted(os.listdir(hook.parent)) == ["50-hostdev-resolver"]
    assert sorted(os.listdir(launchers)) == ["qemu-hook"]


def test_install_over_an_old_copied_hook_leaves_one_executable(tmp_path: Path) -> None:
    # What `hook install` wrote before it made symlinks: a copy of the launcher.
    qemu_d = tmp_path / "qemu.d"
    qemu_d.mkdir()
    old = qemu_d / "50-hostdev-resolver"
    old.write_text(hook_script("/usr/bin/python3", None))
    old.chmod(0o755)
    launchers = tmp_path / "libexec"
    rc, out = _cli(
        "hook", "install", "--hooks-dir", str(tmp_path), "--launcher-dir", str(launchers)
    )
    assert rc == 0 and "restart libvirtd" not in out
    assert old.is_symlink() and Path(os.readlink(old)) == launchers / "qemu-hook"
    assert _executables(qemu_d) == ["50-hostdev-resolver"]


def test_from_the_package_the_link_points_at_the_packaged_hook(tmp_path: Path) -> None:
    packaged = tmp_path / "usr/libexec/hostdev-resolver/qemu-hook"
    packaged.parent.mkdir(parents=True)
    packaged.write_text(REPO_HOOK.read_text())
    link, target, new = install_hook(
        tmp_path / "hooks", as_qemu=False, config=None, packaged_hook=packaged
    )
    assert new and target == packaged and Path(os.readlink(link)) == packaged
    assert is_ours(link)
    # A config to fix cannot go into the packaged file: that takes a launcher.
    launchers = tmp_path / "libexec"
    _, target, new = install_hook(
        tmp_path / "hooks",
        as_qemu=False,
        config="/etc/y.toml",
        packaged_hook=packaged,
        launcher_dir=launchers,
    )
    assert not new and target == launchers / "qemu-hook"
    assert packaged.read_text() == REPO_HOOK.read_text()


def test_install_as_qemu_never_overwrites_another_hook(tmp_path: Path) -> None:
    launchers = ["--launcher-dir", str(tmp_path / "libexec")]
    rc, _ = _cli("hook", "install", "--hooks-dir", str(tmp_path), "--as-qemu", *launchers)
    assert rc == 0 and (tmp_path / "qemu").is_symlink()
    assert _cli("hook", "install", "--hooks-dir", str(tmp_path), "--as-qemu", *launchers)[0] == 0
    (tmp_path / "qemu").unlink()
    (tmp_path / "qemu").write_text("#!/bin/sh\nexit 0\n")
    assert _cli("hook", "install", "--hooks-dir", str(tmp_path), "--as-qemu", *launchers)[0] == 1
    assert (tmp_path / "qemu").read_text() == "#!/bin/sh\nexit 0\n"
    # Nor a symlink to someone else's hook.
    (tmp_path / "qemu").unlink()
    (tmp_path / "qemu").symlink_to("/usr/lib/other/qemu-hook")
    assert _cli("hook", "install", "--hooks-dir", str(tmp_path), "--as-qemu", *launchers)[0] == 1
    assert os.readlink(tmp_path / "qemu") == "/usr/lib/other/qemu-hook"


def test_verify_dry_run_prints_the_hooks_writes(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    domain = tmp_path / "hook-dry.xml"
    domain.write_bytes(
        host.resolve(domain_xml("hook-dry", mapped("gpu0") + "\n" + mapped("gpu0-audio")))
    )
    rc, out = _cli(
        "verify",
        str(domain),
        "--dry-run",
        "--store",
        str(host.store),
        "--node",
        "hv1",
        "--sysfs",
        str(host.root),
    )
    assert rc == 0
    lines = out.splitlines()
    assert "vfio-pci: 8 sysfs writes at start:" in lines
    writes = [line.strip().split("    #")[0] for line in lines if line.startswith("  echo")]
    assert writes[0] == f"echo 'vfio-pci' > {host.root}/bus/pci/devices/{GPU}/driver_override"
    assert writes[4] == f"echo '{AUDIO}' > {host.root}/bus/pci/drivers/snd_hda_intel/unbind"
    assert writes[7] == f"echo '{USB}' > {host.root}/bus/pci/drivers_probe"
    # Nothing was written: a dry run.
    assert (host.root / "bus/pci/devices" / GPU / "driver_override").read_text() == "(null)\n"


def test_a_launcher_written_before_the_layered_layout_still_runs(tmp_path: Path) -> None:
    # Launchers stay on disk across upgrades; a hook that cannot import fails every start.
    launcher = tmp_path / "qemu-hook"
    launcher.write_text(
        hook_script(sys.executable, None).replace(
            "from hostdev_resolver.doors.hook import main", "from hostdev_resolver.hook import main"
        )
    )
    assert "from hostdev_resolver.hook import main" in launcher.read_text()
    run = subprocess.run(
        [sys.executable, str(launcher), "old-l", "prepare", "begin", "-"],
        input=b"<domain type='qemu'><name>old-l</name></domain>",
        capture_output=True,
        check=False,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")
