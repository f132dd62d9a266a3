"""The store's schema check (schemas/store.xsd), with a cache of stores already proven valid.

Building the XSD with xmlschema costs ~0.8 s per command (the import, then compiling
the schema's patterns), more than everything else `resolve` or `map check` does. The
check must still run whenever the store's bytes change, hand edits included. So a
store that passed is remembered by one key: the SHA-256 of its exact bytes, of
store.xsd and of xmlschema's `__init__.py` (which names its version). The next
command that reads the same bytes under the same schema and validator skips the
build. Only passes are remembered: a cache entry can only ever skip re-checking
bytes already proven valid, never turn a failing store into a passing one, and a
corrupt store is refused with the same line message every time.

The cache is trusted only when it is the invoking user's own: the directory and the
file owned by the effective uid and writable by nobody else (root's lives in
/var/cache/hostdev-resolver, others' in $XDG_CACHE_HOME). Anything else is ignored,
never an error. The hook does not use it: it does not run the XSD at all, its store
reader refuses every value it cannot use.
"""

from __future__ import annotations

import os
import stat
import sys

from ..model.errors import InputError, Location

# Not typing.TYPE_CHECKING: keep the module light (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from .xmldoc import Document

# SHA-256 from CPython's own module: hashlib loads OpenSSL first, ~2.6 ms here, which
# every command that reads a store would pay for three small digests (issue 12). The
# digests are the same; hashlib only where the interpreter has no such module.
if TYPE_CHECKING:
    from hashlib import sha256
else:
    try:
        from _sha256 import sha256  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256

SCHEMA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas", "store.xsd"
)
CACHE_ENV = "HOSTDEV_RESOLVER_CACHE"
ROOT_CACHE = "/var/cache/hostdev-resolver"
_FILE = "store-verdicts"
_KEEP = 64  # remembered stores: a few per store path is plenty


def default_cache_dir() -> str | None:
    """$HOSTDEV_RESOLVER_CACHE (empty: no cache); root's /var/cache/hostdev-resolver;
    otherwise $XDG_CACHE_HOME/hostdev-resolver (~/.cache by default)."""
    given = os.environ.get(CACHE_ENV)
    if given is not None:
        return given or None
    if os.geteuid() == 0:
        return ROOT_CACHE
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hostdev-resolver")


def _validator_digest() -> bytes:
    """What identifies the validator's verdicts: xmlschema's __init__.py (its version).
    Found as the import system would find an installed package, first on sys.path;
    importlib.util (which would also ask import hooks) only when that fails."""
    origin = next(
        (
            path
            for entry in sys.path
            if os.path.isfile(path := os.path.join(entry or ".", "xmlschema", "__init__.py"))
        ),
        None,
    )
    if origin is None:
        import importlib.util

        spec = importlib.util.find_spec("xmlschema")
        origin = spec.origin if spec is not None else None
    if origin is None:
        return b"no-xmlschema"
    with open(origin, "rb") as handle:
        return sha256(handle.read()).digest()


def verdict_key(data: bytes, schema: str = SCHEMA) -> str:
    with open(schema, "rb") as handle:
        schema_digest = sha256(handle.read()).digest()
    h = sha256(b"hostdev-resolver store verdict 1\0")
    h.update(schema_digest)
    h.update(_validator_digest())
    h.update(data)
    return h.hexdigest()


