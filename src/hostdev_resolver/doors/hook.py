"""The libvirt qemu hook (SPEC §6): verify at start, bind vfio-pci, rewrite on migrate/restore.

libvirt runs `/etc/libvirt/hooks/qemu DOMAIN OP SUBOP EXTRA` (and every executable in
`qemu.d/`, libvirt >= 6.5) with the domain XML on stdin, and waits for it: a hook
must never call back into libvirt (docs/hooks.rst: "calling libvirt functions from
within a hook script can cause deadlocks"). A non-zero exit of `prepare begin` aborts
the start and libvirt shows the hook's stderr in the error; for `migrate begin` and
`restore begin` libvirt takes stdout as the new XML, and empty output means unchanged.

The hook runs on every start of every guest, so this module imports only `os` and
`sys` at load time. A domain without the `hr` namespace is passed before anything
else is read or imported (the config and store may be missing or corrupt: unrelated
guests must never be blocked); the rest of the package is imported only for domains
that need it, and never lxml, xmlschema, libvirt, argparse or pyudev.
"""

from __future__ import annotations

import os
import sys

# `typing` and `collections.abc` cost milliseconds we do not spend on unrelated guests;
# mypy treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import BinaryIO, TextIO

    from .hookops import WriterFactory

# metadata.HR_NS, spelled out so the no-metadata path imports nothing of the package
# (tests/hook check the two agree).
HR_NS_BYTES = b"http://hostdev-resolver.org/xmlns/domain/1"
# xmldoc.MAX_DOCUMENT_BYTES (libvirt's limit for domain XML), spelled out likewise: stdin is
# read up to one byte past it, and the parser refuses a domain that long.
MAX_DOMAIN_BYTES = 10 * 1024 * 1024

# Encodings in which the namespace's bytes are its UTF-8 bytes (it is ASCII).
_ASCII_SUPERSETS = (b"utf-8", b"utf8", b"us-ascii", b"ascii", b"iso-8859-1", b"latin1")
_SPACE = b" \t\r\n"


def _surely_unrelated(data: bytes) -> bool:
    """Can these bytes not declare the hr namespace? Only then does a guest pass unread.

    libvirt sends its own formatting (UTF-8, no DTD, namespaces written out), so a
    resolved domain always holds the namespace's bytes. Anything that could spell it
    otherwise goes to the parser instead, which costs time, never correctness: a
    character reference anywhere (`&#104;ttp://…`; telling an xmlns value from text
    would take a parser, and libvirt's formatter writes none: virBufferEscapeString
    uses &lt; &gt; &amp; &quot; &apos; only), a DTD (its entities and ATTLIST defaults),
    UTF-16/32 (NULs between ASCII bytes), or a declared encoding in which ASCII is not
    ASCII (EBCDIC, UTF-7). The predefined entities cannot spell the namespace: it has
    none of < > & ' ".
    """
    if HR_NS_BYTES in data or b"\x00" in data:
        return False
    # One-byte searches (memchr) first: a two-byte search costs ~1.5 ms per MB here.
    if b"&" in data and b"#" in data and b"&#" in data:
        return False
    if b"!" in data and b"<!DOCTYPE" in data:
        return False
    # Only the head is copied: a guest start must not pay for copying a large document.
    head = data[3:4096] if data.startswith(b"\xef\xbb\xbf") else data[:4096]
    if not head.lstrip(_SPACE).startswith(b"<"):
        return False
    if head.startswith(b"<?xml"):
        end = head.find(b"?>")
        if end < 0:
            return False  # a declaration longer than 4 KiB, or none closed: parse it
        declaration = head[:end]
        at = declaration.find(b"encoding")
        if at >= 0:
            value = declaration[at + 8 :].lstrip(_SPACE).removeprefix(b"=").strip(_SPACE)
            if value[1:-1].lower() not in _ASCII_SUPERSETS:
                return False
    return True


# The operations that look at the domain; every other (op, subop) exits 0.
_PREPARE = ("prepare", "begin")
_RELEASE = ("release", "end")
_RECONNECT = ("reconnect", "begin")
_FILTERS = (("migrate", "begin"), ("restore", "begin"))


def main(
    argv: Sequence[str],
    stdin: BinaryIO,
    *,
    stdout: BinaryIO | None = None,
    stderr: TextIO | None = None,
    environ: dict[str, str] | None = None,
    writer_factory: WriterFactory | None = None,
    dev_log: str = "/dev/log",
) -> int:
    """Run one hook call: argv is `DOMAIN OP SUBOP [EXTRA]` (without the program name)."""
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    if len(argv) < 3:
        print("usage: qemu DOMAIN OP SUBOP [EXTRA] < domain.xml (run by libvirtd)", file=err)
        return 2
    domain, op = argv[0], (argv[1], argv[2])
    if op not in (_PREPARE, _RELEASE, _RECONNECT, *_FILTERS):
        return 0
    data = stdin.read(MAX_DOMAIN_BYTES + 1)
    if _surely_unrelated(data):
        return 0
    from ..model.errors import HostdevError
    from .hookops import (
        Log,
        context,
        filter_xml,
        finding_line,
        load_config,
        prepare,
        read_stdin,
        real_writer,
        release,
    )

    parsed = read_stdin(data, domain)
    if not parsed.ours:
        # The namespace is declared but nothing was resolved: still not ours.
        return 0
    log = Log(domain, " ".join(op), err, dev_log=dev_log)
    make_writer = writer_factory or real_writer
    if op == _RELEASE:
        # Never fail a release (SPEC §6): whatever goes wrong is logged and the
        # guest is torn down regardless.
        try:
            config = load_config(os.environ if environ is None else environ)
            log.configure(config)
            return release(config, domain, log, make_writer)
        except HostdevError as exc:
            log.warning(exc.message)
            return 0
        except Exception as exc:  # noqa: BLE001 - a release must never fail (SPEC §6)
            log.warning(f"unexpected {type(exc).__name__}: {exc}")
            return 0
    try:
        config = load_config(os.environ if environ is None else environ)
        log.configure(config)
        ctx = context(config, data, domain, parsed)
        if op == _PREPARE:
            return prepare(ctx, log, make_writer)
        if op == _RECONNECT:
            from ..core.verification import verify_domain
            from .hookops import scsi_inventory

            scsi = scsi_inventory(ctx)
            checked = verify_domain(
                ctx.doc, ctx.store, ctx.inventory, ctx.node, scsi=scsi, resolution=ctx.resolution
            )
            for f in checked:
                if f.ok:
                    log.info(f.message)
                else:
                    log.warning(finding_line(f))
            return 0
        return filter_xml(ctx, data, log, out)
    except HostdevError as exc:
        if op == _RECONNECT:
            # A running guest is never killed over a store or config problem.
            log.warning(exc.message)
            return 0
        log.problem(exc.message)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the hook's boundary: one line, never a traceback
        # A bug of ours. libvirt kills a guest whose reconnect hook fails, so reconnect
        # only logs; other operations fail closed (a start is refused, not let through).
        what = f"internal error: {type(exc).__name__}: {exc}"
        if op == _RECONNECT:
            log.warning(what)
            return 0
        log.problem(f"{what}; please report it")
        return 1
