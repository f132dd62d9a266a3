"""The node view's index: the hook cuts out only the mappings a domain names."""

from __future__ import annotations

from hostdev_resolver.host.cachefile import header, indexed, read_header, select
from hostdev_resolver.host.etcdstore import element_spans, file_form
from hostdev_resolver.xml.store import parse_store
from hostdev_resolver.xml.xmldoc import parse_bytes

ELEMENTS = {
    "b-nic": b"<pci name='b-nic'>\n    <node name='hv1' address='0000:43:00.0' vendor='8086'"
    b" device='10d3'/>\n  </pci>",
    "a-lun": b"<lun name='a-lun' wwn='0x5000c500a1b2c3d4'/>",
    "c-usb": b"<usb name='c-usb'><node name='hv1' vendor='1050' product='0407'/></usb>",
}


def view() -> bytes:
    body = indexed(file_form(ELEMENTS), element_spans(ELEMENTS))
    return header(7, 1000.0, "etcd://h:1/p") + body


def test_the_view_is_a_store_and_its_header_says_revision_and_time() -> None:
    data = view()
    assert read_header(data) == (7, 1000.0)
    store = parse_store(parse_bytes(data, "view"))
    assert sorted(store.mappings) == ["a-lun", "b-nic", "c-usb"]


def test_select_keeps_each_mapping_and_its_line() -> None:
    data = view()
    full = parse_store(parse_bytes(data, "view"))
    for names in ({"b-nic"}, {"c-usb", "a-lun"}, {"a-lun", "b-nic", "c-usb"}):
        part = select(data, names)
        assert part is not None
        store = parse_store(parse_bytes(part, "view"))
        assert set(store.mappings) == names
        for name in names:
            assert store.mappings[name] == full.mappings[name]
            assert store.mappings[name].line == full.mappings[name].line


def test_select_steps_aside_for_unknown_names_or_no_index() -> None:
    assert select(view(), {"b-nic", "elsewhere"}) is None
    assert select(file_form(ELEMENTS), {"b-nic"}) is None
    broken = view().replace(b"b-nic=", b"b-nic=x", 1)
    assert select(broken, {"b-nic"}) is None
