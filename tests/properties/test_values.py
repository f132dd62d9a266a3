"""PCI addresses, WWNs and identity fields: every spelling parses back to the value,
and any text either parses or raises the project's InputError."""

from __future__ import annotations

from hypothesis import assume, example, given
from hypothesis import strategies as st

from hostdev_resolver.model.errors import InputError
from hostdev_resolver.model.identity import format_dsn, parse_class, parse_dsn, parse_id16
from hostdev_resolver.model.pciaddress import PciAddress, parse_xml_uint
from hostdev_resolver.model.wwn import Wwn, parse_fc_attribute

addresses = st.builds(
    PciAddress,
    domain=st.one_of(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)),
    bus=st.integers(0, 0xFF),
    slot=st.integers(0, 0x1F),
    function=st.integers(0, 7),
)

# Text near the PCI address grammar: its characters, separators and the odd ones.
_pci_alphabet = st.sampled_from(list("0123456789abcdefABCDEFxX:._ pci-+\t\n\u00a0\u0663²"))
pci_texts = st.one_of(
    st.text(_pci_alphabet, max_size=20),
    addresses.map(str).map(lambda s: s.upper()),
    st.text(max_size=12),
)


@given(addresses)
def test_pci_address_spellings_round_trip(address: PciAddress) -> None:
    assert PciAddress.parse(str(address)) == address
    assert PciAddress.parse(address.nodedev_name) == address
    assert PciAddress.parse(str(address).upper()) == address
    assert PciAddress.from_xml(address.xml_attributes()) == address
    if address.domain == 0:
        assert PciAddress.parse(str(address)[5:]) == address  # 03:00.0


@given(pci_texts)
@example("pci_0000_03_00_0")
@example("0000:03:00.8")
@example("1:2:3:4.0")
@example("0000:03:00.\u0663")
def test_pci_address_parse_raises_only_input_error(text: str) -> None:
    try:
        address = PciAddress.parse(text)
    except InputError:
        return
    # Whatever parses is written one way, and that way parses to the same address.
    assert PciAddress.parse(str(address)) == address
    assert PciAddress.parse(address.nodedev_name) == address


@given(
    st.dictionaries(
        st.sampled_from(["domain", "bus", "slot", "function"]),
        st.one_of(
            st.text(st.sampled_from(list("0123456789abcdefxX -+_")), max_size=8),
            st.text(max_size=4),
        ),
    )
)
def test_pci_address_from_xml_raises_only_input_error(attrs: dict[str, str]) -> None:
    try:
        address = PciAddress.from_xml(attrs)
    except InputError:
        return
    assert PciAddress.from_xml(address.xml_attributes()) == address


@given(st.integers(0, 2**64), st.sampled_from(["hex", "HEX", "octal", "decimal"]))
def test_xml_uint_reads_every_base_as_libvirt_does(value: int, base: str) -> None:
    text = {
        "hex": f"0x{value:x}",
        "HEX": f"0X{value:X}",
        "octal": f"0{value:o}",
        "decimal": str(value),
    }[base]
    assume(base != "hex" or len(text) <= 18)  # at most 16 hex digits, as strtoul's 64 bits
    assume(base != "HEX" or len(text) <= 18)
    assert parse_xml_uint(text, "bus") == value


@given(st.text(st.sampled_from(list("0123456789abcdefxX -+_\u0663")), max_size=30))
@example("9" * 5000)
@example("0" + "7" * 5000)
def test_xml_uint_raises_only_input_error(text: str) -> None:
    try:
        value = parse_xml_uint(text, "bus")
    except InputError:
        return
    assert value >= 0


# -- WWNs ---------------------------------------------------------------------

_hex16 = st.text(st.sampled_from("0123456789abcdef"), min_size=15, max_size=15)
_hex31 = st.text(st.sampled_from("0123456789abcdef"), min_size=31, max_size=31)
wwns = st.one_of(
    st.builds(lambda t, rest: Wwn("naa", t + rest), st.sampled_from("12356"), _hex16),
    st.builds(lambda rest: Wwn("naa", "6" + rest), _hex31),
    st.builds(lambda d: Wwn("eui", d), _hex16.map(lambda h: h + "0")),
)


