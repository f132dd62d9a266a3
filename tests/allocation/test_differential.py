"""Differential test: our `libvirt` policy against the real libvirtd.

Each seeded domain (tests/allocation/generator.py) is defined in libvirtd and
read back (`dumpxml`), and run through `allocate_domain_xml()`; the PCI layout
(every device's guest address, every controller with its model, chassis/port and
address) must be identical. Our output is then defined too and must come back
unchanged: libvirt accepts it and adds nothing. A mismatch prints only the
differing devices. Everything goes through one libvirt-python connection
(defining ~330 domains twice takes a few seconds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hostdev_resolver.allocation import allocate_domain_xml
from hostdev_resolver.errors import HostdevError
from tests.allocation.generator import generate
from tests.allocation.layout import layout_diff, pci_layout
from tests.support import libvirtd

PREFIX = "alloc-diff-"
SEEDS = range(0, 330)
REQUIRED = 300

pytestmark = pytest.mark.daemon


@pytest.fixture(scope="module")
def conn() -> Iterator[object]:
    # ensure_daemon() directly rather than the session fixture `libvirt_uri`: that one
    # stops the one shared daemon when the session ends, under other people's tests.
    libvirt = pytest.importorskip("libvirt")
    try:
        uri = libvirtd.ensure_daemon()
    except libvirtd.DaemonUnavailable as exc:
        pytest.skip(f"real libvirtd unavailable: {exc}")
    libvirtd.undefine_all(PREFIX)
    connection = libvirt.open(uri)
    yield connection
    connection.close()
    libvirtd.undefine_all(PREFIX)


def _define_and_dump(conn: object, xml: str) -> str:
    dom = conn.defineXML(xml)  # type: ignore[attr-defined]
    try:
        return str(dom.XMLDesc(0))
    finally:
        dom.undefine()


def test_libvirt_policy_matches_libvirtd(conn: object) -> None:
    import libvirt

    compared = 0
    both_refused = 0
    failures: list[str] = []
    started = time.monotonic()
    for seed in SEEDS:
        domain = generate(seed, PREFIX)
        try:
            theirs: str | None = _define_and_dump(conn, domain.xml)
            their_error = ""
        except libvirt.libvirtError as exc:
            theirs, their_error = None, str(exc)
        try:
            ours: str | None = allocate_domain_xml(domain.xml.encode(), domain.name).decode()
            our_error = ""
        except HostdevError as exc:
            ours, our_error = None, exc.message
        if theirs is None or ours is None:
            if (theirs is None) != (ours is None):
                failures.append(
                    f"seed {seed}: libvirt {their_error or 'accepts'}; ours {our_error or 'accepts'}"
                )
            else:
                both_refused += 1
            continue
        diff = layout_diff(pci_layout(theirs), pci_layout(ours))
        if not diff:
            again = _define_and_dump(conn, ours)
            diff = [
                f"(redefined) {line}" for line in layout_diff(pci_layout(ours), pci_layout(again))
            ]
        if diff:
            failures.append(f"seed {seed} ({domain.machine}):\n  " + "\n  ".join(diff))
        compared += 1
    elapsed = time.monotonic() - started
    print(
        f"differential: {compared} domains identical-checked, {both_refused} refused by both, {elapsed:.1f} s"
    )
    assert not failures, "\n".join(failures)
    assert compared >= REQUIRED
