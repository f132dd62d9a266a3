"""The vfio plan is the core's: it asks an inventory value, never the host itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.core.variants import VfioVariants
from hostdev_resolver.core.vfioplan import plan_binding
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.model.errors import RefusedError
from hostdev_resolver.model.inventory import IndexedInventory
from hostdev_resolver.model.records import replace
from hostdev_resolver.xml.xmldoc import parse_bytes

from .fixtures import AUDIO, GPU, USB, domain_xml, gpu_host, make_host, mapped


def test_the_plan_from_a_value_is_the_plan_from_sysfs(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    doc = parse_bytes(
        host.resolve(domain_xml("v", mapped("gpu0") + "\n" + mapped("gpu0-audio"))), "v.xml"
    )
    store = load_store(str(host.store), schema=False)
    sysfs = SysfsInventory(host.root)
    value = IndexedInventory("hv1", tuple(sysfs.pci_devices()))
    from_value = plan_binding(doc, store, value, VfioVariants())
    assert [str(c.address) for c in from_value.changes] == [GPU, AUDIO, USB]
    assert from_value == plan_binding(doc, store, sysfs)
    # Without PCI facts the IOMMU is judged by the groups the value holds.
    blind = IndexedInventory(
        "hv1", tuple(replace(d, iommu_group=None) for d in sysfs.pci_devices())
    )
    with pytest.raises(RefusedError, match=r"IOMMU is off on this host \(no PCI device has"):
        plan_binding(doc, store, blind)
