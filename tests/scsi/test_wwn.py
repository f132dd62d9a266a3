from __future__ import annotations

import pytest

from hostdev_resolver.model.errors import InputError
from hostdev_resolver.model.wwn import Wwn, parse_fc_attribute


@pytest.mark.parametrize(
    "text",
    [
        "0x5000C500A1B2C3D4",
        "5000c500a1b2c3d4",
        "naa.5000c500a1b2c3d4",
        "NAA.5000C500A1B2C3D4",
        "50:00:c5:00:a1:b2:c3:d4",
        "  0x5000c500a1b2c3d4\n",
    ],
)
def test_every_spelling_of_one_naa5_name_is_the_same_value(text: str) -> None:
    wwn = Wwn.parse(text)
    assert wwn == Wwn("naa", "5000c500a1b2c3d4")
    assert str(wwn) == "0x5000c500a1b2c3d4"
    assert wwn.naa_type == 5
    assert wwn.by_id_name == "wwn-0x5000c500a1b2c3d4"


def test_naa6_is_32_digits_and_its_udev_short_form_covers_only_it() -> None:
    full = Wwn.parse("naa.600a0980383030534f2b4a6c61357a41")
    short = Wwn.parse("0x600a098038303053")
    other = Wwn.parse("0x600a0980383030534f2b4a6c61357a99")
    assert full.naa_type == 6 and not full.is_short
    assert short.is_short and short.by_id_name is None
    assert short.covers(full) and short.covers(other)
    assert not full.covers(other)
    assert not full.covers(short)


def test_eui64_needs_its_prefix_and_has_no_wwn_link() -> None:
    wwn = Wwn.parse("EUI.0123456789ABCDEF")
    assert str(wwn) == "eui.0123456789abcdef"
    assert wwn.naa_type is None
    assert wwn.by_id_name is None
    assert wwn.scsi_id_serial == "20123456789abcdef"
    assert wwn != Wwn.parse("0x1123456789abcdef")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0x5000c500a1b2c3", "14 hex digits"),
        ("0x5000c500a1b2c3d4e5", "18 hex digits"),
        ("0x5000c500a1b2c3zz", "not hexadecimal"),
        ("", "not hexadecimal"),
        ("0x", "not hexadecimal"),
        ("0x4000c500a1b2c3d4", "NAA type 4"),
        ("0x0000c500a1b2c3d4", "NAA type 0"),
        ("0x500a0980383030534f2b4a6c61357a41", "NAA type 5; 16-byte names are NAA type 6"),
        ("eui.0123456789abcd", "an EUI-64 has 16"),
        ("iqn.2003-01.org.linux-iscsi", "not hexadecimal"),
    ],
)
def test_malformed_names_are_refused_with_the_value_and_the_forms(text: str, why: str) -> None:
    with pytest.raises(InputError) as caught:
        Wwn.parse(text, name="hr:wwn")
    message = caught.value.message
    assert f"hr:wwn {text!r}" in message
    assert why in message
    assert "eui.0123456789abcdef" in message  # the expected forms are spelled out
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("unset", [None, "0x0", "0xffffffffffffffff", "unknown", ""])
def test_fc_sysfs_placeholders_mean_no_name(unset: str | None) -> None:
    assert parse_fc_attribute(unset) is None


def test_fc_sysfs_name_is_parsed() -> None:
    assert parse_fc_attribute("0x21000024ff3dc1a2\n") == Wwn("naa", "21000024ff3dc1a2")
