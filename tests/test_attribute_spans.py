"""The splicer finds an attribute's bytes by hand exactly where the regular expression
it replaced (kept here as the reference) found them, on every start tag we have."""

from __future__ import annotations

import re
from pathlib import Path

from hostdev_resolver.xmldoc import _attributes, parse_bytes

REFERENCE = re.compile(rb"""\s+([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""")
ROOT = Path(__file__).resolve().parents[1]


def _reference(tag: bytes) -> list[tuple[bytes, int, int]]:
    return [(m.group(1), m.start(), m.end()) for m in REFERENCE.finditer(tag)]


def test_hand_written_tags() -> None:
    for tag in [
        b"<a>",
        b"<a/>",
        b"<hostdev mode='subsystem' type=\"pci\" managed='yes' hr:map='gpu0'/>",
        b"<a\n   x = 'a>b'\tyy=\"q'q\"\r\n z=''>",
        b"<address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>",
        b"<a b='1'/>",
        b"<a  b='1'  >",
    ]:
        assert list(_attributes(tag)) == _reference(tag), tag


def test_every_start_tag_of_the_golden_and_example_files() -> None:
    files = [
        *ROOT.glob("tests/golden/**/*.xml"),
        *ROOT.glob("tests/allocation/golden/**/*.xml"),
        *ROOT.glob("examples/**/*.xml"),
    ]
    tags = 0
    for path in files:
        try:
            doc = parse_bytes(path.read_bytes(), str(path))
        except Exception:  # noqa: BLE001 - golden error cases are malformed on purpose
            continue
        for el in doc.root.iter():
            tag = doc.start_tag(el)
            assert list(_attributes(tag)) == _reference(tag), (path, tag)
            tags += 1
    assert tags > 500
