"""`resolve_domain(located=…)`: a run over one store and one host (`validate` of a
fleet) locates each store entry once, and gets the same documents as without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.core.resolution import resolve_domain
from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.host.sysfs import SysfsInventory
from hostdev_resolver.model.errors import HostdevError
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.support.hosttree import HostSpec, HostTree

GOLDEN = Path(__file__).parent / "golden"
STORE = GOLDEN / "stores" / "hv1.xml"
HR = "http://hostdev-resolver.org/xmlns/domain/1"


def _domain(name: str, devices: str) -> bytes:
    return (
        f"<domain type='kvm' xmlns:hr='{HR}'>\n  <name>{name}</name>\n"
        "  <memory unit='MiB'>1024</memory>\n"
        "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
        f"  <devices>\n{devices}  </devices>\n</domain>\n"
    ).encode()


GPU0 = "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'/>\n"
POOL = "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpus'/>\n"
FILTERED = (
    "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'>\n"
    "      <source writeFiltering='yes'><address domain='0x0000' bus='0x99' slot='0x00'"
    " function='0x0'/></source>\n    </hostdev>\n"
)


@pytest.fixture
def host(tmp_path: Path) -> SysfsInventory:
    HostTree.build(tmp_path / "sys", HostSpec.load(GOLDEN / "hosts" / "hv1.json"))
    return SysfsInventory(tmp_path / "sys")


def _outcome(data: bytes, host: SysfsInventory, located: dict[object, object] | None) -> object:
    """The resolved bytes, or the refusal's message."""
    store = load_store(str(STORE))
    try:
        return resolve_domain(parse_bytes(data, "d.xml"), store, host, "hv1", located=located).data
    except HostdevError as exc:
        return exc.message


def test_the_same_documents_with_and_without_it(host: SysfsInventory) -> None:
    """Every golden domain of this host, resolved alone and then again in one run that
    keeps what it located (a pool's members, a mapping the ACL refuses, a domain that
    claims one device twice): the same bytes, or the same refusal."""
    cases = sorted(
        case / "domain.xml"
        for case in GOLDEN.iterdir()
        if (case / "domain.xml").exists()
        and '"host": "hv1"' in (case / "case.json").read_text()
        and '"store": "hv1"' in (case / "case.json").read_text()
    )
    assert len(cases) >= 10
    store = load_store(str(STORE))
    located: dict[object, object] = {}
    for _ in range(2):
        for path in cases:
            data = path.read_bytes()
            alone = _outcome(data, host, None)
            try:
                shared: object = resolve_domain(
                    parse_bytes(data, "d.xml"), store, host, "hv1", located=located
                ).data
            except HostdevError as exc:
                shared = exc.message
            assert shared == alone, path.parent.name
    assert located


def test_a_source_kept_for_the_run_is_not_changed_by_one_document(host: SysfsInventory) -> None:
    """A document's old <source> keeps its attributes (writeFiltering) in its own
    result only: the next document resolved to the same device does not get them."""
    store = load_store(str(STORE))
    located: dict[object, object] = {}
    first = resolve_domain(
        parse_bytes(_domain("ml-a", FILTERED), "a.xml"), store, host, "hv1", located=located
    ).data
    second = resolve_domain(
        parse_bytes(_domain("ml-b", GPU0), "b.xml"), store, host, "hv1", located=located
    ).data
    assert b"writeFiltering='yes'" in first and b"bus='0x41'" in first
    assert b"writeFiltering" not in second and b"bus='0x41'" in second


def test_a_fleet_locates_each_entry_once(
    tmp_path: Path, host: SysfsInventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`validate` of many files naming the same mappings locates each store entry once
    per run, however many references name it."""
    from hostdev_resolver.core.kinds import pci

    calls: list[object] = []
    real = pci.locate_pci

    def counted(expectation: object, inventory: object) -> object:
        calls.append(expectation)
        return real(expectation, inventory)  # type: ignore[arg-type]

    monkeypatch.setattr(pci, "locate_pci", counted)
    files = []
    for i in range(6):
        path = tmp_path / f"d{i}.xml"
        # Each file a revision of one guest (one claimant): gpu0, and a member of the
        # pool, whose first member is gpu0's device (taken) and second is free.
        path.write_bytes(_domain("ml-train", GPU0 + POOL).replace(b"1024", str(i).encode()))
        files.append(str(path))
    common = ["--store", str(STORE), "--node", "hv1", "--sysfs", host.reader.root]
    assert cli.main(["validate", files[0], *common]) == 0
    assert len(calls) == 3  # gpu0's entry and the pool's two
    calls.clear()
    assert cli.main(["validate", *files, *common]) == 0
    assert len(calls) == 3
