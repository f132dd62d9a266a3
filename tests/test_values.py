"""Domain values: every spelling parses to one value; anything malformed is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.host.sysfs import read_dsn
from hostdev_resolver.model.errors import InputError
from hostdev_resolver.model.identity import PciIdentity, parse_dsn, parse_id16
from hostdev_resolver.model.pciaddress import PciAddress, parse_xml_uint
from tests.support.hosttree import dsn_config

GPU = PciAddress(0, 0x41, 0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "0000:41:00.0",
        "41:00.0",
        "pci_0000_41_00_0",
        "0000:41:0.0",
        " 0000:41:00.0\n",
        "0000:41:00.0".upper(),
    ],
)
def test_every_spelling_is_one_address(text: str) -> None:
    assert PciAddress.parse(text) == GPU


def test_32bit_domains_round_trip() -> None:
    vmd = PciAddress.parse("10000:e1:00.0")
    assert vmd == PciAddress(0x10000, 0xE1, 0, 0)
    assert str(vmd) == "10000:e1:00.0"
    assert vmd.nodedev_name == "pci_10000_e1_00_0"
    assert PciAddress.parse(vmd.nodedev_name) == vmd


def test_xml_attributes_hex_decimal_and_libvirt_octal() -> None:
    assert (
        PciAddress.from_xml({"domain": "0x0000", "bus": "0x41", "slot": "0x00", "function": "0x0"})
        == GPU
    )
    assert PciAddress.from_xml({"bus": "65", "slot": "0", "function": "0"}) == GPU
    # libvirt reads attributes with strtoul base 0: a leading zero means octal.
    assert parse_xml_uint("010", "bus") == 8
    assert PciAddress.from_xml(GPU.xml_attributes()) == GPU


@pytest.mark.parametrize(
    "text",
    [
        "",
        "41:00",
        "0000:41:00.8",
        "0000:41:20.0",
        "0000:141:00.0",
        "gpu0",
        "123456789:00:00.0",
        "pci_0000_41_00",
    ],
)
def test_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(InputError) as err:
        PciAddress.parse(text)
    assert "PCI address" in err.value.message


@pytest.mark.parametrize(
    "value",
    # the last ones int() or str.isdigit() would take: signs, '_', other scripts' digits
    [
        "08",
        "0x",
        "-1",
        "1e3",
        "zz",
        "",
        "0x-1",
        "0-7",
        "0x1_f",
        "0x+1f",
        "01_7",
        "+1",
        "\u0661\u0662",
        "0x\u0661",
        "\u00b2",
    ],
)
def test_malformed_xml_numbers_are_refused(value: str) -> None:
    with pytest.raises(InputError):
        parse_xml_uint(value, "bus")


def test_record_integers_are_ascii_decimal() -> None:
    from hostdev_resolver.xml.xmldoc import parse_bytes

    doc = parse_bytes("<a g='\u00b2' h='\u0661\u0662' i='12' j='-1'/>".encode(), "x.xml")
    assert doc.uint(doc.root, "i") == 12
    for name in ("g", "h", "j"):
        with pytest.raises(InputError):
            doc.uint(doc.root, name)


def test_ids_and_serials() -> None:
    assert parse_id16("0x10DE", "vendor") == 0x10DE
    for bad in ("10de0", "xyz1", "0x", "10d"):
        with pytest.raises(InputError):
            parse_id16(bad, "vendor")
    assert parse_dsn("48-B0-2D-FF-FF-12-34-56") == "48-b0-2d-ff-ff-12-34-56"
    with pytest.raises(InputError):
        parse_dsn("48-b0-2d-ff-ff-12-34")


def test_dsn_is_read_from_config_space_extended_capabilities() -> None:
    serial = "48-b0-2d-ff-ff-12-34-56"
    assert read_dsn(dsn_config(serial)) == serial
    assert read_dsn(dsn_config(None)) is None
    assert read_dsn(dsn_config(serial)[:64]) is None  # what an unprivileged reader gets
    looping = bytearray(4096)
    looping[0x100:0x104] = (0x0001 | (0x100 << 20)).to_bytes(4, "little")  # points at itself
    assert read_dsn(bytes(looping)) is None


def test_identity_never_matches_by_accident() -> None:
    recorded = PciIdentity(0x10DE, 0x20B5, 0x10DE, 0x1533, 0x030200, "48-b0-2d-ff-ff-12-34-56")
    same_card_other_serial = PciIdentity(
        0x10DE, 0x20B5, 0x10DE, 0x1533, 0x030200, "48-b0-2d-ff-ff-00-00-01"
    )
    no_serial = PciIdentity(0x10DE, 0x20B5, 0x10DE, 0x1533, 0x030200, None)
    assert recorded.matches(recorded)
    assert not recorded.matches(same_card_other_serial)
    assert not recorded.matches(no_serial)  # a serial that vanished is not a match
    assert PciIdentity(0x10DE, 0x20B5).matches(no_serial)  # unrecorded fields are not compared


def test_attributes_are_known_by_the_name_they_were_written_with() -> None:
    """A look-alike namespace ('…/1-ext') is not the hr namespace; a prefix other than
    hr and a namespace written with a character reference still are."""
    from hostdev_resolver.core.metadata import HR_MAP
    from hostdev_resolver.xml.xmldoc import Splicer, parse_bytes

    doc = parse_bytes(
        b"<d xmlns:x='http://hostdev-resolver.org/xmlns/domain/1-ext' "
        b"xmlns:m='http://hostdev-resolver.org/xmlns/domain&#47;1'>"
        b"<h x:map='keep' m:map='gpu0'/></d>",
        "d.xml",
    )
    (h,) = doc.root.children
    assert h.attrs[HR_MAP] == "gpu0" and h.qnames[HR_MAP] == "m:map"
    splicer = Splicer(doc)
    splicer.remove_attribute(h, h.qnames[HR_MAP])
    assert b"<h x:map='keep'/>" in splicer.apply()


def test_edits_keep_a_documents_crlf_line_endings(tmp_path: Path) -> None:
    from hostdev_resolver.doors.cli import main as cli
    from tests.support.hosttree import HostSpec, HostTree

    golden = Path(__file__).parent / "golden"
    HostTree.build(tmp_path / "sys", HostSpec.load(golden / "hosts" / "hv1.json"))
    domain = (golden / "resolve-pci-usb" / "domain.xml").read_bytes().replace(b"\n", b"\r\n")
    (tmp_path / "d.xml").write_bytes(domain)
    out = tmp_path / "out.xml"
    args = ["--store", str(golden / "stores" / "hv1.xml"), "--sysfs", str(tmp_path / "sys")]
    assert (
        cli.main(["resolve", str(tmp_path / "d.xml"), "-o", str(out), *args, "--node", "hv1"]) == 0
    )
    lines = out.read_bytes().split(b"\n")[:-1]
    assert len(lines) > 20 and all(line.endswith(b"\r") for line in lines)
    expected = (golden / "resolve-pci-usb" / "expected.out").read_bytes().replace(b"\n", b"\r\n")
    assert out.read_bytes() == expected
