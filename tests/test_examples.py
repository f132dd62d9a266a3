"""examples/ must keep working: the demo runs, says what it should, and fails when it should.

The demo is run as `make demo` runs it (`sh examples/demo.sh`), from another directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
WORKSTATION = EXAMPLES / "workstation"
VENV_BIN = REPO / ".venv" / "bin"

pytestmark = pytest.mark.skipif(
    not (VENV_BIN / "hostdev-resolver").exists(), reason="the demo needs .venv (make setup)"
)


def run_demo(root: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(root / "examples" / "demo.sh")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return run_demo(REPO, tmp_path_factory.mktemp("elsewhere"))


def section(out: str, number: str) -> str:
    """The text under the heading `=== NUMBER.`, up to the next heading."""
    start = out.index(f"=== {number}. ")
    end = out.find("\n=== ", start + 1)
    return out[start : end if end != -1 else None]


def test_demo_succeeds(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "demo: FAILED" not in demo.stderr
    assert "=== demo finished: all steps behaved as expected" in demo.stdout


def test_inventory_shows_both_gpus_in_their_slots(demo: subprocess.CompletedProcess[str]) -> None:
    text = section(demo.stdout, "1")
    assert "node ws1: 37 PCI functions, 3 USB devices" in text
    for line in (
        "19  0000:07:00.0   [0300] [10de:2204] 1458:403b     0  vfio-pci       slot 1",
        "19  0000:07:00.1   [0403] [10de:1aef] 1458:403b     0  vfio-pci       slot 1",
        "44  0000:41:00.0   [0300] [10de:2204] 1458:403b     0  vfio-pci       slot 3",
    ):
        assert line in text


def test_resolve_diff_shows_the_source_addresses(demo: subprocess.CompletedProcess[str]) -> None:
    text = section(demo.stdout, "2")
    assert "--- ml-train.xml" in text and "+++ ml-train.resolved.xml" in text
    assert "-    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'/>" in text
    assert "+        <address domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>" in text
    assert "+        <address domain='0x0000' bus='0x07' slot='0x00' function='0x1'/>" in text
    assert "+        <address bus='1' device='3'/>" in text
    assert (
        "+    <hr:resolution xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1' node='ws1'>"
        in text
    )
    # Only the mapped hostdevs and the metadata change: comments and other devices stay.
    removed = [
        line for line in text.splitlines() if line.startswith("-") and not line.startswith("---")
    ]
    assert len(removed) == 3 and all("hr:map=" in line for line in removed)


def test_allocation_keeps_gpu_functions_on_one_guest_slot(
    demo: subprocess.CompletedProcess[str],
) -> None:
    text = section(demo.stdout, "2b")
    assert (
        "+      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0' "
        "multifunction='on'/>" in text
    )
    assert (
        "+      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x1'/>" in text
    )
    assert "root ports added: 8" in text


def test_validate_is_clean(demo: subprocess.CompletedProcess[str]) -> None:
    assert "3 file(s) checked, 0 problem(s) in 0 file(s)" in section(demo.stdout, "3")


def test_verify_accepts_on_the_same_host(demo: subprocess.CompletedProcess[str]) -> None:
    text = section(demo.stdout, "4a")
    assert "ok: gpu0: 0000:07:00.0 on node ws1 is as expected" in text
    assert "ok: gpu0-audio: 0000:07:00.1 on node ws1 is as expected" in text
    assert "ok: yubikey-ml: USB 1050:0407 with serial 0016384012 is present on node ws1" in text


def test_verify_refuses_the_shifted_gpu_and_says_where_it_went(
    demo: subprocess.CompletedProcess[str],
) -> None:
    text = section(demo.stdout, "4b")
    shifted = [line for line in text.splitlines() if line.startswith("SHIFTED: ")]
    assert len(shifted) == 2, text
    gpu, audio = shifted
    assert "gpu0: 0000:07:00.0 on node ws1 is 144d:a80c (expected 10de:2204)" in gpu
    assert "the device with identity 10de:2204 in slot 1 is now at 0000:08:00.0" in gpu
    assert "--address 0000:08:00.0" in gpu
    assert "gpu0-audio:" in audio and "is now at 0000:08:00.1" in audio
    assert "ok: yubikey-ml:" in text
    assert "(exit status 1: the hook would refuse to start ml-train, as it should)" in text


def test_resolving_again_follows_the_gpu(demo: subprocess.CompletedProcess[str]) -> None:
    text = section(demo.stdout, "5")
    assert "<address domain='0x0000' bus='0x08' slot='0x00' function='0x0'/>" in text
    # Accepted, since the store's gpu0 (told apart by its slot) is where the domain says,
    # and the store's stale address is pointed out.
    assert (
        "ok: gpu0: 0000:08:00.0 on node ws1 is the mapped device (the store still records "
        "0000:07:00.0; refresh it with 'hostdev-resolver map add pci gpu0 --node ws1 "
        "--address 0000:08:00.0')" in text
    )


def _fake_checkout(tmp_path: Path, verify_shifted_exit: int) -> Path:
    """A checkout whose hostdev-resolver exits `verify_shifted_exit` for the shifted verify."""
    root = tmp_path / "checkout"
    (root / ".venv" / "bin").mkdir(parents=True)
    os.symlink(EXAMPLES, root / "examples")
    os.symlink(REPO / "tests", root / "tests")
    # A symlink to the venv's python would leave the venv (it is found from argv[0]).
    python = root / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{VENV_BIN}/python" "$@"\n')
    python.chmod(0o755)
    wrapper = root / ".venv" / "bin" / "hostdev-resolver"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$1 $*" in\n'
        f'  "verify "*sys-shifted*) "{VENV_BIN}/hostdev-resolver" "$@"; '
        f"exit {verify_shifted_exit} ;;\n"
        "esac\n"
        f'exec "{VENV_BIN}/hostdev-resolver" "$@"\n'
    )
    wrapper.chmod(0o755)
    return root


@pytest.mark.parametrize("code", [0, 2])
def test_demo_fails_when_the_shifted_verify_does_not_refuse(tmp_path: Path, code: int) -> None:
    # The demo expects exactly exit 1 there; acceptance or an error must fail it.
    # `cd "$(dirname "$0")/.."` is logical in sh, so ROOT is the fake checkout even though
    # its examples/ is a symlink to the real one.
    root = _fake_checkout(tmp_path, code)
    result = run_demo(root, tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"verify against the shifted host exited {code}" in result.stderr
    assert "demo finished" not in result.stdout


def _tree(root: Path) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


def test_committed_tree_is_what_host_json_describes(tmp_path: Path) -> None:
    built = tmp_path / "sys"
    subprocess.run(
        [sys.executable, str(EXAMPLES / "make-host-tree"), str(WORKSTATION / "host.json"), built],
        check=True,
    )
    assert _tree(WORKSTATION / "sys") == _tree(built), (
        "examples/workstation/sys is out of date: run examples/make-host-tree --force"
    )


def test_committed_tree_keeps_its_symlinks() -> None:
    link = WORKSTATION / "sys" / "bus" / "pci" / "devices" / "0000:07:00.0"
    assert link.is_symlink()
    assert os.readlink(link) == "../../../devices/pci0000:00/0000:00:03.1/0000:07:00.0"
    group = WORKSTATION / "sys" / "devices/pci0000:00/0000:00:03.1/0000:07:00.0/iommu_group"
    assert group.resolve().name == "19"
