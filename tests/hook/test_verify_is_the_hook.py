"""`hostdev-resolver verify` is the hook's `prepare begin` decision, without the writes.

Whatever the hook refuses at start (a device problem, the IOMMU off, an IOMMU group
a host driver uses), `verify` refuses with the same words and exit 1; what the hook
accepts, `verify` accepts. A domain that was never resolved is reported, not passed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hostdev_resolver.doors import hook
from hostdev_resolver.doors.cli import main as cli
from tests.support.hosttree import HostSpec
from tests.support.simkernel import SimKernel

from .fixtures import AUDIO, GPU, USB, Host, domain_xml, gpu_host, make_host, mapped

NATIVE: dict[str, str | None] = {GPU: "nouveau", AUDIO: "snd_hda_intel", USB: "xhci_hcd"}


def _verify(host: Host, path: Path, *extra: str) -> tuple[int, str, str]:
    args = ["verify", str(path), "--store", str(host.store), "--node", "hv1"]
    rc = cli.main([*args, "--sysfs", str(host.root), *extra])
    return rc, *_captured()


_capsys: list[pytest.CaptureFixture[str]] = []


def _captured() -> tuple[str, str]:
    out, err = _capsys[0].readouterr()
    return out, err


@pytest.fixture(autouse=True)
def _capture(capsys: pytest.CaptureFixture[str]) -> None:
    _capsys[:] = [capsys]


def _prepare(host: Host, name: str, xml: bytes) -> tuple[int, list[str], list[SimKernel]]:
    kernels: list[SimKernel] = []

    def kernel(root: str) -> SimKernel:
        kernels.append(SimKernel(Path(root), NATIVE))
        return kernels[-1]

    stderr = io.StringIO()
    rc = hook.main(
        [name, "prepare", "begin", "-"],
        io.BytesIO(xml),
        stdout=io.BytesIO(),
        stderr=stderr,
        environ={"HOSTDEV_RESOLVER_CONFIG": str(host.config)},
        writer_factory=kernel,
    )
    # Without /dev/log the hook logs its decisions on stderr too; the rest are refusals.
    log = (f"hostdev-resolver: {name}: ", ": ok: ", ": bound to vfio-pci")
    refusals = [
        line
        for line in stderr.getvalue().splitlines()
        if not (line.startswith(log[0]) and (log[1] in line or log[2] in line))
    ]
    return rc, refusals, kernels


def _no_iommu() -> HostSpec:
    spec = gpu_host(usb_driver=None)
    for pci in spec.pci:
        pci.iommu_group = None
    return spec


CASES = {
    # The IOMMU is off: no group anywhere, vfio cannot take any device.
    "iommu-off": (_no_iommu(), "the IOMMU is off on this host"),
    # The NVMe drive the host runs on shares the GPU's group.
    "group-not-viable": (
        gpu_host(usb_driver=None, nvme_group=31),
        "shares IOMMU group 31 with 0000:42:00.0 (144d:a808), which the host uses with driver nvme",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_verify_refuses_what_the_hook_refuses(case: str, tmp_path: Path) -> None:
    spec, words = CASES[case]
    host = make_host(tmp_path, spec)
    xml = host.resolve(domain_xml("vh", mapped("gpu0") + "\n" + mapped("gpu0-audio")))
    path = tmp_path / "vh.xml"
    path.write_bytes(xml)

    rc, out, _err = _verify(host, path)
    hook_rc, refusals, kernels = _prepare(host, "vh", xml)

    assert (hook_rc, len(refusals), kernels) == (1, 1, [])
    assert words in refusals[0]
    assert rc == 1, out
    lines = out.splitlines()
    assert lines[:2] == [line for line in lines if line.startswith("ok: ")]  # both devices
    # The same refusal, in the same words: the hook's line is "hostdev-resolver: MESSAGE".
    assert lines[2:] == ["REFUSED: " + refusals[0].removeprefix("hostdev-resolver: ")]

    rc, out, _err = _verify(host, path, "--format", "json")
    assert rc == 1
    refused = [f for f in json.loads(out) if not f["ok"]]
    assert len(refused) == 1 and refused[0]["status"] == "refused"
    assert words in refused[0]["message"]

    # --dry-run agrees and prints no writes for a refused start.
    rc, out, _err = _verify(host, path, "--dry-run")
    assert rc == 1 and "sysfs writes" not in out


def test_verify_accepts_what_the_hook_accepts(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("va", mapped("gpu0") + "\n" + mapped("gpu0-audio")))
    path = tmp_path / "va.xml"
    path.write_bytes(xml)
    rc, out, _err = _verify(host, path)
    assert rc == 0 and out.splitlines() == [
        f"ok: gpu0: {GPU} on node hv1 is as expected",
        f"ok: gpu0-audio: {AUDIO} on node hv1 is as expected",
    ]
    hook_rc, refusals, kernels = _prepare(host, "va", xml)
    assert (hook_rc, refusals) == (0, []) and len(kernels[0].writes) == 8


def test_verify_of_a_domain_never_resolved_says_so(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    path = tmp_path / "raw.xml"
    path.write_text(domain_xml("raw", mapped("nvme0")))
    rc, out, err = _verify(host, path)
    assert (rc, err) == (1, "")
    assert out.splitlines() == [
        f"UNRESOLVED: {path}:6: nvme0: the <hostdev> is not resolved (it still carries "
        f"hr:map='nvme0') — resolve the domain first: 'hostdev-resolver resolve {path} -o OUT', "
        f"or define it with 'hostdev-virsh define {path}'"
    ]
    # Resolved, it verifies (the drive is in an IOMMU group of its own).
    path.write_bytes(host.resolve(path.read_text()))
    rc, out, _err = _verify(host, path)
    assert rc == 0, out


def test_verify_from_a_snapshot_sees_the_iommu_off(tmp_path: Path) -> None:
    """Away from the node (`--host SNAPSHOT`), the IOMMU is off when no device has a group."""
    host = make_host(tmp_path, _no_iommu())
    path = tmp_path / "vs.xml"
    path.write_bytes(host.resolve(domain_xml("vs", mapped("nvme0"))))
    assert cli.main(["inventory", "--format", "json", "--sysfs", str(host.root)]) == 0
    snapshot = tmp_path / "hv1.json"
    snapshot.write_text(_captured()[0])
    args = ["verify", str(path), "--store", str(host.store), "--node", "hv1"]
    assert cli.main([*args, "--host", str(snapshot)]) == 1
    out = _captured()[0].splitlines()
    assert out[-1] == (
        "REFUSED: vs: the IOMMU is off on this host (no PCI device has an IOMMU group); PCI "
        "devices cannot be given to guests; enable VT-d/AMD-Vi in the firmware and boot with "
        "intel_iommu=on or amd_iommu=on"
    )
