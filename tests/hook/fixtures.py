"""Host trees, stores and domains shared by the hook tests (and bench/bench_hook.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hostdev_resolver.core.resolution import resolve_domain
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.support.hosttree import HostSpec, HostTree, PciSpec

NODE = "hv1"
GPU, AUDIO, USB = "0000:41:00.0", "0000:41:00.1", "0000:41:00.2"
BRIDGE, NVME, NIC = "0000:40:01.1", "0000:42:00.0", "0000:43:00.0"


def gpu_host(
    *, gpu_at: str = GPU, nvme_group: int = 32, usb_driver: str | None = "xhci_hcd"
) -> HostSpec:
    """A root port (bridge) and a three-function GPU card in IOMMU group 31, an NVMe
    drive and a NIC in groups of their own (nvme_group=31 puts the drive in the GPU's group)."""
    card = "0000:" + gpu_at[5:7]
    return HostSpec(
        pci=[
            PciSpec(BRIDGE, "1022", "1483", klass="060400", iommu_group=31, driver="pcieport"),
            PciSpec(
                gpu_at,
                "10de",
                "1e84",
                "10de",
                "12a4",
                "030000",
                31,
                0,
                "nouveau",
                serial="00-11-22-33-44-55-66-77",
                upstream=BRIDGE,
            ),
            PciSpec(
                f"{card}:00.1",
                "10de",
                "10f8",
                "10de",
                "12a4",
                "040300",
                31,
                0,
                "snd_hda_intel",
                upstream=BRIDGE,
            ),
            PciSpec(
                f"{card}:00.2",
                "10de",
                "1ad8",
                "10de",
                "12a4",
                "0c0330",
                31,
                0,
                usb_driver,
                upstream=BRIDGE,
            ),
            PciSpec(NVME, "144d", "a808", "144d", "a801", "010802", nvme_group, 0, "nvme"),
            PciSpec(NIC, "8086", "10d3", "8086", "a01f", "020000", 33, 0, "e1000e"),
        ]
    )


STORE = """<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>
  <pci name='gpu0' vfio='yes'>
    <node name='hv1' address='0000:41:00.0' vendor='10de' device='1e84' subsystem-vendor='10de'
          subsystem-device='12a4' class='030000' serial='00-11-22-33-44-55-66-77'/>
    <node name='hv2' address='0000:41:00.0' vendor='10de' device='1e84' subsystem-vendor='10de'
          subsystem-device='12a4' class='030000' serial='00-11-22-33-44-55-66-77'/>
  </pci>
  <pci name='gpu0-audio'>
    <node name='hv1' address='0000:41:00.1' vendor='10de' device='10f8' subsystem-vendor='10de'
          subsystem-device='12a4' class='040300'/>
  </pci>
  <pci name='gpu0-usb'>
    <node name='hv1' address='0000:41:00.2' vendor='10de' device='1ad8' subsystem-vendor='10de'
          subsystem-device='12a4' class='0c0330'/>
  </pci>
  <pci name='nvme0'>
    <node name='hv1' address='0000:42:00.0' vendor='144d' device='a808' subsystem-vendor='144d'
          subsystem-device='a801' class='010802'/>
  </pci>
</mappings>
"""


def domain_xml(name: str, hostdevs: str, *, kind: str = "qemu") -> str:
    return f"""<domain type='{kind}' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
{hostdevs}
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
  </devices>
</domain>
"""


def mapped(name: str, *, managed: str = "no") -> str:
    return f"    <hostdev mode='subsystem' type='pci' managed='{managed}' hr:map='{name}'/>"


@dataclass(frozen=True)
class Host:
    root: Path
    store: Path
    config: Path
    state: Path
    tree: HostTree

    @property
    def log(self) -> Path:
        """Where the hook logs (tests run it with no syslog socket)."""
        return self.config.with_name("hook.log")

    def resolve(self, xml: str, node: str = NODE) -> bytes:
        doc = parse_bytes(xml.encode(), "domain.xml")
        store = load_store(str(self.store), schema=False)
        return resolve_domain(doc, store, SysfsInventory(self.root), node).data

    def write_config(self, node: str = NODE, extra: str = "") -> None:
        self.config.write_text(
            f"store = '{self.store}'\nnode = '{node}'\nsysfs = '{self.root}'\n"
            f"state_dir = '{self.state}'\nlog_file = '{self.log}'\nsyslog = false\n{extra}"
        )


def make_host(base: Path, spec: HostSpec | None = None, *, vfio_loaded: bool = True) -> Host:
    root = base / "sys"
    tree = HostTree.build(root, spec or gpu_host())
    if vfio_loaded:
        (root / "bus" / "pci" / "drivers" / "vfio-pci").mkdir(exist_ok=True)
    store = base / "mappings.xml"
    store.write_text(STORE)
    host = Host(root, store, base / "hook.toml", base / "state", tree)
    host.write_config()
    return host
