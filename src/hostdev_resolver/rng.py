"""Validation against libvirt's own RELAX NG schema (shipped by libvirt0)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from .errors import HostAccessError, InputError, Location

DOMAIN_RNG = Path("/usr/share/libvirt/schemas/domain.rng")


@functools.cache
def _schema(path: Path) -> object:
    import lxml.etree

    if not path.exists():
        raise HostAccessError(
            f"libvirt's schema {path} is not installed",
            fix="install libvirt0 (Debian) / libvirt-libs, which ship it",
        )
    return lxml.etree.RelaxNG(lxml.etree.parse(str(path)))


def domain_rng_errors(
    data: bytes, source: str, rng: Path = DOMAIN_RNG
) -> list[tuple[Location, str]]:
    """Every way `data` fails libvirt's domain.rng, with its line; [] when it validates."""
    import lxml.etree

    schema = _schema(rng)
    assert isinstance(schema, lxml.etree.RelaxNG)
    try:
        tree = libxml2_tree(data, source)
    except InputError as exc:
        return [(exc.where, exc.what)]
    if schema.validate(tree):
        return []
    return [(Location(source, e.line), e.message) for e in schema.error_log]


def libxml2_tree(data: bytes, source: str) -> Any:
    """`data` parsed by lxml, as libvirt's libxml2 reads it, or an InputError.

    Our own reader (expat) has no depth limit, but libxml2 refuses elements nested
    deeper than 256 levels unless XML_PARSE_HUGE is given, which libvirt never gives
    (virXMLParseHelper): such a document is malformed input, not a crash of ours.
    """
    import lxml.etree

    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        return lxml.etree.fromstring(data, parser)
    except lxml.etree.XMLSyntaxError as exc:
        msg = str(exc.msg or exc)
        if "Excessive depth" in msg:
            raise InputError(
                "elements are nested deeper than 256 levels, which libxml2 (and so "
                "libvirt) refuses",
                where=Location(source, exc.lineno),
                fix="flatten the document",
            ) from None
        raise InputError(
            f"libxml2 cannot read it: {msg}", where=Location(source, exc.lineno)
        ) from None