def _owned_privately(info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _trusted_dir(directory: str, *, create: bool) -> bool:
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.makedirs(directory, mode=0o700)
            info = os.lstat(directory)
        except OSError:
            return False
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and _owned_privately(info)


def _read_keys(directory: str) -> list[str]:
    if not _trusted_dir(directory, create=False):
        return []
    try:
        fd = os.open(os.path.join(directory, _FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        info = os.fstat(fd)
        # 0600 and ours: a file others can read or write is not our record.
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            return []
        if stat.S_IMODE(info.st_mode) & 0o077:
            return []
        data = os.read(fd, 80 * _KEEP + 1)
    except OSError:
        return []
    finally:
        os.close(fd)
    return data.decode("ascii", "replace").split()


def cached_valid(key: str, directory: str | None) -> bool:
    return directory is not None and key in _read_keys(directory)


def remember_valid(key: str, directory: str | None) -> None:
    """Add a passing store's key; a cache that cannot be written is no cache."""
    if directory is None or not _trusted_dir(directory, create=True):
        return
    import tempfile

    keys = [*[k for k in _read_keys(directory) if k != key][-(_KEEP - 1) :], key]
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{_FILE}.", dir=directory)  # mode 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("\n".join(keys) + "\n")
        os.replace(tmp, os.path.join(directory, _FILE))
    except OSError:
        import contextlib  # here: every command that reads a store imports this module

        with contextlib.suppress(OSError):
            os.unlink(tmp)


def accepted_by_libxml2(data: bytes, schema: str = SCHEMA) -> bool:
    """True when the system's libxml2 reads `data` and its XML Schema validator accepts
    it against `schema`. False says nothing more: xmlschema then checks the store and
    words what is wrong, with its line (as `validate` asks lxml only about a domain
    libxml2's RELAX NG refused). libxml2 compiles store.xsd and checks a store in about
    a millisecond; xmlschema takes ~0.35 s to import and build the schema, which every
    `map add` paid (its store is new bytes every time). tests/test_storeschema.py holds
    the two validators to the same verdict on the stores of the tests and on hand edits
    of every kind store.xsd refuses."""
    from .rng import PARSE_OPTIONS, libxml2

    bound = libxml2()
    if bound is None:
        return False
    lib, quiet = bound
    parser = lib.xmlSchemaNewParserCtxt(os.fsencode(schema))
    if not parser:
        return False
    lib.xmlSchemaSetParserStructuredErrors(parser, quiet, None)
    compiled = lib.xmlSchemaParse(parser)
    lib.xmlSchemaFreeParserCtxt(parser)
    if not compiled:
        return False
    try:
        valid = lib.xmlSchemaNewValidCtxt(compiled)
        if not valid:
            return False
        try:
            lib.xmlSchemaSetValidStructuredErrors(valid, quiet, None)
            tree = lib.xmlReadMemory(data, len(data), None, None, PARSE_OPTIONS)
            if not tree:
                return False
            try:
                return bool(lib.xmlSchemaValidateDoc(valid, tree) == 0)
            finally:
                lib.xmlFreeDoc(tree)
        finally:
            lib.xmlSchemaFreeValidCtxt(valid)
    finally:
        lib.xmlSchemaFree(compiled)


def check_store_schema(doc: Document, cache_dir: str | None = None, *, cache: bool = True) -> None:
    """Check the store against schemas/store.xsd; the first violation, with its line.
    Bytes that passed before (see the module doc) are not checked again; new bytes are
    checked by libxml2, and by xmlschema when libxml2 refuses them (or is missing), to
    say why."""
    directory = default_cache_dir() if cache and cache_dir is None else cache_dir
    key = verdict_key(doc.data) if directory is not None else ""
    if cached_valid(key, directory):
        return
    if accepted_by_libxml2(doc.data):
        remember_valid(key, directory)
        return
    import xmlschema

    from .rng import libxml2_tree

    schema = xmlschema.XMLSchema(SCHEMA)
    tree = libxml2_tree(doc.data, doc.source)  # too deep for libxml2: an InputError
    for error in schema.iter_errors(tree):
        line = getattr(error.elem, "sourceline", None) if error.elem is not None else None
        reason = error.reason or str(error.message)
        raise InputError(
            f"store does not match schemas/store.xsd: {reason}",
            where=Location(doc.source, line),
            fix="correct the entry, or re-create it with 'hostdev-resolver map add'",
        )
    remember_valid(key, directory)
