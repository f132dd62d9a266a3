"""SR-IOV VFs and mediated devices at start: mdev creation inside the same all-or-nothing
transaction as vfio binding, release removing only what the hook created (issue 14)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from hostdev_resolver.core.resolution import resolve_domain
from hostdev_resolver.core.vfioplan import BindingPlan, SysfsWrite, plan_binding
from hostdev_resolver.doors import hook
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.host.sysfs import SysfsInventory, SysfsReader
from hostdev_resolver.host.vfio import StateFile, bind_plan
from hostdev_resolver.model.errors import HostAccessError
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.support.hosttree import HostSpec, HostTree
from tests.support.simkernel import SimKernel, mdev_state, pci_state

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
VF3 = "0000:3b:00.5"
VGPU0 = "4b20d080-1b54-4048-85b3-a6a62d165c01"
POOL = "0c5e7a2b-9d41-4f3e-8b6a-1e2d3c4b5a69"
NATIVE: dict[str, str | None] = {VF3: "mlx5_core"}

DOMAIN = """<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>vgpu-guest</name>
  <memory unit='MiB'>1024</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <interface type='hostdev' managed='no' hr:map='nic-vf3'><mac address='52:54:00:00:00:03'/></interface>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci' hr:map='vgpu0'/>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci' hr:map='vgpu-pool'/>
  </devices>
