"""Differential test: our `libvirt` policy against the real libvirtd.

Each seeded domain (tests/allocation/generator.py) is defined in libvirtd and
read back (`dumpxml`), and run through `allocate_domain_xml()`; the PCI layout
(every device's guest address, every controller with its model, chassis/port and
address) must be identical. Our output is then defined too and must come back
unchanged: libvirt accepts it and adds nothing. A domain libvirt refuses must be
refused by us too, with libvirt's reason in our message. A mismatch prints only the
differing devices. Everything goes through one libvirt-python connection
(defining 900 domains, most of them twice, takes 10-20 s on 2 cores).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from hostdev_resolver.core.allocation import allocate_domain_xml
from hostdev_resolver.model.errors import HostdevError
from tests.allocation.generator import (
    NIC_MODELS,
    SCSI_MODELS,
    SOUND_MODELS,
    USB_MODELS_PC,
    VIDEO_MODELS,
    VIRTIO_MODELS,
    generate,
)
from tests.allocation.layout import layout_diff, pci_layout
from tests.support import libvirtd

PREFIX = "alloc-diff-"
SEEDS = range(0, 900)
REQUIRED = 750  # domains compared address by address
REQUIRED_REFUSED = 80  # domains refused by both, for libvirt's reasons

# What the generated domains must contain between them (a generator change that
# drops a kind fails here rather than silently testing less).
COVERAGE = (
    *(f"<model type='{m}'/></interface>" for m in NIC_MODELS if m),
    *(f"<sound model='{m}'>" for m in SOUND_MODELS),
    *(f"<video><model type='{m}'/>" for m in VIDEO_MODELS),
    *(f"type='usb' index='0' model='{m}'" for m in USB_MODELS_PC),
    *(f"type='scsi' index='0' model='{m}'" for m in SCSI_MODELS),
    *(f"<rng model='{m}'>" for m in VIRTIO_MODELS),
    *(f"<memballoon model='{m}'>" for m in VIRTIO_MODELS),
    *(f"<vsock model='{m}'>" for m in VIRTIO_MODELS),
    *(f"<filesystem type='mount' accessmode='mapped' model='{m}'>" for m in VIRTIO_MODELS),
    "<input type='tablet' bus='virtio'>",
    "<watchdog model='i6300esb'",
    "<shmem ",
    "<iommu model='virtio'>",
    "<memory model='virtio-mem'>",
    "<memory model='virtio-pmem'",
    "<target type='pci-serial'/>",
    "<console type='pty'><target type='serial'/><address type='pci'",
    "managed='no'",
    "type='scsi_host'",
    "multifunction='on'",
    "<address type='pci'/>",
    "model='pcie-switch-downstream-port'",
    "model='dmi-to-pci-bridge'",
    "model='pcie-to-pci-bridge'",
    "model='pcie-expander-bus'><target busNr=",
    "model='pci-expander-bus'><target busNr=",
    "ich9-uhci3",
    "type='mdev' model='vfio-pci'",
    # refused by libvirt 9.0, and so by us
    "<sound model='ich7'/>",
    "<model type='usb-net'/>",
    "<hub type='usb'/>",
    "<redirdev bus='usb'",
    "<input type='tablet' bus='usb'/>",
    "<memballoon model='xen'/>",
    "<driver type='loop'/>",
    "<address type='drive'",
    "<video><model type='vga'/></video>",
    "<iommu model='virtio'/>",
)

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
    # refusals are compared by the test; libvirt's default handler would also print them
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
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
    seen: set[str] = set()
    started = time.monotonic()
    for seed in SEEDS:
        domain = generate(seed, PREFIX)
        seen.update(c for c in COVERAGE if c in domain.xml)
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
                # "internal error: Cannot automatically add ..." -> the reason itself
                reason = re.sub(r"^[a-z ]+: ", "", their_error)
                if reason not in our_error:
                    failures.append(
                        f"seed {seed}: libvirt says {their_error!r}; ours {our_error!r}"
                    )
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
    assert both_refused >= REQUIRED_REFUSED
    assert not set(COVERAGE) - seen, f"never generated: {sorted(set(COVERAGE) - seen)}"
