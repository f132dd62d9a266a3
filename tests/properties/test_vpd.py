"""SCSI VPD pages 0x83 and 0x80: pages we build parse back to their designators,
and any bytes either parse or raise VpdError (an InputError), never anything else."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from hostdev_resolver.model.errors import InputError
from hostdev_resolver.model.vpd import (
    Designator,
    DesignatorType,
    VpdError,
    parse_pg80,
    parse_pg83,
    parse_wwid,
)
from hostdev_resolver.model.wwn import Wwn


def _page(code: int, body: bytes, peripheral: int = 0) -> bytes:
    return bytes([peripheral, code]) + len(body).to_bytes(2, "big") + body


def _designator_bytes(d: Designator, protocol: int, piv: int) -> bytes:
    header = [(protocol << 4) | d.code_set, (piv << 7) | (d.association << 4) | d.type, 0]
    return bytes([*header, len(d.value)]) + d.value


_naa_values = st.one_of(
    st.builds(
        lambda t, rest: bytes([(t << 4) | (rest[0] & 0x0F)]) + rest[1:],
        st.sampled_from([1, 2, 3, 5, 6]),
        st.binary(min_size=8, max_size=8),
    ),
    st.builds(
        lambda rest: bytes([0x60 | (rest[0] & 0x0F)]) + rest[1:],
        st.binary(min_size=16, max_size=16),
    ),
)

designators = st.one_of(
    st.builds(
        Designator,
        type=st.just(int(DesignatorType.NAA)),
        association=st.integers(0, 3),
        code_set=st.just(1),
        value=_naa_values,
    ),
    st.builds(
        Designator,
        type=st.just(int(DesignatorType.EUI64)),
        association=st.integers(0, 3),
        code_set=st.integers(0, 15),
        value=st.sampled_from([8, 12, 16]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    ),
    st.builds(
        Designator,
        type=st.sampled_from([0, 1, 4, 5, 6, 7, 8, 9, 15]),
        association=st.integers(0, 3),
        code_set=st.integers(0, 15),
        value=st.binary(max_size=255),
    ),
)


@given(
    st.lists(st.tuples(designators, st.integers(0, 15), st.integers(0, 1)), max_size=6),
    st.binary(max_size=8),
    st.integers(0, 255),
)
def test_pg83_round_trips(
    items: list[tuple[Designator, int, int]], trailing: bytes, peripheral: int
) -> None:
    body = b"".join(_designator_bytes(d, protocol, piv) for d, protocol, piv in items)
    # Bytes past the header's page length are not part of the page.
    page = parse_pg83(_page(0x83, body, peripheral) + trailing)
    assert page.designators == tuple(d for d, _, _ in items)
    lu = [d for d in page.designators if d.association == 0]
    lu_naa = {Wwn.from_bytes(d.value) for d in lu if d.type == DesignatorType.NAA}
    lu_eui = {
        Wwn.from_bytes(d.value, "eui")
        for d in lu
        if d.type == DesignatorType.EUI64 and len(d.value) == 8
    }
    wwn = page.wwn
    # The LUN's WWN is one of its logical-unit NAA names, else one of its EUI-64s.
    if lu_naa:
        assert wwn in lu_naa
    elif lu_eui:
        assert wwn in lu_eui
    else:
        assert wwn is None
    _ = page.t10_vendor_id, page.target_port_wwn


@given(st.one_of(st.binary(max_size=64), st.binary(max_size=24).map(lambda b: _page(0x83, b))))
@example(b"\x00\x83\x00\x04\x01\x03\x00\x08")
@example(b"\x00\x83\x00\x0c\x01\x03\x00\x08\x10\x00\x00\x00\x00\x00\x00\x00")
@example(b"\x00\x83\x00\x0c\x02\x03\x00\x08" + b"5" * 8)
def test_pg83_raises_only_vpd_error(data: bytes) -> None:
    try:
        page = parse_pg83(data)
    except VpdError as exc:
        assert isinstance(exc, InputError) and exc.page == 0x83
        return
    _ = page.wwn, page.t10_vendor_id, page.target_port_wwn


@given(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    st.text(" \x00", max_size=4),
    st.text(" \x00", max_size=4),
)
def test_pg80_round_trips(serial: str, left: str, right: str) -> None:
    assert parse_pg80(_page(0x80, (left + serial + right).encode())) == serial


@given(st.one_of(st.binary(max_size=64), st.binary(max_size=24).map(lambda b: _page(0x80, b))))
def test_pg80_raises_only_vpd_error(data: bytes) -> None:
    try:
        serial = parse_pg80(data)
    except VpdError:
        return
    assert serial is None or serial == serial.strip()


@given(
    st.one_of(
        st.text(max_size=40),
        st.tuples(
            st.sampled_from(["naa.", "eui.", "t10.", "NAA.", "iqn."]),
            st.text(st.sampled_from(list("0123456789abcdefABCDEF \t")), max_size=34),
        ).map("".join),
    )
)
def test_wwid_raises_only_input_error(text: str) -> None:
    try:
        wwn, t10 = parse_wwid(text)
    except InputError:
        return
    assert wwn is None or t10 is None
    if wwn is not None:
        assert str(wwn).removeprefix("0x").removeprefix("eui.") in text.lower()
