from __future__ import annotations

import pytest

from hostdev_resolver.model.errors import InputError
from hostdev_resolver.model.vpd import VpdError, parse_pg80, parse_pg83, parse_wwid
from hostdev_resolver.model.wwn import Wwn
from tests.support.scsitree import designator, eui, naa, page80, page83, t10


def test_lun_wwn_prefers_naa6_and_ignores_target_port_designators() -> None:
    page = page83(
        naa("500a098188b4c3e2", association=1),  # the FC target port's WWPN
        t10("NETAPP", "LUN C-Mode 80D4s+Jla5zA"),
        naa("5000c500a1b2c3d4"),
        naa("600a0980383030534f2b4a6c61357a41"),
    )
    ident = parse_pg83(page)
    assert ident.wwn == Wwn("naa", "600a0980383030534f2b4a6c61357a41")
    assert ident.target_port_wwn == Wwn("naa", "500a098188b4c3e2")
    assert ident.t10_vendor_id == "NETAPP LUN C-Mode 80D4s+Jla5zA"
    assert len(ident.designators) == 4


def test_eui64_is_the_wwn_when_there_is_no_naa() -> None:
    ident = parse_pg83(page83(eui("0123456789abcdef")))
    assert ident.wwn == Wwn("eui", "0123456789abcdef")


def test_a_page_with_only_a_port_designator_names_no_lun() -> None:
    ident = parse_pg83(page83(naa("5000c500a1b2c3d5", association=1)))
    assert ident.wwn is None
    assert ident.t10_vendor_id is None


def test_unknown_designator_types_are_kept_not_interpreted() -> None:
    ident = parse_pg83(page83(designator(0x9, b"\x01\x02"), naa("5000c500a1b2c3d4")))
    assert ident.designators[0].type == 0x9
    assert ident.wwn == Wwn("naa", "5000c500a1b2c3d4")


GOOD = page83(naa("5000c500a1b2c3d4"))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "the header alone is 4"),
        (b"\x00\x83\x00", "the header alone is 4"),
        (GOOD[:-3], "header says 12 bytes, 9 present"),
        (b"\x00\x80" + GOOD[2:], "has page code 0x80"),
        # header length cut so the page ends inside a designator header
        (b"\x00\x83\x00\x02\x01\x03", "ends inside a designator header"),
        # designator says 8 bytes, page has room for 4
        (b"\x00\x83\x00\x08\x01\x03\x00\x08\x50\x00\xc5\x00", "overruns the page"),
        (page83(designator(3, bytes.fromhex("4000c500a1b2c3d4"))), "NAA type 4"),
        (page83(designator(3, bytes.fromhex("5000c500a1b2"))), "12 hex digits"),
        (page83(designator(3, b"5000c500a1b2c3d4"[:8], code_set=2)), "not in binary"),
        (page83(designator(2, b"\x01\x02\x03")), "EUI-64 designator of 3 bytes"),
    ],
)
def test_truncated_or_malformed_pages_raise_vpd_error(data: bytes, why: str) -> None:
    with pytest.raises(VpdError) as caught:
        parse_pg83(data)
    assert why in caught.value.message
    assert caught.value.page == 0x83
    assert isinstance(caught.value, InputError)


def test_unit_serial_is_trimmed_of_spaces_and_nul_padding() -> None:
    assert parse_pg80(page80("  ZC1ABCDE  ")) == "ZC1ABCDE"
    assert parse_pg80(page80("60A44C413E4E\x00\x00\x00")) == "60A44C413E4E"
    assert parse_pg80(page80("    ")) is None


def test_truncated_unit_serial_raises() -> None:
    with pytest.raises(VpdError, match="truncated"):
        parse_pg80(page80("ZC1ABCDE")[:7])


def test_kernel_wwid_forms() -> None:
    assert parse_wwid("naa.600a0980383030534f2b4a6c61357a41\n") == (
        Wwn("naa", "600a0980383030534f2b4a6c61357a41"),
        None,
    )
    assert parse_wwid("eui.0123456789abcdef") == (Wwn("eui", "0123456789abcdef"), None)
    assert parse_wwid("t10.ATA     Samsung SSD   S3Z9NB0K") == (None, "ATA Samsung SSD S3Z9NB0K")
    assert parse_wwid("iqn.2003-01.org.linux-iscsi.target:lun0") == (None, None)
    with pytest.raises(InputError, match="NAA type 4"):
        parse_wwid("naa.4000c500a1b2c3d4")
