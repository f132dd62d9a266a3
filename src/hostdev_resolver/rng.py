"""Validation against libvirt's own RELAX NG schema (shipped by libvirt0)."""

from __future__ import annotations

import functools
from pathlib import Path

from .errors import HostAccessError, Location

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


@functools.cache
def _parser() -> object:
    """One parser for every document of a run (`validate` of a fleet): making one costs
    about half of what validating a small domain does."""
    import lxml.etree

    return lxml.etree.XMLParser(resolve_entities=False, no_network=True)


def domain_rng_errors(
    data: bytes, source: str, rng: Path = DOMAIN_RNG
) -> list[tuple[Location, str]]:
    """Every way `data` fails libvirt's domain.rng, with its line; [] when it validates."""
    import lxml.etree

    schema = _schema(rng)
    assert isinstance(schema, lxml.etree.RelaxNG)
    parser = _parser()
    assert isinstance(parser, lxml.etree.XMLParser)
    tree = lxml.etree.fromstring(data, parser)
    if schema.validate(tree):
        return []
    return [(Location(source, e.line), e.message) for e in schema.error_log]
