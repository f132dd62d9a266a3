"""Device names from pci.ids/usb.ids as installed on the host, read lazily."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.devicenames import DeviceNames, IdsFile
from tests.support.hosttree import HostSpec, HostTree, PciSpec, UsbSpec

PCI_IDS = """#
#\tList of PCI ID's (excerpt, in the format of https://pci-ids.ucw.cz)
#
0001  SafeNet (wrong ID)
10de  NVIDIA Corporation
\t20b5  GA100 [A100 PCIe 80GB]
\t\t10de 1533  A100 PCIe 80GB
\t2204  GA102 [GeForce RTX 3090]
\t\t1458 403b  GeForce RTX 3090 GAMING OC 24G
# a comment inside a vendor block
\t228b  GA104 High Definition Audio Controller
8086  Intel Corporation
\t1533  I210 Gigabit Network Connection

# List of known device classes, subclasses and programming interfaces
C 00  Unclassified device
\t00  Non-VGA unclassified device
C 03  Display controller
\t00  VGA compatible controller
"""

USB_IDS = """# usb.ids excerpt
1050  Yubico.com
\t0407  Yubikey 4/5 OTP+U2F+CCID
C 00  (Defined at Interface level)
"""


@pytest.fixture
def ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pci.ids").write_text(PCI_IDS)
    (tmp_path / "usb.ids").write_text(USB_IDS)
    monkeypatch.setenv("HOSTDEV_RESOLVER_IDS", f"{tmp_path / 'pci.ids'}:{tmp_path / 'usb.ids'}")
    return tmp_path


def test_names_and_laziness(ids: Path) -> None:
    pci = IdsFile(str(ids / "pci.ids"))
    assert pci.name(0x10DE, 0x2204) == "NVIDIA Corporation GA102 [GeForce RTX 3090]"
    assert pci.name(0x10DE, 0x228B) == "NVIDIA Corporation GA104 High Definition Audio Controller"
    assert pci.name(0x10DE, 0x9999) == "NVIDIA Corporation"  # vendor known, device not
    assert pci.name(0x0001, 0x0000) == "SafeNet (wrong ID)"
    assert pci.name(0x1234, 0x0000) is None
    # Only the vendors asked about were parsed; the class list is never read as a vendor.
    assert sorted(pci._vendors) == [0x0001, 0x10DE, 0x1234]
    assert pci.vendor(0x10DE) is not None
    assert set(pci.vendor(0x10DE).devices) == {0x20B5, 0x2204, 0x228B}  # type: ignore[union-attr]
    assert pci.name(0x8086, 0x1533) == "Intel Corporation I210 Gigabit Network Connection"
    assert IdsFile(str(ids / "missing.ids")).name(0x10DE, 0x2204) is None
    assert IdsFile(None).name(0x10DE, 0x2204) is None


def test_the_databases_are_found_where_the_packages_put_them(ids: Path) -> None:
    names = DeviceNames.from_environment({"HOSTDEV_RESOLVER_IDS": str(ids / "pci.ids")})
    assert names.pci(0x10DE, 0x20B5) == "NVIDIA Corporation GA100 [A100 PCIe 80GB]"
    assert names.usb(0x1050, 0x0407) is None
    none = DeviceNames.from_environment({"HOSTDEV_RESOLVER_IDS": ""})
    assert none.pci(0x10DE, 0x20B5) is None
    default = DeviceNames.from_environment({})
    assert default.pci_ids.path in (None, "/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")


def _host(root: Path, *, iommu: bool = True) -> Path:
    HostTree.build(
        root,
        HostSpec(
            pci=[
                PciSpec(
                    "0000:42:00.0", "10de", "2204", "1458", "403b", "030000",
                    iommu_group=33 if iommu else None, driver="nouveau", slot="4",
                ),
                PciSpec("0000:43:00.0", "1af4", "1041", klass="020000",
                        iommu_group=34 if iommu else None),
            ],
            usb=[UsbSpec("1-3", 1, 4, "1050", "0407", serial="17253849")],
        ),
    )  # fmt: skip
    return root


def test_inventory_shows_names(
    ids: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sysfs = _host(tmp_path / "sys")
    assert cli.main(["inventory", "--sysfs", str(sysfs), "--node", "hv1"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.lstrip().startswith("GROUP"))
    assert header.endswith("SERIAL/SLOT  NAME")
    gpu = next(line for line in out if "0000:42:00.0" in line)
    assert gpu.endswith("slot 4       NVIDIA Corporation GA102 [GeForce RTX 3090]")
    assert gpu.index("NVIDIA") == header.index("NAME")
    other = next(line for line in out if "0000:43:00.0" in line)
    assert other.endswith("[1af4:1041] -             -  -")  # no name known: nothing
    usb = next(line for line in out if "1-3" in line)
    assert usb.endswith("17253849  Yubico.com Yubikey 4/5 OTP+U2F+CCID")
    assert not any(line.startswith("IOMMU") for line in out)


def test_inventory_says_when_the_iommu_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sysfs = _host(tmp_path / "sys", iommu=False)
    assert cli.main(["inventory", "--sysfs", str(sysfs), "--node", "hv1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (
        f"IOMMU: off ({sysfs}/kernel/iommu_groups is empty): no PCI device can be given to a "
        "guest; enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on"
    )
    assert "NAME" not in out[3]  # no pci.ids here (conftest): no NAME column


def test_map_list_and_show_name_the_device(
    ids: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sysfs, store = _host(tmp_path / "sys"), tmp_path / "m.xml"
    common = ["--store", str(store), "--sysfs", str(sysfs), "--node", "hv1"]
    assert cli.main(["map", "add", "pci", "gpu1", "--address", "42:00.0", *common]) == 0
    add = ["map", "add", "usb", "key", "--vendor", "1050", "--product", "0407", *common]
    assert cli.main(add) == 0
    capsys.readouterr()
    assert cli.main(["map", "list", "--store", str(store)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].endswith("nodes: hv1  [NVIDIA Corporation GA102 [GeForce RTX 3090]]")
    assert listed[1].endswith("nodes: hv1  [Yubico.com Yubikey 4/5 OTP+U2F+CCID]")
    assert cli.main(["map", "show", "gpu1", *common]) == 0  # --sysfs: asks no libvirt
    shown = capsys.readouterr().out
    assert "slot 4  [NVIDIA Corporation GA102 [GeForce RTX 3090]]" in shown


_INTERRUPTS_IR = """\
            CPU0       CPU1
   0:         44          0   IR-IO-APIC    2-edge      timer
 125:       3012          0   IR-PCI-MSIX-0000:42:00.0    0-edge      nvidia
