"""The hook's operations (SPEC §6), called in-process and as libvirt calls it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from hostdev_resolver.core.metadata import HR_NS
from hostdev_resolver.doors import hook
from tests.support.simkernel import SimKernel, pci_state

from .fixtures import AUDIO, GPU, USB, Host, domain_xml, gpu_host, make_host, mapped

HOOK = Path(__file__).resolve().parents[2] / "hooks" / "qemu"
NATIVE: dict[str, str | None] = {GPU: "nouveau", AUDIO: "snd_hda_intel", USB: "xhci_hcd"}


class Call:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.kernels: list[SimKernel] = []
        self.stdout = io.BytesIO()
        self.stderr = io.StringIO()

    def __call__(self, domain: str, op: str, subop: str, xml: bytes) -> int:
        self.stdout, self.stderr = io.BytesIO(), io.StringIO()
        return hook.main(
            [domain, op, subop, "-"],
            io.BytesIO(xml),
            stdout=self.stdout,
            stderr=self.stderr,
            environ={"HOSTDEV_RESOLVER_CONFIG": str(self.host.config)},
            writer_factory=self._kernel,
            dev_log=str(self.host.config.with_name("no-syslog-socket")),
        )

    def _kernel(self, root: str) -> SimKernel:
        kernel = SimKernel(Path(root), NATIVE)
        self.kernels.append(kernel)
        return kernel


def test_namespace_constant_matches_metadata() -> None:
    assert HR_NS.encode() == hook.HR_NS_BYTES


def test_no_metadata_passes_whatever_the_config_and_store(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    host.store.write_text("<not xml")
    host.config.write_text("this is [not toml")
    call = Call(host)
    declared = domain_xml("hook-plain", "").encode()  # xmlns:hr declared, nothing resolved
    plain = declared.replace(b" xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'", b"")
    for xml in (plain, declared):
        for op, subop in [("prepare", "begin"), ("migrate", "begin"), ("release", "end")]:
            assert call("hook-plain", op, subop, xml) == 0
            assert call.stdout.getvalue() == b"" and call.stderr.getvalue() == ""
    assert call.kernels == []


def test_prepare_verifies_binds_and_release_restores(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("hook-a", mapped("gpu0") + "\n" + mapped("gpu0-audio")))
    before = pci_state(host.root)
    call = Call(host)

    assert call("hook-a", "prepare", "begin", xml) == 0, call.stderr.getvalue()
    assert len(call.kernels[0].writes) == 8
    assert call.stderr.getvalue() == ""  # libvirt discards it: decisions go to the log
    log = [line.split(": ", 1)[1] for line in host.log.read_text().splitlines()]
    assert f"hook-a: prepare begin: {GPU}: bound to vfio-pci (was nouveau; gpu0)" in log
    assert (host.state / "hook-a.json").exists()

    assert call("hook-a", "release", "end", xml) == 0
    assert pci_state(host.root) == before
    assert not (host.state / "hook-a.json").exists()


def test_prepare_refuses_a_shifted_device_with_one_line(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    xml = host.resolve(domain_xml("hook-s", mapped("gpu0")))
    moved = make_host(tmp_path / "now", gpu_host(gpu_at="0000:44:00.0"))
    host.write_config(extra="")
    host.config.write_text(host.config.read_text().replace(str(host.root), str(moved.root)))
    call = Call(host)

    assert call("hook-s", "prepare", "begin", xml) == 1
    problems = [
        line
        for line in call.stderr.getvalue().splitlines()
        if not line.startswith("hostdev-resolver: hook-s:")
    ]
    assert problems == [
        "hostdev-resolver: domain hook-s (hook stdin):5: gpu0: no device is at 0000:41:00.0 on node hv1; "
        "the device with serial 00-11-22-33-44-55-66-77 is now at 0000:44:00.0 — start it with "
        "'hostdev-virsh start hook-s', which follows the device, or define it again with "
        "'hostdev-virsh define'; or re-map it with "
        "'hostdev-resolver map add pci gpu0 --node hv1 --address 0000:44:00.0'"
    ]
    assert call.kernels == []


def test_prepare_refuses_a_denied_domain(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("hook-d", mapped("gpu0")))
    host.store.write_text(
        host.store.read_text().replace(
            "<pci name='gpu0' vfio='yes'>", "<pci name='gpu0' vfio='yes'><allow domain='ml-*'/>"
        )
    )
    call = Call(host)
    assert call("hook-d", "prepare", "begin", xml) == 1
    assert "gpu0: the mapping does not allow domain 'hook-d'" in call.stderr.getvalue()


def test_untrusted_store_is_refused_unless_configured(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("hook-t", mapped("nvme0", managed="yes")))
    host.store.chmod(0o666)
    call = Call(host)
    assert call("hook-t", "prepare", "begin", xml) == 3
    assert call.stderr.getvalue().strip() == (
        f"hostdev-resolver: {host.store}: the mapping store is group- or world-writable (mode 666); "
        f"not trusted; chmod go-w {host.store}"
    )
    if os.geteuid() == 0:
        os.chown(host.store, 65534, 65534)
        host.store.chmod(0o644)
        assert call("hook-t", "prepare", "begin", xml) == 3
        assert "owned by uid 65534, not root; not trusted" in call.stderr.getvalue()
    host.write_config(extra="trust_any_owner = true\n")
    assert call("hook-t", "prepare", "begin", xml) == 0, call.stderr.getvalue()


def test_a_world_writable_config_is_not_trusted_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        return  # a non-root hook reads with its caller's rights; nothing to escalate
    host = make_host(tmp_path)
    host.write_config(extra="trust_any_owner = true\n")
    host.config.chmod(0o666)
    call = Call(host)
    xml = host.resolve(domain_xml("hook-c", mapped("gpu0")))
    assert call("hook-c", "prepare", "begin", xml) == 3
    assert "the hook config is group- or world-writable" in call.stderr.getvalue()


def test_malformed_config_is_one_clear_line(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    xml = host.resolve(domain_xml("hook-m", mapped("gpu0")))
    call = Call(host)
    host.config.write_text("store = \n")
    assert call("hook-m", "prepare", "begin", xml) == 2
    (line,) = call.stderr.getvalue().splitlines()
    assert line.startswith(f"hostdev-resolver: {host.config}: the hook config is not valid TOML")
    host.config.write_text("stor = '/x'\n")
    assert call("hook-m", "prepare", "begin", xml) == 2
    assert (
        "unknown key 'stor' in the hook config; the keys are store, node" in call.stderr.getvalue()
    )
    host.config.write_text("trust_any_owner = 'yes'\n")
    assert call("hook-m", "prepare", "begin", xml) == 2
    assert "trust_any_owner = 'yes' must be a bool" in call.stderr.getvalue()


def test_release_never_fails(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    xml = host.resolve(domain_xml("hook-r", mapped("gpu0")))
    host.state.mkdir()
    (host.state / "hook-r.json").write_text("{broken")
    call = Call(host)
    assert call("hook-r", "release", "end", xml) == 0
    assert "hook-r: release end: " in host.log.read_text()
    assert "cannot read the vfio state file" in host.log.read_text()
    # A config that cannot be read names no log file: with no syslog either, stderr.
    host.config.write_text("not toml [")
    assert call("hook-r", "release", "end", xml) == 0
    assert "hook-r: release end: " in call.stderr.getvalue()
    assert "not valid TOML" in call.stderr.getvalue()


def test_migrate_rewrites_for_this_node_and_unchanged_is_empty(tmp_path: Path) -> None:
    source = make_host(tmp_path / "hv1")
    xml = source.resolve(domain_xml("hook-m", mapped("gpu0", managed="yes")))
    dest = make_host(tmp_path / "hv2", gpu_host(gpu_at="0000:45:00.0"))
    call = Call(dest)
    dest.write_config(node="hv2")
    assert call("hook-m", "migrate", "begin", xml) == 0, call.stderr.getvalue()
    out = call.stdout.getvalue()
    assert b"bus='0x45'" in out and b"node='hv2'" in out
    # Restoring the rewritten XML on the same node changes nothing: empty output.
    assert call("hook-m", "restore", "begin", out) == 0
    assert call.stdout.getvalue() == b""


def test_migrate_to_a_node_without_an_entry_fails(tmp_path: Path) -> None:
    source = make_host(tmp_path)
    xml = source.resolve(domain_xml("hook-n", mapped("gpu0-audio")))
    source.write_config(node="hv2")
    call = Call(source)
    assert call("hook-n", "migrate", "begin", xml) == 1
    assert "mapping 'gpu0-audio' has no entry for node 'hv2'" in call.stderr.getvalue()
    assert call.stdout.getvalue() == b""


def test_reconnect_logs_but_never_fails(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    xml = host.resolve(domain_xml("hook-x", mapped("gpu0")))
    host.store.write_text("<broken")
    call = Call(host)
    assert call("hook-x", "reconnect", "begin", xml) == 0
    assert "hook-x: reconnect begin: " in call.stderr.getvalue() + host.log.read_text()


def test_other_operations_pass_without_reading(tmp_path: Path) -> None:
    call = Call(make_host(tmp_path))
    assert call("hook-o", "started", "begin", b"<domain") == 0
    assert call("hook-o", "stopped", "end", b"<domain") == 0


def test_hook_start_path_imports_nothing_heavy(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("hook-i", mapped("gpu0-audio", managed="yes")))
    host.write_config(extra="trust_any_owner = true\n")
    probe = (
        "import sys, runpy; sys.argv = [sys.argv[1], 'hook-i', 'reconnect', 'begin', '-'];\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n    rc = e.code\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\nsys.exit(rc)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, str(HOOK)],
        input=xml,
        capture_output=True,
        env={**os.environ, "HOSTDEV_RESOLVER_CONFIG": str(host.config)},
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    modules = set(run.stderr.decode().splitlines()[-1].split())
    assert "hostdev_resolver.core.verification" in modules  # it did the real work
    heavy = {
        "lxml",
        "lxml.etree",
        "xmlschema",
        "libvirt",
        "argparse",
        "pyudev",
        "hostdev_resolver.doors.cli.main",
    }
    assert modules & heavy == set()


class _BuggyKernel(SimKernel):
    """A writer that fails once with an unexpected exception (a bug, not a refused
    write) at its fourth write: mid-way through a group."""

    failed = False

    def write(self, write: object) -> None:  # type: ignore[override]
        if len(self.writes) == 3 and not self.failed:
            self.failed = True
            raise RuntimeError("simulated bug")
        super().write(write)  # type: ignore[arg-type]


def test_an_unexpected_error_is_one_line_and_leaves_no_device_half_bound(
    tmp_path: Path,
) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("hook-b", mapped("gpu0") + "\n" + mapped("gpu0-audio")))
    before = pci_state(host.root)
    err = io.StringIO()
    rc = hook.main(
        ["hook-b", "prepare", "begin", "-"],
        io.BytesIO(xml),
        stdout=io.BytesIO(),
        stderr=err,
        environ={"HOSTDEV_RESOLVER_CONFIG": str(host.config)},
        writer_factory=lambda root: _BuggyKernel(Path(root), NATIVE),
    )
    assert rc == 1
    problems = [line for line in err.getvalue().splitlines() if "internal error" in line]
    assert problems == [
        "hostdev-resolver: internal error: RuntimeError: simulated bug; please report it"
    ]
    assert "Traceback" not in err.getvalue()
    assert pci_state(host.root) == before
    assert not (host.state / "hook-b.json").exists()
