"""Rules of libvirt 9.0 the allocator follows that a golden case shows poorly: the
NUMA nodeset syntax, the implicit allocation of hostdev-virsh for machines the
allocator does not model, and messages that always name a line."""

from __future__ import annotations

import pytest

from hostdev_resolver.core.allocation import (
    UnmodeledMachineError,
    allocate_domain_xml,
)
from hostdev_resolver.core.allocation.domainio import read_domain
from hostdev_resolver.doors.wrapper import Session, _allocate
from hostdev_resolver.model.errors import HostdevError, InputError

NUMA = """<domain type='qemu'>
  <name>numa</name>
  <memory unit='KiB'>524288</memory>
  <vcpu>2</vcpu>
  <numatune>
    <memnode cellid='0' mode='strict' nodeset='{nodeset}'/>
  </numatune>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <cpu><numa><cell id='0' cpus='0-1' memory='524288' unit='KiB'/></numa></cpu>
  <devices/>
</domain>
"""


@pytest.mark.parametrize(
    ("nodeset", "nodes"),
    [
        ("1-2,5-7,^6", {1, 2, 5, 7}),  # libvirt's own test-suite spelling
        ("0-7,^2-3", {0, 1, 4, 5, 6, 7}),
        ("3", {3}),
        ("^1,0-2", {0, 1, 2}),  # in order, as virBitmapParse applies them
    ],
)
def test_nodesets_with_exclusions(nodeset: str, nodes: set[int]) -> None:
    domain = read_domain(NUMA.format(nodeset=nodeset).encode(), "numa.xml").domain
    assert domain.cell_host_nodes == ((0, frozenset(nodes)),)


def test_bad_nodeset_names_its_line() -> None:
    with pytest.raises(InputError) as bad:
        read_domain(NUMA.format(nodeset="1-x").encode(), "numa.xml")
    assert bad.value.message.startswith("numa.xml:6: nodeset '1-x'")


AARCH64 = b"""<domain type='qemu'>
  <name>arm</name>
  <memory unit='KiB'>131072</memory>
  <os><type arch='aarch64' machine='virt'>hvm</type></os>
  <devices><interface type='user'><model type='virtio'/></interface></devices>
</domain>
"""


def _session(policy: str) -> Session:
    return Session(None, "test:///default", {"--policy": policy}, True)


def test_wrapper_leaves_unmodelled_machines_to_libvirt(capsys: pytest.CaptureFixture[str]) -> None:
    assert _allocate(AARCH64, "arm.xml", _session("libvirt")) == AARCH64
    assert "architecture 'aarch64' is not modelled" in capsys.readouterr().err


def test_tuned_policy_refuses_unmodelled_machines() -> None:
    with pytest.raises(UnmodeledMachineError) as refused:
        _allocate(AARCH64, "arm.xml", _session("tuned"))
    assert refused.value.message.startswith("arm.xml:4: architecture 'aarch64' is not modelled")
    assert "virtio-mmio" in refused.value.message  # says what modelling it would need


@pytest.mark.parametrize(
    "devices",
    [
        # every function of bus 0 taken by hand, then one more device wanting a slot
        "".join(
            f"<interface type='user'><model type='rtl8139'/><address type='pci' domain='0' "
            f"bus='0' slot='{s}' function='0'/></interface>"
            for s in range(2, 32)
        )
        + "<interface type='user'><model type='rtl8139'/></interface>",
        "<controller type='pci' index='0' model='pci-root'/>"
        "<controller type='pci' index='1' model='pci-bridge'>"
        "<address type='pci' domain='0' bus='1' slot='1' function='0'/></controller>",
    ],
)
def test_refusals_name_a_line(devices: str) -> None:
    xml = (
        "<domain type='qemu'>\n<name>x</name>\n<memory>131072</memory>\n"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
        f"<devices>\n{devices}\n</devices>\n</domain>\n"
    )
    with pytest.raises(HostdevError) as refused:
        allocate_domain_xml(xml.encode(), "x.xml")
    assert refused.value.message.startswith("x.xml:"), refused.value.message
    assert refused.value.where.line is not None