"""
_INTERRUPTS_PLAIN = """\
            CPU0       CPU1
   0:         44          0   IO-APIC    2-edge      timer
 125:       3012          0   PCI-MSI 524288-edge      nvidia
"""


@pytest.mark.parametrize(
    ("interrupts", "unsafe", "said"),
    [
        (_INTERRUPTS_IR, None, None),
        (None, None, None),  # no /proc beside the tree: nothing to tell
        (_INTERRUPTS_PLAIN, None, "vfio refuses to assign devices"),
        (_INTERRUPTS_PLAIN, "Y", "allow_unsafe_interrupts=Y: a guest can forge interrupts"),
    ],
)
def test_inventory_says_when_interrupt_remapping_is_off(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    interrupts: str | None,
    unsafe: str | None,
    said: str | None,
) -> None:
    sysfs = _host(tmp_path / "sys")
    if interrupts is not None:
        (tmp_path / "proc").mkdir()
        (tmp_path / "proc" / "interrupts").write_text(interrupts)
    if unsafe is not None:
        params = sysfs / "module" / "vfio_iommu_type1" / "parameters"
        params.mkdir(parents=True)
        (params / "allow_unsafe_interrupts").write_text(unsafe + "\n")
    assert cli.main(["inventory", "--sysfs", str(sysfs), "--node", "hv1"]) == 0
    out = capsys.readouterr().out.splitlines()
    if said is None:
        assert not any(line.startswith("interrupt remapping") for line in out)
    else:
        assert out[1].startswith(
            f"interrupt remapping: off (no IR- interrupt domains in {tmp_path}/proc/interrupts)"
        )
        assert said in out[1]
