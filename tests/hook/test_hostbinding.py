"""`bind` / `unbind` / `bind --boot` against a simulated kernel: by identity, all or nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import bind as bindcmd
from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.hostbinding import bound_state
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.xml.store import PciMapping
from tests.support.hosttree import PciSpec
from tests.support.simkernel import SimKernel, pci_state

from .fixtures import AUDIO, GPU, NIC, NVME, USB, Host, gpu_host, make_host

NATIVE: dict[str, str | None] = {
    GPU: "nouveau",
    AUDIO: "snd_hda_intel",
    USB: "xhci_hcd",
    NVME: "nvme",
    NIC: "e1000e",
}
# The same card after a firmware update renumbered its bus: same slot, same root port.
MOVED = "0000:44:00.0"
MOVED_AUDIO, MOVED_USB = "0000:44:00.1", "0000:44:00.2"
MOVED_NATIVE = NATIVE | {MOVED: "nouveau", MOVED_AUDIO: "snd_hda_intel", MOVED_USB: "xhci_hcd"}


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSTDEV_RESOLVER_STORE", raising=False)


def _map_add(host: Host, name: str, address: str, *extra: str) -> None:
    argv = ["map", "add", "pci", name, "--address", address, *extra]
    argv += ["--node", "hv1", "--sysfs", str(host.root), "--store", str(host.store)]
    assert cli.main(argv) == 0


def _mapped_host(base: Path, *, audio: str = "--vfio=boot") -> Host:
    """gpu0 (and, by default, its audio function) marked vfio='boot' by `map add`."""
    host = make_host(base, gpu_host(usb_driver=None))
    host.store.write_text("<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'/>\n")
    _map_add(host, "gpu0", GPU, "--vfio=boot")
    _map_add(host, "gpu0-audio", AUDIO, *([audio] if audio else []))
    _map_add(host, "nvme0", NVME)
    return host


def _moved_host(base: Path, store_from: Host) -> Host:
    host = make_host(base, gpu_host(gpu_at=MOVED, usb_driver=None))
    shutil.copy(store_from.store, host.store)
    return host


def _run(
    host: Host,
    kernel: SimKernel,
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
) -> int:
    monkeypatch.setenv("HOSTDEV_RESOLVER_CONFIG", str(host.config))
    args = cli.build_parser(argv[0]).parse_args(list(argv))
    run = bindcmd.bind if argv[0] == "bind" else bindcmd.unbind
    return run(args, lambda root: kernel)


def test_map_add_vfio_boot_is_recorded_and_plain_vfio_is_still_yes(tmp_path: Path) -> None:
    host = _mapped_host(tmp_path, audio="--vfio")
    text = host.store.read_text()
    assert "<pci name='gpu0' vfio='boot'>" in text
    assert "<pci name='gpu0-audio' vfio='yes'>" in text
    store = load_store(str(host.store))  # the schema takes 'boot'
    gpu, audio, nvme = (store.get(n) for n in ("gpu0", "gpu0-audio", "nvme0"))
    assert isinstance(gpu, PciMapping) and gpu.vfio and gpu.vfio_boot
    assert isinstance(audio, PciMapping) and audio.vfio and not audio.vfio_boot
    assert isinstance(nvme, PciMapping) and not nvme.vfio and not nvme.vfio_boot


def test_vfio_takes_only_start_or_boot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make_host(tmp_path)
    argv = ["map", "add", "pci", "gpu0", "--address", GPU, "--vfio=always"]
    assert cli.main([*argv, "--sysfs", str(host.root), "--store", str(host.store)]) == 2
    assert "invalid choice: 'always'" in capsys.readouterr().err
    vf = ["map", "add", "vf", "v0", "--pf", GPU, "--index", "0", "--vfio=boot"]
    assert cli.main([*vf, "--sysfs", str(host.root), "--store", str(host.store)]) == 2


def test_a_bad_vfio_value_in_the_store_is_refused_by_line(tmp_path: Path) -> None:
    from hostdev_resolver.model.errors import InputError

    path = tmp_path / "m.xml"
    path.write_text(
        "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>\n"
        "  <pci name='g' vfio='later'/>\n</mappings>\n"
    )
    with pytest.raises(InputError, match=r"m.xml:2: vfio='later' must be yes, no or boot"):
        load_store(str(path), schema=False)


def test_bind_boot_follows_a_renumbered_card_by_serial_and_port_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _moved_host(tmp_path / "after", _mapped_host(tmp_path / "before"))
    kernel = SimKernel(host.root, MOVED_NATIVE)

    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 0

    out = capsys.readouterr().out
    assert (
        f"gpu0: no device is at {GPU} on node hv1; the device with serial "
        f"00-11-22-33-44-55-66-77 is now at {MOVED}; following it" in out
    )
    assert f"is now at {MOVED_AUDIO}; following it" in out  # told apart by its port path
    assert [kernel.driver_of(a) for a in (MOVED, MOVED_AUDIO, MOVED_USB)] == ["vfio-pci"] * 3
    assert kernel.driver_of(NVME) == "nvme"  # not marked boot: untouched
    assert f"gpu0: {MOVED} bound to vfio-pci (was nouveau)" in out
    assert f"IOMMU group 31 sibling of gpu0: {MOVED_USB} bound to vfio-pci (was unbound)" in out


def test_a_card_only_its_model_identifies_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Recorded by hand, without serial, slot or port path: resolution would follow the
    # one card of this model left; an unattended boot must not.
    host = make_host(tmp_path, gpu_host(gpu_at=MOVED, usb_driver=None))
    host.store.write_text(
        "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>\n"
        "  <pci name='gpu0' vfio='boot'><node name='hv1' address='0000:41:00.0' "
        "vendor='10de' device='1e84'/></pci>\n</mappings>\n"
    )
    kernel = SimKernel(host.root, MOVED_NATIVE)
    before = pci_state(host.root)
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 1
    err = capsys.readouterr().err
    assert f"is now at {MOVED}; not followed: no serial, slot or port path" in err
    assert f"map add pci gpu0 --node hv1 --address {MOVED}" in err
    assert kernel.writes == [] and pci_state(host.root) == before


def test_a_lookalike_in_another_slot_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The recorded card (slot 3) is gone; a card of the same model sits in slot 5.
    spec = gpu_host(usb_driver=None)
    spec.pci[1].slot = "3"
    before_host = make_host(tmp_path / "before", spec)
    before_host.store.write_text("<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'/>\n")
    _map_add(before_host, "gpu0", GPU, "--vfio=boot")
    other = gpu_host(usb_driver=None)
    other.pci[1].slot = "5"
    host = make_host(tmp_path / "after", other)
    shutil.copy(before_host.store, host.store)
    # GPU now in slot 5 at the same address: same IDs and serial, another slot
    kernel = SimKernel(host.root, NATIVE)
    before = pci_state(host.root)
    assert _run(host, kernel, monkeypatch, "bind", "gpu0") == 1
    err = capsys.readouterr().err
    assert f"gpu0: {GPU} on node hv1 is in slot 5 (expected slot 3)" in err
    assert kernel.writes == [] and pci_state(host.root) == before


def test_a_lookalike_without_serial_behind_another_port_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A NIC mapped by its port path; the host now has the same model behind another port.
    spec = gpu_host(usb_driver=None)
    spec.pci.append(PciSpec("0000:50:01.0", "1022", "1483", klass="060400", driver="pcieport"))
    before_host = make_host(tmp_path / "before", spec)
    before_host.store.write_text("<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'/>\n")
    _map_add(before_host, "nic0", NIC, "--vfio=boot")
    moved = gpu_host(usb_driver=None)
    moved.pci = [p for p in moved.pci if p.address != NIC]
    moved.pci.append(PciSpec("0000:50:01.0", "1022", "1483", klass="060400", driver="pcieport"))
    nic = PciSpec("0000:51:00.0", "8086", "10d3", "8086", "a01f", "020000", 33, 0, "e1000e")
    nic.upstream = "0000:50:01.0"
    moved.pci.append(nic)
    host = make_host(tmp_path / "after", moved)
    shutil.copy(before_host.store, host.store)
    kernel = SimKernel(host.root, NATIVE | {"0000:51:00.0": "e1000e"})
    assert _run(host, kernel, monkeypatch, "bind", "nic0") == 1
    err = capsys.readouterr().err
    assert f"nic0: no device is at {NIC} on node hv1" in err
    assert "a device with the same IDs is at 0000:51:00.0 behind another port" in err
    assert kernel.writes == []


def test_a_missing_device_is_refused_and_the_others_are_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    text = host.store.read_text().replace("<pci name='nvme0'>", "<pci name='nvme0' vfio='boot'>")
    host.store.write_text(text)
    spec = gpu_host(usb_driver=None)
    spec.pci = [p for p in spec.pci if p.address != NVME]
    gone = make_host(tmp_path / "gone", spec)
    shutil.copy(host.store, gone.store)
    kernel = SimKernel(gone.root, NATIVE)
    assert _run(gone, kernel, monkeypatch, "bind", "--boot") == 1
    err = capsys.readouterr().err
    assert f"nvme0: no device is at {NVME} on node hv1" in err and "not bound" in err
    assert [kernel.driver_of(a) for a in (GPU, AUDIO, USB)] == ["vfio-pci"] * 3


def test_a_sibling_the_host_uses_refuses_the_whole_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path, audio="")  # the audio function stays with snd_hda_intel
    kernel = SimKernel(host.root, NATIVE)
    before = pci_state(host.root)
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 1
    err = capsys.readouterr().err
    assert f"gpu0: {GPU} shares IOMMU group 31 with {AUDIO} (10de:10f8)" in err
    assert "driver snd_hda_intel; refusing to take it away" in err
    assert kernel.writes == [] and pci_state(host.root) == before
    # Named together by hand, both go.
    assert _run(host, kernel, monkeypatch, "bind", "gpu0", "gpu0-audio") == 0
    assert kernel.driver_of(AUDIO) == "vfio-pci"


def _expected_writes() -> list[str]:
    return [
        f"echo 'vfio-pci' > {{root}}/bus/pci/devices/{GPU}/driver_override",
        f"echo '{GPU}' > {{root}}/bus/pci/drivers/nouveau/unbind",
        f"echo '{GPU}' > {{root}}/bus/pci/drivers_probe",
        f"echo 'vfio-pci' > {{root}}/bus/pci/devices/{AUDIO}/driver_override",
        f"echo '{AUDIO}' > {{root}}/bus/pci/drivers/snd_hda_intel/unbind",
        f"echo '{AUDIO}' > {{root}}/bus/pci/drivers_probe",
        f"echo 'vfio-pci' > {{root}}/bus/pci/devices/{USB}/driver_override",
        f"echo '{USB}' > {{root}}/bus/pci/drivers_probe",
    ]


def test_dry_run_prints_the_exact_writes_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    kernel = SimKernel(host.root, NATIVE)
    before = pci_state(host.root)
    capsys.readouterr()
    assert _run(host, kernel, monkeypatch, "bind", "--boot", "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "IOMMU group 31 (gpu0, gpu0-audio): 8 sysfs writes:"
    shown = [line.strip().split("    #")[0] for line in lines[1:]]
    assert shown == [w.format(root=host.root) for w in _expected_writes()]
    assert kernel.writes == [] and pci_state(host.root) == before
    assert not bound_state(str(host.state)).path.exists()
    # ... and they are the writes a real run makes.
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 0
    assert [w.render(host.root).split("    #")[0] for w in kernel.writes] == shown


def test_a_fault_at_every_write_leaves_the_host_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    before = pci_state(host.root)
    for index in range(len(_expected_writes())):
        kernel = SimKernel(host.root, NATIVE, fail_at=index)
        assert _run(host, kernel, monkeypatch, "bind", "--boot") == 3, index
        step = kernel.writes[index].step
        assert f"at step '{step}'" in capsys.readouterr().err, index
        assert pci_state(host.root) == before, f"fault at write {index} ({step})"
        assert bound_state(str(host.state)).load() == [], index


def test_the_original_drivers_are_recorded_before_the_first_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _mapped_host(tmp_path)
    state = bound_state(str(host.state))
    seen: list[list[str | None]] = []

    class Watching(SimKernel):
        def write(self, write: object) -> None:
            if not self.writes:
                seen.append([c.driver for c in state.load()])
            super().write(write)  # type: ignore[arg-type]

    assert _run(host, Watching(host.root, NATIVE), monkeypatch, "bind", "--boot") == 0
    assert seen == [["nouveau", "snd_hda_intel", None]]


def test_unbind_gives_back_the_recorded_drivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    before = pci_state(host.root)
    kernel = SimKernel(host.root, NATIVE)
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 0
    capsys.readouterr()

    # gpu0 and the sibling bound with it go back; gpu0-audio stays until asked.
    assert _run(host, kernel, monkeypatch, "unbind", "gpu0") == 0
    out = capsys.readouterr().out
    assert f"gpu0: {GPU} given back to nouveau (gpu0)" in out
    assert f"gpu0: {USB} given back to no driver (IOMMU group 31 sibling of gpu0)" in out
    assert [kernel.driver_of(a) for a in (GPU, AUDIO, USB)] == ["nouveau", "vfio-pci", None]
    assert _run(host, kernel, monkeypatch, "unbind", "gpu0-audio") == 0
    assert pci_state(host.root) == before
    assert not bound_state(str(host.state)).path.exists()
    # Nothing left: a second unbind says so and succeeds.
    assert _run(host, kernel, monkeypatch, "unbind", "gpu0") == 0
    assert "nothing bound by 'hostdev-resolver bind'" in capsys.readouterr().out


def test_unbind_dry_run_prints_the_restore_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    kernel = SimKernel(host.root, NATIVE)
    assert _run(host, kernel, monkeypatch, "bind", "gpu0", "gpu0-audio") == 0
    capsys.readouterr()
    bound = pci_state(host.root)
    writes = len(kernel.writes)
    assert _run(host, kernel, monkeypatch, "unbind", "gpu0-audio", "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "gpu0-audio: 3 sysfs writes:"
    shown = [line.strip().split("    #")[0] for line in lines[1:]]
    assert shown == [
        f"echo > {host.root}/bus/pci/devices/{AUDIO}/driver_override",
        f"echo '{AUDIO}' > {host.root}/bus/pci/drivers/vfio-pci/unbind",
        f"echo '{AUDIO}' > {host.root}/bus/pci/drivers_probe",
    ]
    assert len(kernel.writes) == writes and pci_state(host.root) == bound


def test_unbind_refuses_while_a_guest_holds_the_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    kernel = SimKernel(host.root, NATIVE)
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 0
    proc = tmp_path / "proc"
    (proc / "4242" / "fd").mkdir(parents=True)
    (proc / "4242" / "comm").write_text("qemu-system-x86\n")
    os.symlink("/dev/vfio/31", proc / "4242" / "fd" / "27")
    bound = pci_state(host.root)
    writes = len(kernel.writes)
    assert _run(host, kernel, monkeypatch, "unbind", "gpu0", "--proc", str(proc)) == 1
    assert "IOMMU group 31 is open by 4242 (qemu-system-x86)" in capsys.readouterr().err
    assert len(kernel.writes) == writes and pci_state(host.root) == bound


def test_a_second_bind_keeps_the_true_originals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _mapped_host(tmp_path)
    before = pci_state(host.root)
    kernel = SimKernel(host.root, NATIVE)
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 0
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 0
    assert "gpu0: 0000:41:00.0 is on vfio-pci already" in capsys.readouterr().out
    assert _run(host, kernel, monkeypatch, "unbind", "gpu0", "gpu0-audio") == 0
    assert pci_state(host.root) == before


def test_boot_without_a_store_or_marked_mappings_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = make_host(tmp_path)  # the fixture store marks nothing vfio='boot'
    kernel = SimKernel(host.root, NATIVE)
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 0
    assert "no mapping in" in capsys.readouterr().out
    host.store.unlink()
    assert _run(host, kernel, monkeypatch, "bind", "--boot") == 0
    assert f"no mapping store at {host.store}" in capsys.readouterr().out
    assert kernel.writes == []
    # By hand, a missing store is an error.
    assert _run_main(host, monkeypatch, "bind", "gpu0") == 2


def _run_main(host: Host, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setenv("HOSTDEV_RESOLVER_CONFIG", str(host.config))
    return cli.main(list(argv))


def test_usage_and_unknown_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = make_host(tmp_path)
    assert _run_main(host, monkeypatch, "bind") == 2
    assert _run_main(host, monkeypatch, "bind", "gpu0", "--boot") == 2
    assert _run_main(host, monkeypatch, "bind", "nope") == 2
    assert "no mapping named 'nope'" in capsys.readouterr().err
    assert _run_main(host, monkeypatch, "bind", "gpu0", "--node", "hv9") == 1
    assert "mapping 'gpu0' has no entry for node 'hv9'" in capsys.readouterr().err
    # By hand an etcd store is read (tests/clusterstore/test_bind_etcd.py); at boot never.
    assert _run_main(host, monkeypatch, "bind", "--boot", "--store", "etcd://h:1/p") == 2


def test_boot_implies_start_the_hook_binds_a_boot_mapping_too(tmp_path: Path) -> None:
    from hostdev_resolver.core.vfioplan import plan_binding
    from hostdev_resolver.host.sysfs import SysfsInventory
    from hostdev_resolver.xml.xmldoc import parse_bytes

    from .fixtures import domain_xml, mapped

    host = _mapped_host(tmp_path)
    # managed='yes' leaves a device to libvirt, unless its mapping asks the hook (vfio).
    xml = domain_xml("v", mapped("gpu0", managed="yes") + "\n" + mapped("gpu0-audio"))
    doc = parse_bytes(host.resolve(xml), "v.xml")
    plan = plan_binding(doc, load_store(str(host.store)), SysfsInventory(host.root))
    assert [str(c.address) for c in plan.changes] == [GPU, AUDIO, USB]


def test_map_add_again_marks_an_existing_mapping(tmp_path: Path) -> None:
    host = _mapped_host(tmp_path, audio="--vfio")
    _map_add(host, "gpu0-audio", AUDIO, "--vfio=boot")
    audio = load_store(str(host.store)).get("gpu0-audio")
    assert isinstance(audio, PciMapping) and audio.vfio_boot
    _map_add(host, "gpu0-audio", AUDIO, "--vfio=start")
    audio = load_store(str(host.store)).get("gpu0-audio")
    assert isinstance(audio, PciMapping) and audio.vfio and not audio.vfio_boot
