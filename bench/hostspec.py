"""The host the benchmarks run on: a tree of PCI functions, the first `mapped` of them
GPUs that mappings name (by serial), the rest NICs; each function in its own IOMMU group.

bench_hook.py and bench_commands.py build their hosts and stores from here, so the
figures of the two are for the same kind of host.
"""

from __future__ import annotations

from tests.support.hosttree import HostSpec, PciSpec

STORE_NS = "http://hostdev-resolver.org/xmlns/store/1"


def host_spec(functions: int, mapped: int) -> HostSpec:
    pci = []
    for i in range(functions):
        bus, slot, fn = 1 + i // 64, (i // 8) % 8, i % 8
        gpu = i < mapped
        pci.append(
            PciSpec(
                f"0000:{bus:02x}:{slot:02x}.{fn}",
                "10de" if gpu else "8086",
                "20b5" if gpu else f"{0x1000 + i % 512:04x}",
                "10de",
                "1533",
                "030000" if gpu else "020000",
                iommu_group=i,
                numa_node=0,
                driver="vfio-pci" if gpu else "e1000e",
                serial=f"00-00-00-00-00-00-{i // 256:02x}-{i % 256:02x}" if gpu else None,
            )
        )
    return HostSpec(pci=pci)


def _entry(node: str, dev: PciSpec) -> str:
    return (
        f"<node name='{node}' address='{dev.address}' vendor='{dev.vendor}' device='{dev.device}' "
        f"subsystem-vendor='10de' subsystem-device='1533' class='030000' serial='{dev.serial}'/>"
    )


def store_xml(spec: HostSpec, count: int, nodes: tuple[str, ...]) -> str:
    """A store naming the first `count` functions gpu0… on each of `nodes`."""
    body = "\n".join(
        f"  <pci name='gpu{i}'>" + "".join(_entry(n, dev) for n in nodes) + "</pci>"
        for i, dev in enumerate(spec.pci[:count])
    )
    return f"<mappings xmlns='{STORE_NS}'>\n{body}\n</mappings>\n"
