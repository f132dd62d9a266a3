"""`bind` / `unbind` by hand read an etcd store as the other commands do; `--boot` never does."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli_main
from tests.clusterstore.conftest import cli
from tests.hook.fixtures import AUDIO, GPU, USB
from tests.hook.test_hostbinding import NATIVE, _mapped_host, _run
from tests.support.simkernel import SimKernel, pci_state


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSTDEV_RESOLVER_STORE", raising=False)


def test_bind_and_unbind_by_hand_read_an_etcd_store(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    cli("store", "import", str(host.store), "--store", url)
    # The hook config still names the file; only etcd knows gpu0 from now on.
    host.store.write_text("<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'/>\n")
    kernel = SimKernel(host.root, NATIVE)

    before = pci_state(host.root)
    assert _run(host, kernel, monkeypatch, "bind", "gpu0", "gpu0-audio", "--store", url) == 0
    out = capsys.readouterr().out
    assert f"gpu0: {GPU} bound to vfio-pci (was nouveau)" in out
    assert [kernel.driver_of(a) for a in (GPU, AUDIO, USB)] == ["vfio-pci"] * 3

    # unbind reads no store, but takes the same --store as bind (it was refused before)
    for name in ("gpu0", "gpu0-audio"):
        assert _run(host, kernel, monkeypatch, "unbind", name, "--store", url) == 0
    assert pci_state(host.root) == before


def test_bind_dry_run_through_the_command_line_and_boot_refuses_a_url(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    cli("store", "import", str(host.store), "--store", url)
    monkeypatch.setenv("HOSTDEV_RESOLVER_CONFIG", str(host.config))
    common = ["--store", url, "--sysfs", str(host.root), "--node", "hv1"]
    capsys.readouterr()
    assert cli_main.main(["bind", "gpu0", "gpu0-audio", "--dry-run", *common]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "IOMMU group 31 (gpu0, gpu0-audio): 8 sysfs writes:"
    # an unreachable etcd is the one-line error of every command (exit 3)
    down = url.rsplit(":", 1)[0] + ":1/p"
    assert cli_main.main(["bind", "gpu0", "--dry-run", "--store", down]) == 3
    assert capsys.readouterr().err.count("\n") == 1
    # At boot the network may not be up: --boot reads the file the hook reads, never etcd.
    assert cli_main.main(["bind", "--boot", *common]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "never etcd" in err
