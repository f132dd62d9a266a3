"""A new <source> goes where libvirt's schema and formatter put it (issue 10, item 11).

Each case takes a real domain (tests/libvirt_domains/), removes one device's <source>,
references the device with hr:map/hr:wwn instead, resolves, and checks that the resolved
<source> sits among the device's children exactly where libvirt had written it, and that
the result passes domain.rng.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostdev_resolver.core.resolution import resolve_domain
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.xml.rng import domain_rng_errors
from hostdev_resolver.xml.store import parse_store
from hostdev_resolver.xml.xmldoc import Document, Element, Node, Splicer, parse_bytes
from tests.scsi import hosts
from tests.support.hosttree import HostSpec, HostTree

DOMAINS = Path(__file__).parent / "libvirt_domains"
HR = "http://hostdev-resolver.org/xmlns/domain/1"
STORE = (Path(__file__).parent / "golden" / "stores" / "hv1.xml").read_bytes()
HOST = Path(__file__).parent / "golden" / "hosts" / "hv1.json"
# What each kind of device is resolved to on the test host (hv1 + a SCSI tree).
REFERENCE = {
    "pci": ("hr:map", "gpu1"),
    "usb": ("hr:map", "yubikey"),
    "scsi": ("hr:wwn", f"0x{hosts.SAS_LUN}"),
    "lun": ("hr:wwn", f"0x{hosts.SAS_LUN}"),
}


def _kind(el: Element) -> str | None:
    if el.tag == "hostdev" and el.get("mode", "subsystem") == "subsystem":
        kind = el.get("type")
        return kind if kind in ("pci", "usb", "scsi") else None
    if el.tag == "disk" and el.get("device") == "lun":
        return "lun"
    return None


def _devices(doc: Document) -> list[Element]:
    devices = doc.root.find("devices")
    assert devices is not None
    return [el for el in devices.children if _kind(el) is not None]


def _cases() -> list[tuple[str, int]]:
    cases = []
    for path in sorted(DOMAINS.glob("*.xml")):
        doc = parse_bytes(path.read_bytes(), path.name)
        cases += [(path.name, i) for i in range(len(_devices(doc)))]
    return cases


def _children(el: Element) -> list[str]:
    return [c.tag for c in el.children]


def _with_reference(doc: Document, el: Element) -> bytes:
    """`doc` with `el`'s <source> (and its line) taken out and an hr: reference added."""
    source = el.find("source")
    assert source is not None
    kind = _kind(el)
    assert kind is not None
    attr, value = REFERENCE[kind]
    splicer = Splicer(doc)
    splicer.set_attribute(doc.root, "xmlns:hr", HR)
    splicer.set_attribute(el, attr, value)
    line_start = doc.data.rfind(b"\n", 0, source.start) + 1
    splicer.replace(line_start, source.end + 1, b"")
    return splicer.apply()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> tuple[SysfsInventory, object]:
    root = tmp_path_factory.mktemp("host")
    HostTree.build(root / "sys", HostSpec.from_json(json.loads(HOST.read_text())))
    scsi = hosts.inventory(hosts.mixed_tree(root / "scsi"))
    return SysfsInventory(str(root / "sys")), scsi


@pytest.mark.parametrize(("name", "index"), _cases())
def test_new_source_goes_where_libvirt_writes_it(
    name: str, index: int, host: tuple[SysfsInventory, object]
) -> None:
    original = parse_bytes((DOMAINS / name).read_bytes(), name)
    assert domain_rng_errors(original.data, name) == []
    el = _devices(original)[index]
    referenced = parse_bytes(_with_reference(original, el), name)
    assert _devices(referenced)[index].find("source") is None

    inventory, scsi = host
    result = resolve_domain(
        referenced,
        parse_store(parse_bytes(STORE, "mappings.xml")),
        inventory,
        "hv1",
        scsi=scsi,  # type: ignore[arg-type]
    )
    assert domain_rng_errors(result.data, "resolved.xml") == []
    resolved = _devices(parse_bytes(result.data, "resolved.xml"))[index]
    assert _children(resolved) == _children(el)


def test_source_joins_a_one_line_hostdev_after_its_driver() -> None:
    data = (DOMAINS / "every-child.xml").read_bytes()
    doc = parse_bytes(data, "d.xml")
    el = _devices(doc)[0]
    start = el.start_end
    flat = (
        data[:start] + b"<driver name='vfio'/><address type='pci' domain='0' bus='1' slot='0' "
        b"function='0'/></hostdev>" + data[el.end :]
    )
    doc = parse_bytes(flat, "d.xml")
    el = _devices(doc)[0]
    splicer = Splicer(doc)
    splicer.insert_child(el, Node("source"), after=("driver",))
    out = parse_bytes(splicer.apply(), "out.xml")
    assert _children(_devices(out)[0]) == ["driver", "source", "address"]