</domain>
"""


class Host:
    def __init__(self, base: Path, spec: HostSpec | None = None) -> None:
        self.root = base / "sys"
        self.tree = HostTree.build(
            self.root, spec or HostSpec.load(GOLDEN / "hosts" / "sriov.json")
        )
        (self.root / "bus" / "pci" / "drivers" / "vfio-pci").mkdir(exist_ok=True)
        self.store = base / "mappings.xml"
        shutil.copy(GOLDEN / "stores" / "sriov.xml", self.store)
        self.state = base / "state"
        self.config = base / "hook.toml"
        self.log = base / "hook.log"
        self.config.write_text(
            f"store = '{self.store}'\nnode = 'hv1'\nsysfs = '{self.root}'\n"
            f"state_dir = '{self.state}'\ntrust_any_owner = true\n"
            f"log_file = '{self.log}'\nsyslog = false\n"
        )

    def resolve(self, xml: str = DOMAIN) -> bytes:
        doc = parse_bytes(xml.encode(), "domain.xml")
        store = load_store(str(self.store), schema=False)
        return resolve_domain(doc, store, SysfsInventory(self.root), "hv1").data

    def plan(self, xml: bytes) -> BindingPlan:
        doc = parse_bytes(xml, "domain.xml")
        return plan_binding(doc, load_store(str(self.store)), SysfsInventory(self.root))

    def state_now(self) -> dict[str, object]:
        return pci_state(self.root) | mdev_state(self.root)


def _bind(host: Host, kernel: SimKernel, plan: BindingPlan) -> StateFile:
    state = StateFile(host.state, plan.domain)
    bind_plan(plan, kernel, SysfsReader(host.root), state)
    return state


def test_plan_creates_mdevs_first_then_binds_the_unmanaged_vf(tmp_path: Path) -> None:
    host = Host(tmp_path)
    plan = host.plan(host.resolve())
    assert [w.step for w in plan.writes()] == [
        f"create mdev {VGPU0} (nvidia-222) on 0000:41:00.0",
        f"create mdev {POOL} (nvidia-230) on 0000:42:00.0",
        f"set driver_override of {VF3} to vfio-pci",
        f"unbind {VF3} from mlx5_core",
        f"probe {VF3} (binds vfio-pci)",
    ]
    assert plan.writes()[0] == SysfsWrite(
        "bus/pci/devices/0000:41:00.0/mdev_supported_types/nvidia-222/create",
        VGPU0,
        f"create mdev {VGPU0} (nvidia-222) on 0000:41:00.0",
    )


def test_a_fault_at_every_write_leaves_no_mdev_and_no_device_bound(tmp_path: Path) -> None:
    host = Host(tmp_path)
    plan = host.plan(host.resolve())
    writes = plan.writes()
    before = host.state_now()
    for index, write in enumerate(writes):
        kernel = SimKernel(host.root, NATIVE, fail_at=index)
        with pytest.raises(HostAccessError) as caught:
            _bind(host, kernel, plan)
        assert f"at step '{write.step}'" in caught.value.message, index
        assert host.state_now() == before, f"fault at write {index} ({write.step})"
        assert not StateFile(host.state, plan.domain).path.exists(), index
    # ...and without a fault the same plan goes through and is given back whole.
    kernel = SimKernel(host.root, NATIVE)
    state = _bind(host, kernel, plan)
    assert sorted(mdev_state(host.root)["mdevs"]) == sorted([VGPU0, POOL])  # type: ignore[arg-type]
    assert kernel.driver_of(VF3) == "vfio-pci"
    from hostdev_resolver.host.vfio import release

    assert release(state, kernel, SysfsReader(host.root)) == []
    assert host.state_now() == before
    assert not state.path.exists()


def test_a_full_type_at_create_time_undoes_the_first_mdev(tmp_path: Path) -> None:
    # Another guest took the last nvidia-230 instance between the check and the start.
    host = Host(tmp_path)
    plan = host.plan(host.resolve())
    (host.root / "bus/pci/devices/0000:42:00.0/mdev_supported_types/nvidia-230").joinpath(
        "available_instances"
    ).write_text("0\n")
    before = host.state_now()
    with pytest.raises(HostAccessError, match=f"create mdev {POOL}.*No space left"):
        _bind(host, SimKernel(host.root, NATIVE), plan)
    assert host.state_now() == before


def test_an_existing_mdev_is_used_and_left_alone(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.tree.add_mdev("0000:41:00.0", "nvidia-222", VGPU0)  # defined with mdevctl
    plan = host.plan(host.resolve())
    assert [m.uuid for m in plan.mdevs] == [POOL]
    kernel = SimKernel(host.root, NATIVE)
    state = _bind(host, kernel, plan)
    assert [m.uuid for m in state.load_mdevs()] == [POOL]
    from hostdev_resolver.host.vfio import release

    assert release(state, kernel, SysfsReader(host.root)) == []
    assert mdev_state(host.root)["mdevs"] == [VGPU0]


def test_hook_prepare_creates_and_release_removes_only_its_own(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.tree.add_mdev("0000:41:00.0", "nvidia-222", VGPU0)
    xml = host.resolve()
    before = host.state_now()
    kernels: list[SimKernel] = []

    def run(op: str, subop: str) -> tuple[int, str]:
        err = io.StringIO()

        def factory(root: str) -> SimKernel:
            kernels.append(SimKernel(Path(root), NATIVE))
            return kernels[-1]

        rc = hook.main(
            ["vgpu-guest", op, subop, "-"],
            io.BytesIO(xml),
            stdout=io.BytesIO(),
            stderr=err,
            environ={"HOSTDEV_RESOLVER_CONFIG": str(host.config)},
            writer_factory=factory,
        )
        return rc, err.getvalue() + (host.log.read_text() if host.log.exists() else "")

    rc, log = run("prepare", "begin")
    assert rc == 0, log
    assert f"vgpu-pool: created mdev {POOL} (nvidia-230) on 0000:42:00.0" in log
    assert sorted(mdev_state(host.root)["mdevs"]) == sorted([VGPU0, POOL])  # type: ignore[arg-type]
    rc, log = run("release", "end")
    assert rc == 0, log
    assert host.state_now() == before  # VGPU0 (not ours) is still there, POOL is gone


def test_prepare_refuses_when_the_type_is_full_naming_parents_with_room(tmp_path: Path) -> None:
    host = Host(tmp_path)
    xml = host.resolve()
    for parent in ("0000:41:00.0", "0000:42:00.0"):
        (host.root / f"bus/pci/devices/{parent}/mdev_supported_types/nvidia-230").joinpath(
            "available_instances"
        ).write_text("0\n")
    err = io.StringIO()
    rc = hook.main(
        ["vgpu-guest", "prepare", "begin", "-"],
        io.BytesIO(xml),
        stdout=io.BytesIO(),
        stderr=err,
        environ={"HOSTDEV_RESOLVER_CONFIG": str(host.config)},
        writer_factory=lambda root: SimKernel(Path(root), NATIVE),
    )
    assert rc == 1
    line = next(x for x in err.getvalue().splitlines() if "vgpu-pool" in x)
    assert (
        "type nvidia-230 does not exist and its parents 0000:41:00.0 (available_instances 0)"
        in line
    )
    assert "no other parent on this host has room for nvidia-230" in line
    assert mdev_state(host.root)["mdevs"] == []


def test_simulated_kernel_refuses_a_duplicate_uuid(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.tree.add_mdev("0000:41:00.0", "nvidia-222", VGPU0)
    kernel = SimKernel(host.root, NATIVE)
    with pytest.raises(HostAccessError, match="File exists"):
        kernel.write(
            SysfsWrite(
                "bus/pci/devices/0000:42:00.0/mdev_supported_types/nvidia-222/create", VGPU0, "c"
            )
        )


def test_hook_warns_about_a_device_without_reset_and_refuses_it_when_required(
    tmp_path: Path,
) -> None:
    host = Host(tmp_path)
    text = host.store.read_text().replace(
        "</mappings>",
        "  <pci name='nic0'>\n    <node name='hv1' address='0000:00:1f.6' vendor='8086' "
        "device='15fa' class='020000' iommu-group='12'/>\n  </pci>\n</mappings>",
    )
    host.store.write_text(text)
    xml = host.resolve(
        DOMAIN.replace(
            "<interface type='hostdev' managed='no' hr:map='nic-vf3'><mac address='52:54:00:00:00:03'/></interface>",
            "<hostdev mode='subsystem' type='pci' managed='yes' hr:map='nic0'/>",
        )
    )

    def prepare() -> tuple[int, str]:
        err = io.StringIO()
        rc = hook.main(
            ["vgpu-guest", "prepare", "begin", "-"],
            io.BytesIO(xml),
            stdout=io.BytesIO(),
            stderr=err,
            environ={"HOSTDEV_RESOLVER_CONFIG": str(host.config)},
            writer_factory=lambda root: SimKernel(Path(root), NATIVE),
        )
        return rc, err.getvalue() + (host.log.read_text() if host.log.exists() else "")

    rc, log = prepare()
    assert rc == 0, log
    assert "warning: nic0: 0000:00:1f.6 on node hv1 has no reset method" in log
    assert (
        hook.main(  # give the mdevs back before the second start
            ["vgpu-guest", "release", "end", "-"],
            io.BytesIO(xml),
            stdout=io.BytesIO(),
            stderr=io.StringIO(),
            environ={"HOSTDEV_RESOLVER_CONFIG": str(host.config)},
            writer_factory=lambda root: SimKernel(Path(root), NATIVE),
        )
        == 0
    )
    host.store.write_text(
        text.replace("<pci name='nic0'>", "<pci name='nic0' require-reset='yes'>")
    )
    rc, log = prepare()
    assert rc == 1
    assert "nic0: 0000:00:1f.6 on node hv1 has no reset method" in log
    assert "map it again without --require-reset" in log
    assert mdev_state(host.root)["mdevs"] == []  # refused before anything was created
