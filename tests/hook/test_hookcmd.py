"""`hostdev-resolver hook install` and `verify --dry-run`."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

from hostdev_resolver.cli import main as cli

from .fixtures import AUDIO, GPU, USB, domain_xml, gpu_host, make_host, mapped


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = cli(list(argv))
    return rc, out.getvalue()


def test_install_into_qemu_d_is_root_owned_executable_and_runs(tmp_path: Path) -> None:
    rc, out = _cli("hook", "install", "--hooks-dir", str(tmp_path), "--config", "/etc/x.toml")
    hook = tmp_path / "qemu.d" / "50-hostdev-resolver"
    assert rc == 0
    assert f"installed the hostdev-resolver hook as {hook}" in out
    assert "restart libvirtd" in out
    info = hook.stat()
    assert stat.S_IMODE(info.st_mode) == 0o755
    if os.geteuid() == 0:
        assert info.st_uid == 0
    assert hook.read_text().startswith(f"#!{sys.executable}\n")
    assert "os.environ['HOSTDEV_RESOLVER_CONFIG'] = '/etc/x.toml'" in hook.read_text()
    run = subprocess.run(
        [str(hook), "hook-i", "prepare", "begin", "-"],
        input=b"<domain type='qemu'><name>hook-i</name></domain>",
        capture_output=True,
        check=False,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")
    # Replacing it is not "new": no restart needed.
    rc, out = _cli("hook", "install", "--hooks-dir", str(tmp_path))
    assert rc == 0 and "restart libvirtd" not in out
    assert "HOSTDEV_RESOLVER_CONFIG" not in hook.read_text()
    assert sorted(os.listdir(hook.parent)) == ["50-hostdev-resolver"]


def test_install_as_qemu_never_overwrites_another_hook(tmp_path: Path) -> None:
    rc, _ = _cli("hook", "install", "--hooks-dir", str(tmp_path), "--as-qemu")
    assert rc == 0 and (tmp_path / "qemu").exists()
    assert _cli("hook", "install", "--hooks-dir", str(tmp_path), "--as-qemu")[0] == 0
    (tmp_path / "qemu").write_text("#!/bin/sh\nexit 0\n")
    assert _cli("hook", "install", "--hooks-dir", str(tmp_path), "--as-qemu")[0] == 1
    assert (tmp_path / "qemu").read_text() == "#!/bin/sh\nexit 0\n"


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