def _colons(digits: str) -> str:
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


@given(wwns)
def test_wwn_spellings_round_trip(wwn: Wwn) -> None:
    assert Wwn.parse(str(wwn)) == wwn
    assert Wwn.parse(str(wwn).upper()) == wwn
    assert Wwn.parse(f"  {wwn}\n") == wwn
    assert Wwn.from_bytes(bytes.fromhex(wwn.digits), wwn.scheme) == wwn
    if wwn.scheme == "naa":
        assert Wwn.parse(wwn.nodedev_form) == wwn
        assert Wwn.parse("naa." + wwn.digits) == wwn
        assert Wwn.parse(_colons(wwn.digits)) == wwn
        assert parse_fc_attribute(str(wwn)) == wwn
    else:
        assert Wwn.parse("EUI." + wwn.digits.upper()) == wwn
    assert wwn.covers(wwn)


@given(_hex31)
def test_a_short_type_6_name_covers_only_its_long_form(rest: str) -> None:
    full = Wwn("naa", "6" + rest)
    short = Wwn("naa", full.digits[:16])
    assert short.is_short and short.covers(full) and not full.covers(short)
    assert short.by_id_name is None and full.by_id_name == f"wwn-0x{full.digits}"


_wwn_alphabet = st.sampled_from(list("0123456789abcdefABCDEFxX:.naeui \t\u0663\u212a"))


@given(st.one_of(st.text(_wwn_alphabet, max_size=40), st.text(max_size=12), wwns.map(str)))
@example("0x" + "5" * 16 + "\n")
@example("\u0665" * 16)
def test_wwn_parse_raises_only_input_error(text: str) -> None:
    try:
        wwn = Wwn.parse(text)
    except InputError:
        return
    assert Wwn.parse(str(wwn)) == wwn
    assert all(c in "0123456789abcdef" for c in wwn.digits)


@given(
    st.one_of(st.binary(min_size=8, max_size=8), st.binary(min_size=16, max_size=16), st.binary())
)
def test_wwn_from_bytes_is_a_wwn_or_a_value_error(data: bytes) -> None:
    try:
        wwn = Wwn.from_bytes(data)
    except ValueError:
        valid = {8: (1, 2, 3, 5, 6), 16: (6,)}.get(len(data), ())
        assert not data or data[0] >> 4 not in valid
        return
    assert bytes.fromhex(wwn.digits) == data


# -- identity fields ------------------------------------------------------------


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFF), st.integers(0, 2**64 - 1))
def test_identity_fields_round_trip(id16: int, klass: int, serial: int) -> None:
    assert parse_id16(f"{id16:04x}", "vendor") == id16
    assert parse_id16(f"0x{id16:04X}", "vendor") == id16
    assert parse_class(f"{klass:06x}") == klass
    assert parse_class(f"0x{klass:06x}") == klass
    assert parse_dsn(format_dsn(serial)) == format_dsn(serial)
    assert parse_dsn(format_dsn(serial).upper()) == format_dsn(serial)


@given(st.text(st.sampled_from(list("0123456789abcdefABCDEFxX- \u0663")), max_size=26))
@example("0x10de")
@example("00-11-22-ff-ff-33-44-55")
def test_identity_fields_raise_only_input_error(text: str) -> None:
    try:
        id16 = parse_id16(text, "vendor")
    except InputError:
        pass
    else:
        assert parse_id16(f"{id16:04x}", "vendor") == id16
    try:
        klass = parse_class(text)
    except InputError:
        pass
    else:
        assert parse_class(f"{klass:06x}") == klass
    try:
        dsn = parse_dsn(text)
    except InputError:
        return
    assert parse_dsn(dsn) == dsn
