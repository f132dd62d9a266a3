"""The hook parses the domain once and reads its `hr:resolution` once (issue 11): the
parsed document and the read record are handed down to the verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.core import metadata
from hostdev_resolver.xml import xmldoc

from .fixtures import domain_xml, gpu_host, make_host, mapped
from .test_hook import Call


def test_prepare_parses_the_domain_once_and_reads_the_record_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("hook-p", mapped("gpu0") + "\n" + mapped("gpu0-audio")))
    parsed: list[str] = []
    records: list[str] = []
    parse_bytes, read_record = xmldoc.parse_bytes, metadata.read_record

    def counting_parse(data: bytes, source: str) -> xmldoc.Document:
        parsed.append(source)
        return parse_bytes(data, source)

    def counting_read(doc: xmldoc.Document, el: xmldoc.Element) -> object:
        records.append(el.tag)
        return read_record(doc, el)

    monkeypatch.setattr(xmldoc, "parse_bytes", counting_parse)
    monkeypatch.setattr(metadata, "read_record", counting_read)
    call = Call(host)
    assert call("hook-p", "prepare", "begin", xml) == 0, call.stderr.getvalue()
    assert [s for s in parsed if "hook stdin" in s] == ["domain hook-p (hook stdin)"]
    # Two records, each read once, for the store view, the SCSI view, the verification,
    # the capability checks and the binding plan alike.
    assert records == ["pci", "pci"]
