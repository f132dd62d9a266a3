"""The splicer finds an attribute's bytes by hand exactly where the regular expression
it replaced (kept here as the reference) found them, on every start tag we have."""

from __future__ import annotations

import re
from pathlib import Path

from hostdev_resolver.xml.xmldoc import _attributes, _tag_end, parse_bytes

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


def _reference_tag_end(data: bytes, start: int) -> int:
    """The byte-by-byte scan `_tag_end` replaced (kept as the reference)."""
    quote = 0
    for i in range(start + 1, len(data)):
        c = data[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x3E:
            return i + 1
    return len(data)


def test_tag_end_skips_quoted_closing_brackets_as_the_byte_scan_did() -> None:
    for data in [
        b"<a>",
        b"<a/>rest>",
        b"<a x='1>2'>",
        b"<a x=\"1>2\" y='3'>",
        b'<a x=\'say "hi" >\' y="it\'s">tail>',
        b"<a x=\"q'q\"\ty='>'/>",
        b"<a x='unclosed>",
        b"<a x=\"one'>",
        b"<a",
        b"</a  >after>",
    ]:
        assert _tag_end(data, 0) == _reference_tag_end(data, 0), data


def test_tag_end_on_every_tag_of_the_golden_and_example_files() -> None:
    files = [
        *ROOT.glob("tests/golden/**/*.xml"),
        *ROOT.glob("tests/allocation/golden/**/*.xml"),
        *ROOT.glob("examples/**/*.xml"),
    ]
    tags = 0
    for path in files:
        data = path.read_bytes()
        start = data.find(b"<")
        while start >= 0:
            assert _tag_end(data, start) == _reference_tag_end(data, start), (path, start)
            tags += 1
            start = data.find(b"<", start + 1)
    assert tags > 1000
