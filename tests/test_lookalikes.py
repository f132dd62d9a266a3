"""A card recorded without a serial is gone from its slot or port: name the same-ID
devices elsewhere, never follow them (only a person can tell identical cards apart)."""

from __future__ import annotations

from pathlib import Path

from hostdev_resolver.core.locate import (
    PciExpectation,
    Status,
    describe_pci,
    locate_pci,
    lookalike_fix,
)
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.model.identity import PciIdentity
from hostdev_resolver.model.pciaddress import PciAddress
from tests.support.hosttree import HostSpec, HostTree, PciSpec

PORT_A, PORT_B, PORT_C = "0000:40:01.1", "0000:40:03.1", "0000:40:05.1"
IDS = PciIdentity(0x10DE, 0x2204)


def _host(tmp_path: Path, cards: list[tuple[str, str | None, str | None]]) -> SysfsInventory:
    """Root ports A, B, C and identical cards (address, upstream port, slot) behind them."""
    pci = [PciSpec(p, "1022", "1483", klass="060400") for p in (PORT_A, PORT_B, PORT_C)]
    for address, upstream, slot in cards:
        pci.append(
            PciSpec(address, "10de", "2204", "1458", "403b", "030000", upstream=upstream, slot=slot)
        )
    HostTree.build(tmp_path / "sys", HostSpec(pci=pci))
    return SysfsInventory(tmp_path / "sys")


def _expect(
    *, slot: str | None = None, port: str | None = None, serial: str | None = None
) -> PciExpectation:
    identity = PciIdentity(IDS.vendor, IDS.device, 0x1458, 0x403B, 0x030000, serial)
    return PciExpectation(PciAddress.parse("0000:42:00.0"), identity, None, slot, port)


def test_a_card_moved_behind_another_port_is_named_not_followed(tmp_path: Path) -> None:
    inventory = _host(tmp_path, [("0000:02:00.0", PORT_C, None)])
    loc = locate_pci(_expect(port="pci0000:40/03.1/00.0"), inventory)
    assert loc.status == Status.MISSING and loc.device is None
    assert describe_pci("gpu1", "hv1", loc) == (
        "gpu1: no device is at 0000:42:00.0 on node hv1; no 10de:2204 device is behind port "
        "pci0000:40/03.1/00.0 any more; a device with the same IDs is at 0000:02:00.0 behind "
        "another port"
    )
    assert lookalike_fix("gpu1", "hv1", loc) == (
        "if it is this card, re-map it with "
        "'hostdev-resolver map add pci gpu1 --node hv1 --address 0000:02:00.0'"
    )


def test_a_card_gone_from_its_slot_names_every_lookalike(tmp_path: Path) -> None:
    cards: list[tuple[str, str | None, str | None]] = [
        ("0000:02:00.0", PORT_A, "2"),
        ("0000:03:00.0", PORT_C, "6"),
    ]
    inventory = _host(tmp_path, cards)
    loc = locate_pci(_expect(slot="4"), inventory)
    assert loc.status == Status.MISSING
    assert describe_pci("gpu1", "hv1", loc).endswith(
        "; no 10de:2204 device is in slot 4 any more; devices with the same IDs are at "
        "0000:02:00.0, 0000:03:00.0 in another slot"
    )
    assert lookalike_fix("gpu1", "hv1", loc) == (
        "if one of them is this card, re-map it with "
        "'hostdev-resolver map add pci gpu1 --node hv1 --address BDF'"
    )


def test_a_recorded_serial_rules_out_lookalikes(tmp_path: Path) -> None:
    """A card with another (or no readable) DSN is another card: nothing to suggest."""
    inventory = _host(tmp_path, [("0000:02:00.0", PORT_C, None)])
    loc = locate_pci(_expect(serial="00-11-22-33-44-55-66-77"), inventory)
    assert loc.status == Status.MISSING and loc.lookalikes == ()
    assert "no other 10de:2204 device with the recorded identity" in describe_pci("g", "n", loc)
    assert lookalike_fix("g", "n", loc) is None
