"""vfio-pci binding against a simulated kernel: plans, exact writes, restore, fault injection."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.core.vfioplan import BindingPlan, SysfsWrite, plan_binding, planned_writes
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.host.sysfs import SysfsInventory, SysfsReader
from hostdev_resolver.host.vfio import StateFile, bind_plan, release
from hostdev_resolver.model.errors import HostAccessError, RefusedError
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.support.simkernel import SimKernel, pci_state

from .fixtures import AUDIO, GPU, NVME, USB, Host, domain_xml, gpu_host, make_host, mapped

NATIVE: dict[str, str | None] = {
    GPU: "nouveau",
    AUDIO: "snd_hda_intel",
    USB: "xhci_hcd",
    NVME: "nvme",
}


def _plan(host: Host, hostdevs: str) -> BindingPlan:
    doc = parse_bytes(host.resolve(domain_xml("hook-v", hostdevs)), "hook-v.xml")
    store = load_store(str(host.store), schema=False)
    return plan_binding(doc, store, SysfsInventory(host.root))


def _gpu_and_audio(host: Host) -> BindingPlan:
    return _plan(host, mapped("gpu0") + "\n" + mapped("gpu0-audio"))


def test_group_with_a_host_used_sibling_is_refused_by_name(tmp_path: Path) -> None:
    host = make_host(tmp_path)  # 41:00.2 is on xhci_hcd and not given to the guest
    with pytest.raises(RefusedError) as caught:
        _gpu_and_audio(host)
    assert f"shares IOMMU group 31 with {USB} (10de:1ad8)" in caught.value.message
    assert "driver xhci_hcd; refusing to take it away" in caught.value.message


def test_storage_in_the_group_is_refused_never_unbound(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(nvme_group=31, usb_driver=None))
    with pytest.raises(RefusedError) as caught:
        _gpu_and_audio(host)
    assert f"{NVME} (144d:a808), which the host uses with driver nvme" in caught.value.message


def test_plan_binds_unmanaged_devices_and_unbound_siblings_but_not_the_bridge(
    tmp_path: Path,
) -> None:
    plan = _gpu_and_audio(make_host(tmp_path, gpu_host(usb_driver=None)))
    assert [(str(c.address), c.driver) for c in plan.changes] == [
        (GPU, "nouveau"),
        (AUDIO, "snd_hda_intel"),
        (USB, None),
    ]


def test_managed_yes_leaves_the_device_to_libvirt_but_binds_its_siblings(
    tmp_path: Path,
) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    # gpu0-audio is not vfio='yes' in the store and managed='yes': libvirt detaches it.
    plan = _plan(host, mapped("gpu0") + "\n" + mapped("gpu0-audio", managed="yes"))
    assert [str(c.address) for c in plan.changes] == [GPU, USB]
    # The GPU is a sibling the host uses (nouveau), so the audio function alone is refused.
    with pytest.raises(RefusedError, match=f"with {GPU} .* driver nouveau"):
        _plan(host, mapped("gpu0-audio", managed="yes"))


def test_vfio_yes_in_the_store_binds_even_a_managed_device(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    plan = _plan(host, mapped("gpu0", managed="yes") + "\n" + mapped("gpu0-audio"))
    assert [str(c.address) for c in plan.changes] == [GPU, AUDIO, USB]


def test_no_iommu_is_refused(tmp_path: Path) -> None:
    spec = gpu_host(usb_driver=None)
    for pci in spec.pci:
        pci.iommu_group = None
    host = make_host(tmp_path, spec)
    with pytest.raises(RefusedError, match="the IOMMU is off on this host"):
        _gpu_and_audio(host)


def test_dry_run_prints_the_exact_writes(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    doc = parse_bytes(
        host.resolve(domain_xml("hook-v", mapped("gpu0") + "\n" + mapped("gpu0-audio"))), "d"
    )
    lines = planned_writes(doc, load_store(str(host.store)), SysfsInventory(host.root), "/sys")
    assert [line.split("    #")[0] for line in lines] == [
        f"echo 'vfio-pci' > /sys/bus/pci/devices/{GPU}/driver_override",
        f"echo '{GPU}' > /sys/bus/pci/drivers/nouveau/unbind",
        f"echo '{GPU}' > /sys/bus/pci/drivers_probe",
        f"echo 'vfio-pci' > /sys/bus/pci/devices/{AUDIO}/driver_override",
        f"echo '{AUDIO}' > /sys/bus/pci/drivers/snd_hda_intel/unbind",
        f"echo '{AUDIO}' > /sys/bus/pci/drivers_probe",
        f"echo 'vfio-pci' > /sys/bus/pci/devices/{USB}/driver_override",
        f"echo '{USB}' > /sys/bus/pci/drivers_probe",
    ]


def _bind(host: Host, kernel: SimKernel, plan: BindingPlan) -> StateFile:
    state = StateFile(host.state, plan.domain)
    bind_plan(plan, kernel, SysfsReader(host.root), state)
    return state


def test_bind_then_release_gives_every_device_back(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    plan = _gpu_and_audio(host)
    before = pci_state(host.root)
    kernel = SimKernel(host.root, NATIVE)

    state = _bind(host, kernel, plan)

    assert kernel.writes == plan.writes()
    assert [kernel.driver_of(a) for a in (GPU, AUDIO, USB)] == ["vfio-pci"] * 3
    assert [str(c.address) for c in state.load()] == [GPU, AUDIO, USB]
    problems = release(state, kernel, SysfsReader(host.root))
    assert problems == []
    assert pci_state(host.root) == before
    assert not state.path.exists()
    # The unbound USB function stays unbound: no probe that would hand it to xhci_hcd.
    assert kernel.writes[len(plan.writes()) :] == [
        SysfsWrite(
            f"bus/pci/devices/{USB}/driver_override", "\n", f"restore driver_override of {USB}"
        ),
        SysfsWrite("bus/pci/drivers/vfio-pci/unbind", USB, f"unbind {USB} from vfio-pci"),
        *kernel.writes[len(plan.writes()) + 2 :],
    ]
    assert len(kernel.writes) == len(plan.writes()) + 2 + 3 + 3


def test_the_original_drivers_are_on_disk_before_the_first_write(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    plan = _gpu_and_audio(host)
    seen: list[str] = []

    class Watching(SimKernel):
        def write(self, write: SysfsWrite) -> None:
            if not self.writes:
                seen.append(StateFile(host.state, plan.domain).path.read_text())
            super().write(write)

    _bind(host, Watching(host.root, NATIVE), plan)
    assert '"driver": "nouveau"' in seen[0] and '"driver": "snd_hda_intel"' in seen[0]


def test_a_fault_at_every_write_leaves_the_tree_exactly_as_before(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    plan = _gpu_and_audio(host)
    writes = plan.writes()
    assert len(writes) == 8
    before = pci_state(host.root)
    for index, write in enumerate(writes):
        kernel = SimKernel(host.root, NATIVE, fail_at=index)
        with pytest.raises(HostAccessError) as caught:
            _bind(host, kernel, plan)
        assert f"at step '{write.step}'" in caught.value.message, index
        assert caught.value.exit_code == 3
        assert pci_state(host.root) == before, f"fault at write {index} ({write.step})"
        assert not StateFile(host.state, plan.domain).path.exists(), index


def test_probe_that_does_not_reach_vfio_pci_is_undone(tmp_path: Path) -> None:
    # vfio-pci not loaded: with driver_override set, drivers_probe binds nothing.
    host = make_host(tmp_path, gpu_host(usb_driver=None), vfio_loaded=False)
    plan = _gpu_and_audio(host)
    before = pci_state(host.root)
    with pytest.raises(HostAccessError, match="left it on driver none, not vfio-pci"):
        _bind(host, SimKernel(host.root, NATIVE), plan)
    assert pci_state(host.root) == before


def test_a_second_start_without_release_keeps_the_true_originals(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    plan = _gpu_and_audio(host)
    before = pci_state(host.root)
    kernel = SimKernel(host.root, NATIVE)
    state = _bind(host, kernel, plan)
    # libvirtd crashed; the guest is started again: everything is on vfio-pci already.
    again = _gpu_and_audio(host)
    assert again.changes == ()
    _bind(host, kernel, again)
    assert release(state, kernel, SysfsReader(host.root)) == []
    assert pci_state(host.root) == before
