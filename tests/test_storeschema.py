"""The store's XSD check runs once per content: remembered passes, never remembered failures."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hostdev_resolver.model.errors import InputError
from hostdev_resolver.xml.storeschema import check_store_schema, verdict_key
from hostdev_resolver.xml.xmldoc import parse_bytes

NS = "http://hostdev-resolver.org/xmlns/store/1"
GOOD = (
    f"<mappings xmlns='{NS}'>\n  <pci name='nic'>\n"
    "    <node name='hv1' address='0000:05:00.0' vendor='8086' device='1533'/>\n"
    "  </pci>\n</mappings>\n"
)
# The hand edit: an upper-case vendor ID store.xsd does not allow, on line 3.
BAD = GOOD.replace("vendor='8086'", "vendor='80AB'")

# In a fresh interpreter: check a store, then say whether a validator ran (libxml2's,
# or xmlschema, which words a refusal), and whether xmlschema was loaded.
PROBE = (
    "import sys\n"
    "from hostdev_resolver.xml import storeschema\n"
    "from hostdev_resolver.xml.xmldoc import parse_bytes\n"
    "ran = []\n"
    "real = storeschema.accepted_by_libxml2\n"
    "storeschema.accepted_by_libxml2 = lambda data, *a: ran.append(1) or real(data, *a)\n"
    "doc = parse_bytes(open(sys.argv[1], 'rb').read(), sys.argv[1])\n"
    "storeschema.check_store_schema(doc, sys.argv[2])\n"
    "print(bool(ran), 'xmlschema' in sys.modules)\n"
)


def _checked(store: Path, cache: Path) -> tuple[bool, bool]:
    """(was `store` checked, rather than found already passed; was xmlschema loaded)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(store), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    ran, loaded = proc.stdout.split()
    return ran == "True", loaded == "True"


def _built(store: Path, cache: Path) -> bool:
    """Did checking `store` run a validator (rather than find its bytes already passed)?"""
    return _checked(store, cache)[0]


def test_a_passing_store_is_checked_once_until_its_bytes_change(tmp_path: Path) -> None:
    store, cache = tmp_path / "m.xml", tmp_path / "cache"
    store.write_text(GOOD)
    assert _built(store, cache)
    assert not _built(store, cache)
    assert os.stat(cache).st_mode & 0o777 == 0o700
    assert os.stat(cache / "store-verdicts").st_mode & 0o777 == 0o600
    store.write_text(GOOD.replace("hv1", "hv2"))  # a hand edit, still valid
    assert _built(store, cache)
    assert not _built(store, cache)


def test_a_passing_store_is_checked_without_loading_xmlschema(tmp_path: Path) -> None:
    """libxml2 gives the verdict (~1 ms); xmlschema (~0.35 s) only words a refusal."""
    store, cache = tmp_path / "m.xml", tmp_path / "cache"
    store.write_text(GOOD)
    assert _checked(store, cache) == (True, False)


def test_a_store_that_fails_is_refused_every_time_with_its_line(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    check_store_schema(parse_bytes(GOOD.encode(), "m.xml"), str(cache))
    for _ in range(2):
        with pytest.raises(InputError) as err:
            check_store_schema(parse_bytes(BAD.encode(), "m.xml"), str(cache))
        assert err.value.message.startswith("m.xml:3: store does not match schemas/store.xsd:")
    assert verdict_key(BAD.encode()) not in (cache / "store-verdicts").read_text()


@pytest.mark.parametrize("loose", ["file", "dir"])
def test_a_cache_others_can_write_is_not_trusted(tmp_path: Path, loose: str) -> None:
    store, cache = tmp_path / "m.xml", tmp_path / "cache"
    store.write_text(GOOD)
    assert _built(store, cache)
    if loose == "file":
        os.chmod(cache / "store-verdicts", 0o666)
    else:
        os.chmod(cache, 0o777)
    assert _built(store, cache)


def test_a_forged_entry_cannot_pass_a_store_it_was_not_made_for(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    verdicts = cache / "store-verdicts"
    verdicts.write_text(verdict_key(GOOD.encode()) + "\n")
    verdicts.chmod(0o600)
    with pytest.raises(InputError):
        check_store_schema(parse_bytes(BAD.encode(), "m.xml"), str(cache))


def test_the_key_covers_the_schema_and_the_bytes(tmp_path: Path) -> None:
    other = tmp_path / "store.xsd"
    other.write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'/>")
    assert verdict_key(GOOD.encode()) != verdict_key(GOOD.encode(), str(other))
    assert verdict_key(GOOD.encode()) != verdict_key(GOOD.encode() + b" ")


# -- libxml2 gives the verdict, xmlschema the words: the two must agree -----------------


def _corpus() -> list[bytes]:
    """Every store the tests and the example carry."""
    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "tests").rglob("*.xml")) + sorted((root / "examples").rglob("*.xml"))
    return [d for d in (f.read_bytes() for f in files) if NS.encode() in d]


# Values store.xsd refuses somewhere, or accepts only in some attributes.
_BAD_VALUES = (
    "",
    " ",
    "X",
    "80AB",
    "0x",
    "-1",
    "1.5",
    "0000:5:00.0",
    "0000:05:00.8",
    "00000:05:00.0",
    "ab",
    "a" * 129,
    "0x5000c500a1b2c3d",
    "eui.0123",
    "naa.5000c500a1b2c3d4",
    "yes",
    "maybe",
    "0123456789abcdef",
)


def _mutants(data: bytes) -> list[bytes]:
    """Hand edits of every kind: each attribute given each bad value or removed, an
    unknown attribute and a duplicate on every element, every element renamed."""
    import lxml.etree as etree

    original = etree.fromstring(data)
    out = []
    paths = [original.getroottree().getpath(e) for e in original.iter(etree.Element)]

    def edited(change: Callable[[Any], None], path: str) -> bytes:
        root = etree.fromstring(data)
        (element,) = root.getroottree().xpath(path)
        change(element)
        return bytes(etree.tostring(root))

    for path in paths:
        (element,) = original.getroottree().xpath(path)
        for name in element.attrib:
            for value in _BAD_VALUES:
                out.append(edited(lambda e, n=name, v=value: e.set(n, v), path))
            out.append(edited(lambda e, n=name: e.attrib.pop(n), path))
        out.append(edited(lambda e: e.set("colour", "red"), path))
        if element.getparent() is not None:
            out.append(edited(lambda e: e.addnext(copy.deepcopy(e)), path))
            out.append(edited(lambda e: setattr(e, "tag", e.tag + "x"), path))
    return out


def test_libxml2_and_xmlschema_give_every_store_the_same_verdict() -> None:
    import xmlschema

    from hostdev_resolver.xml.storeschema import SCHEMA, accepted_by_libxml2

    assert accepted_by_libxml2(GOOD.encode()), "the system's libxml2 cannot check stores"
    schema = xmlschema.XMLSchema(SCHEMA)
    corpus = _corpus()
    assert len(corpus) >= 8
    stores = [*corpus, *(m for data in corpus for m in _mutants(data))]
    verdicts = {True: 0, False: 0}
    for data in stores:
        expected = schema.is_valid(data.decode())
        assert accepted_by_libxml2(data) == expected, data.decode()
        verdicts[expected] += 1
    # Both verdicts are well represented: the test cannot pass by agreeing on one.
    assert verdicts[True] >= 50 and verdicts[False] >= 500, verdicts
