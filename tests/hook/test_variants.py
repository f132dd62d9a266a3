"""vfio variant drivers: the most specific `vfio_pci:` alias wins (libvirt ≥ 10.0), and the
hook binds only what libvirt does not (managed='no'; managed='yes' is libvirt's)."""

from __future__ import annotations

import io
from pathlib import Path

from hostdev_resolver.doors import hook
from hostdev_resolver.host.sysfs import SysfsReader
from hostdev_resolver.host.variants import VariantDrivers
from hostdev_resolver.host.vfio import release
from tests.support.simkernel import SimKernel, pci_state

from .test_sriov_mdev import NATIVE, VF3, Host, _bind

ALIASES = """\
# Aliases extracted from modules themselves.
alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core
alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
alias vfio_pci:v000015B3d*sv*sd*bc*sc*i* fake_vendor_vfio_pci
alias vfio_pci:v000015B3d00001018sv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v000019E5d0000A251sv*sd*bc*sc*i* hisi_acc_vfio_pci
"""
MLX_VF = "pci:v000015B3d00001018sv000015B3sd00000007bc02sc00i00"


def _variants(tmp_path: Path) -> VariantDrivers:
    path = tmp_path / "modules.alias"
    path.write_text(ALIASES)
    return VariantDrivers.load(str(path))


def test_the_most_specific_alias_wins(tmp_path: Path) -> None:
    variants = _variants(tmp_path)
    assert variants.best(MLX_VF) == "mlx5_vfio_pci"
    # Only the vendor matches: the vendor-wide variant beats the generic vfio_pci alias.
    assert variants.best(MLX_VF.replace("d00001018", "d0000FFFF")) == "fake_vendor_vfio_pci"
    # No variant: vfio_pci's own catch-all, under its driver name vfio-pci.
    assert variants.best("pci:v00008086d000015FAsv00000000sd00000000bc02sc00i00") == "vfio-pci"
    assert variants.best(None) == "vfio-pci"
    assert VariantDrivers.load(str(tmp_path / "missing")).best(MLX_VF) == "vfio-pci"
    assert variants.is_vfio_driver("mlx5_vfio_pci") and not variants.is_vfio_driver("mlx5_core")


def _domain(managed: str, driver: str = "") -> str:
    return f"""<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>variant-guest</name>
  <memory unit='MiB'>1024</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <interface type='hostdev' managed='{managed}' hr:map='nic-vf3'>{driver}</interface>
  </devices>
</domain>
"""


def test_unmanaged_vf_is_bound_to_its_variant_and_given_back(tmp_path: Path) -> None:
    host = Host(tmp_path)
    (host.root / "bus/pci/drivers/mlx5_vfio_pci").mkdir()
    doc = host.resolve(_domain("no"))
    from hostdev_resolver.core.vfioplan import plan_binding
    from hostdev_resolver.host.storeread import load_store
    from hostdev_resolver.host.sysfs import SysfsInventory
    from hostdev_resolver.xml.xmldoc import parse_bytes

    plan = plan_binding(
        parse_bytes(doc, "d"),
        load_store(str(host.store)),
        SysfsInventory(host.root),
        _variants(tmp_path),
    )
    assert [(str(c.address), c.vfio_driver) for c in plan.changes] == [(VF3, "mlx5_vfio_pci")]
    before = pci_state(host.root)
    kernel = SimKernel(host.root, NATIVE)
    state = _bind(host, kernel, plan)
    assert kernel.driver_of(VF3) == "mlx5_vfio_pci"
    assert release(state, kernel, SysfsReader(host.root)) == []
    assert pci_state(host.root) == before


def test_managed_yes_is_left_to_libvirt_and_driver_model_is_obeyed(tmp_path: Path) -> None:
    host = Host(tmp_path)
    from hostdev_resolver.core.vfioplan import plan_binding
    from hostdev_resolver.host.storeread import load_store
    from hostdev_resolver.host.sysfs import SysfsInventory
    from hostdev_resolver.xml.xmldoc import parse_bytes

    store = load_store(str(host.store))
    inventory = SysfsInventory(host.root)
    managed = parse_bytes(host.resolve(_domain("yes")), "d")
    assert plan_binding(managed, store, inventory, _variants(tmp_path)).changes == ()
    named = parse_bytes(host.resolve(_domain("no", "<driver model='vfio-pci'/>")), "d")
    (change,) = plan_binding(named, store, inventory, _variants(tmp_path)).changes
    assert change.vfio_driver == "vfio-pci"


def test_hook_reads_modules_alias_from_its_config(tmp_path: Path) -> None:
    host = Host(tmp_path)
    (host.root / "bus/pci/drivers/mlx5_vfio_pci").mkdir()
    (tmp_path / "modules.alias").write_text(ALIASES)
    with host.config.open("a") as config:
        config.write(f"modules_alias = '{tmp_path / 'modules.alias'}'\n")
    xml = host.resolve(_domain("no"))
    err = io.StringIO()
    rc = hook.main(
        ["variant-guest", "prepare", "begin", "-"],
        io.BytesIO(xml),
        stdout=io.BytesIO(),
        stderr=err,
        environ={"HOSTDEV_RESOLVER_CONFIG": str(host.config)},
        writer_factory=lambda root: SimKernel(Path(root), NATIVE),
    )
    assert rc == 0, err.getvalue()
    assert f"{VF3}: bound to mlx5_vfio_pci (was mlx5_core; nic-vf3)" in host.log.read_text()
