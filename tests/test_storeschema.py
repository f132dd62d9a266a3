"""The store's XSD check runs once per content: remembered passes, never remembered failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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

# In a fresh interpreter: check a store, then say whether xmlschema had to be loaded.
PROBE = (
    "import sys\n"
    "from hostdev_resolver.xml.storeschema import check_store_schema\n"
    "from hostdev_resolver.xml.xmldoc import parse_bytes\n"
    "check_store_schema(parse_bytes(open(sys.argv[1], 'rb').read(), sys.argv[1]), sys.argv[2])\n"
    "print('xmlschema' in sys.modules)\n"
)


def _built(store: Path, cache: Path) -> bool:
    """Did checking `store` build the schema (rather than find its bytes already passed)?"""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(store), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip() == "True"


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
