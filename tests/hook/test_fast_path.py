"""The no-metadata fast path passes only guests that cannot be ours; the ACL checks the
guest libvirt is starting.

The fast path looks for the namespace's bytes. A resolved domain can spell the
namespace without them (a character reference, UTF-16, another declared encoding);
such documents must be parsed and verified, not passed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev_resolver.doors import hook

from .fixtures import domain_xml, gpu_host, make_host, mapped
from .test_hook import Call

NS = "http://hostdev-resolver.org/xmlns/domain/1"


def denied_domain(tmp_path: Path) -> tuple[Call, bytes]:
    """A resolved guest whose mapping does not allow it: a verified start is refused."""
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("fast-d", mapped("nvme0", managed="yes")))
    host.store.write_text(
        host.store.read_text().replace(
            "<pci name='nvme0'>", "<pci name='nvme0'>\n    <allow domain='db-*'/>"
        )
    )
    return Call(host), xml


def hide_namespace(xml: bytes, how: str) -> bytes:
    if how == "charref":
        return xml.replace(b"'" + NS.encode(), b"'&#104;" + NS[1:].encode())
    if how == "hexref":
        return xml.replace(NS.encode(), b"http&#x3a;" + NS[5:].encode())
    if how == "utf-16":
        return ("<?xml version='1.0' encoding='UTF-16'?>\n" + xml.decode()).encode("utf-16")
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["charref", "hexref", "utf-16"])
def test_a_hidden_namespace_is_verified_not_passed(tmp_path: Path, how: str) -> None:
    call, xml = denied_domain(tmp_path)
    assert call("fast-d", "prepare", "begin", xml) == 1
    hidden = hide_namespace(xml, how)
    assert hook.HR_NS_BYTES not in hidden
    code = call("fast-d", "prepare", "begin", hidden)
    assert code != 0, "a resolved domain passed the hook unverified"
    (line,) = call.stderr.getvalue().splitlines()
    if how != "utf-16":
        assert "nvme0: the mapping does not allow domain 'fast-d'" in line


@pytest.mark.parametrize(
    "xml",
    [
        b"<domain type='kvm'><name>a</name></domain>",
        b"\xef\xbb\xbf<domain><name>a</name></domain>",
        b"<?xml version='1.0' encoding='UTF-8'?>\n<domain><name>a</name></domain>",
        b'<?xml version="1.0" encoding = "iso-8859-1" ?><domain><name>a</name></domain>',
        b"<domain><name>a</name><description>a &lt;b&gt; &amp; 'c' \"d\"</description>"
        b"<metadata><app:x xmlns:app='http://example.org/app' v='&amp;&apos;'/></metadata>"
        b"</domain>",
    ],
)
def test_unrelated_guests_still_pass_unread(xml: bytes) -> None:
    assert hook._surely_unrelated(xml)


def test_an_unrelated_guest_with_a_character_reference_is_parsed_and_passes(
    tmp_path: Path,
) -> None:
    """libvirt writes none, but another program's <metadata> may: such a guest takes the
    parser's path, and still passes without the config or store being read."""
    host = make_host(tmp_path)
    host.store.write_text("<not xml")
    host.config.write_text("this is [not toml")
    call = Call(host)
    xml = domain_xml("plain", "").replace("<name>", "<description>x&#10;y</description><name>")
    assert not hook._surely_unrelated(xml.encode())
    for op, subop in [("prepare", "begin"), ("migrate", "begin"), ("reconnect", "begin")]:
        assert call("plain", op, subop, xml.encode()) == 0
        assert call.stdout.getvalue() == b"" and call.stderr.getvalue() == ""


@pytest.mark.parametrize(
    "xml",
    [
        b"<domain xmlns:x='&#104;ttp://example.org'/>",
        b"<!DOCTYPE domain [<!ATTLIST domain xmlns:hr CDATA 'x'>]><domain/>",
        "<domain/>".encode("utf-16"),
        "<domain/>".encode("utf-32-be"),
        b"<?xml version='1.0' encoding='EBCDIC-US'?><domain/>",
        b"<?xml version='1.0' encoding='UTF-7'?><domain/>",
        b"<?xml version='1.0' encoding='utf-8'",
        "<domain/>".encode("cp037"),
    ],
)
def test_bytes_that_could_hide_the_namespace_are_parsed(xml: bytes) -> None:
    assert not hook._surely_unrelated(xml)


def test_a_character_reference_in_text_cannot_swallow_a_declaration() -> None:
    """Text that looks like the start of an xmlns attribute must not hide the real one."""
    xml = (
        b"<domain><description>xmlns='</description>"
        b"<metadata><hr:resolution xmlns:hr='&#104;ttp://hostdev-resolver.org/xmlns/domain/1'/>"
        b"</metadata></domain>"
    )
    assert not hook._surely_unrelated(xml)


def test_the_xml_must_name_the_guest_libvirt_starts(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("db-1", mapped("nvme0", managed="yes")))
    host.store.write_text(
        host.store.read_text().replace(
            "<pci name='nvme0'>", "<pci name='nvme0'>\n    <allow domain='db-*'/>"
        )
    )
    call = Call(host)
    assert call("db-1", "prepare", "begin", xml) == 0, call.stderr.getvalue()
    # libvirt starts 'web-1' but the XML (whose <name> the ACL sees) says 'db-1'.
    assert call("web-1", "prepare", "begin", xml) == 1
    assert call.stderr.getvalue().splitlines() == [
        "hostdev-resolver: the domain XML on stdin is named 'db-1', but libvirt runs the "
        "hook for domain 'web-1'; not checked against another guest's name; give the hook "
        "the XML of the domain it is run for"
    ]
    assert call.kernels == [] or all(not k.writes for k in call.kernels)
