"""Validation against libvirt's own RELAX NG schema (shipped by libvirt0).

libxml2's RELAX NG validator is poor at saying *where* a domain fails: almost any
mistake inside a device comes out as "Extra element devices in interleave" with line 0,
followed by "Element domain failed to validate content" pointing at `<devices>`
(libxml2 2.9 and 2.14 alike). So when the schema rejects a document we narrow it down
ourselves: every child of `<devices>` is optional and independent in domain.rng, so a
copy of the domain holding that one device alone fails exactly when the device does.
"""

from __future__ import annotations

import os

from ..model.errors import HostAccessError, InputError, Location
from ..model.records import frozen

# Not typing.TYPE_CHECKING, and a str rather than a pathlib.Path: those two imports cost
# `validate` more than a tenth of a bare interpreter start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    import lxml.etree

    F = TypeVar("F", bound=Callable[..., Any])


def _once(fn: F) -> F:
    """functools.cache for this module's few functions of a path (or of nothing), with
    its cache_clear, without importing functools: with collections, operator and
    reprlib that costs `validate` about a tenth of a bare start."""
    results: dict[tuple[Any, ...], Any] = {}

    def cached(*args: Any) -> Any:
        if args in results:
            return results[args]
        value = results[args] = fn(*args)  # not in an except block: no chained KeyError
        return value

    cached.cache_clear = results.clear  # type: ignore[attr-defined]
    cached.__doc__ = fn.__doc__
    return cached  # type: ignore[return-value]


DOMAIN_RNG = "/usr/share/libvirt/schemas/domain.rng"

# libxml2's messages that only say "something inside failed" (xmlRelaxNGValidErr codes);
# an error of another kind names the value, attribute or element at fault.
_CONSEQUENTIAL = frozenset(
    {
        "RELAXNG_ERR_INTEREXTRA",  # Extra element devices in interleave
        "RELAXNG_ERR_INTERSEQ",  # Invalid sequence in interleave
        "RELAXNG_ERR_CONTENTVALID",  # Element domain failed to validate content
        "RELAXNG_ERR_EXTRACONTENT",  # Element devices has extra content: hostdev
        "RELAXNG_ERR_NOTELEM",  # Expecting an element got text
    }
)


@frozen
class SchemaError:
    """One element the schema rejects: libxml2's path to it (`/domain/devices/hostdev[2]`),
    its line in the validated bytes (None when libxml2 gives none), the element as an
    administrator would find it (`<disk type='file' device='disk'>`), and libxml2's reason
    when it gives one that says more than "failed to validate"."""

    path: str
    line: int | None
    element: str
    reason: str | None = None

    @property
    def message(self) -> str:
        reason = f": {self.reason}" if self.reason else ""
        return f"{self.element} does not validate against libvirt's domain.rng{reason}"


@_once
def _schema(path: str) -> object:
    import lxml.etree

    if not os.path.exists(path):
        raise HostAccessError(
            f"libvirt's schema {path} is not installed",
            fix="install libvirt0 (Debian) / libvirt-libs, which ship it",
        )
    return lxml.etree.RelaxNG(lxml.etree.parse(path))


@_once
def _parser() -> object:
    """One parser for every document of a run (`validate` of a fleet): making one costs
    about half of what validating a small domain does."""
    import lxml.etree

    return lxml.etree.XMLParser(resolve_entities=False, no_network=True)


# xmlParserOption: no network access, no messages on stderr (what a refused document
# gets wrong is found again through lxml or xmlschema, with its line).
PARSE_OPTIONS = 2048 | 64 | 32  # XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_NOERROR


@_once
def libxml2() -> tuple[Any, Any] | None:
    """The system's libxml2 through ctypes, with the functions this package calls declared
    (RELAX NG for domains, XML Schema for stores, reading from memory), and a structured
    error handler that drops libxml2's messages (it would print every schema error on
    stderr; kept referenced for the process's life). None without ctypes, or without a
    libxml2.so.2 that has them."""
    try:
        import ctypes

        # The soname, not find_library: that runs ldconfig (a process) to look it up.
        lib = ctypes.CDLL("libxml2.so.2")
        ptr = ctypes.c_void_p
        for fn, args, res in (
            ("xmlRelaxNGNewParserCtxt", [ctypes.c_char_p], ptr),
            ("xmlRelaxNGSetParserStructuredErrors", [ptr, ptr, ptr], None),
            ("xmlRelaxNGParse", [ptr], ptr),
            ("xmlRelaxNGFreeParserCtxt", [ptr], None),
            ("xmlRelaxNGNewValidCtxt", [ptr], ptr),
            ("xmlRelaxNGSetValidStructuredErrors", [ptr, ptr, ptr], None),
            ("xmlRelaxNGValidateDoc", [ptr, ptr], ctypes.c_int),
            ("xmlRelaxNGFreeValidCtxt", [ptr], None),
            ("xmlSchemaNewParserCtxt", [ctypes.c_char_p], ptr),
            ("xmlSchemaSetParserStructuredErrors", [ptr, ptr, ptr], None),
            ("xmlSchemaParse", [ptr], ptr),
            ("xmlSchemaFreeParserCtxt", [ptr], None),
            ("xmlSchemaNewValidCtxt", [ptr], ptr),
            ("xmlSchemaSetValidStructuredErrors", [ptr, ptr, ptr], None),
            ("xmlSchemaValidateDoc", [ptr, ptr], ctypes.c_int),
            ("xmlSchemaFreeValidCtxt", [ptr], None),
            ("xmlSchemaFree", [ptr], None),
            ("xmlNewParserCtxt", [], ptr),
            (
                "xmlCtxtReadMemory",
                [ptr, ctypes.c_char_p, ctypes.c_int, ptr, ptr, ctypes.c_int],
                ptr,
            ),
            ("xmlReadMemory", [ctypes.c_char_p, ctypes.c_int, ptr, ptr, ctypes.c_int], ptr),
            ("xmlFreeDoc", [ptr], None),
        ):
            func = getattr(lib, fn)
            func.argtypes = args
            func.restype = res
    except (ImportError, OSError, AttributeError):  # no ctypes, no libxml2.so.2, too old
        return None
    return lib, ctypes.CFUNCTYPE(None, ptr, ptr)(lambda _data, _error: None)


class _SystemLibxml2:
    """The system's libxml2 (the one libvirt and xmllint use), called through ctypes for
    the common case: a document that validates. Its verdict is all `validate` needs
    then, and it costs what `xmllint --relaxng` costs per document, where lxml would add
    its own import (~1x a bare interpreter: it imports inspect) and a tree of Python
    proxies. A document it rejects, or cannot read, goes to lxml for the located
    messages (`schema_errors`); so does every document where ctypes or the library
    is missing."""

    def __init__(self, rng: str) -> None:
        bound = libxml2()
        if bound is None:
            raise OSError("no libxml2.so.2 with RELAX NG through ctypes")
        lib, self._quiet = bound
        self.lib = lib
        parser = lib.xmlRelaxNGNewParserCtxt(os.fsencode(rng))
        if not parser:
            raise OSError(f"libxml2 cannot open {rng}")
        lib.xmlRelaxNGSetParserStructuredErrors(parser, self._quiet, None)
        self.schema = lib.xmlRelaxNGParse(parser)
        lib.xmlRelaxNGFreeParserCtxt(parser)
        if not self.schema:
            raise OSError(f"libxml2 cannot compile {rng}")
        # One parser and one validation context for every document of a run, as
        # xmllint's reader does not: making and freeing them costs ~6 % of a small
        # domain's check. The parser resets itself at each read; a validation context
        # is dropped after any document it rejects (its error state is not reset).
        self.parser = lib.xmlNewParserCtxt()
        if not self.parser:
            raise OSError("libxml2 cannot make a parser")
        self._valid: int | None = None

    def validates(self, data: bytes) -> bool:
        """True when libxml2 reads `data` and the schema accepts it; False otherwise
        (then lxml says why)."""
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            return False  # refused with a message by the lxml path
        lib = self.lib
        doc = lib.xmlCtxtReadMemory(self.parser, data, len(data), None, None, PARSE_OPTIONS)
        if not doc:
            return False
        try:
            ctxt = self._valid
            if ctxt is None:
                ctxt = lib.xmlRelaxNGNewValidCtxt(self.schema)
                if not ctxt:
                    return False
                lib.xmlRelaxNGSetValidStructuredErrors(ctxt, self._quiet, None)
                self._valid = ctxt
            if lib.xmlRelaxNGValidateDoc(ctxt, doc) == 0:
                return True
            self._valid = None
            lib.xmlRelaxNGFreeValidCtxt(ctxt)
            return False
        finally:
            lib.xmlFreeDoc(doc)


@_once
def _system_libxml2(path: str) -> _SystemLibxml2 | None:
    if not os.path.exists(path):
        return None  # _schema says so, in one line
    try:
        return _SystemLibxml2(path)
    except (ImportError, OSError, AttributeError):  # no ctypes, no libxml2.so.2, too old
        return None


def accepted_by_libxml2(data: bytes, rng: str = DOMAIN_RNG) -> bool:
    """True when the system's libxml2 reads `data` and the schema accepts it: then
    `schema_errors(data)` is []. False says nothing more (ask `schema_errors`)."""
    native = _system_libxml2(rng)
    return native is not None and native.validates(data)


def schema_errors(data: bytes, rng: str = DOMAIN_RNG, source: str = "") -> list[SchemaError]:
    """Every element of `data` that fails libvirt's domain.rng; [] when it validates.

    Raises InputError (located in `source`) when libxml2 cannot read `data` at all."""
    native = _system_libxml2(rng)
    if native is not None and native.validates(data):
        return []
    import lxml.etree

    schema = _schema(rng)
    assert isinstance(schema, lxml.etree.RelaxNG)
    tree = libxml2_tree(data, source)  # InputError: libxml2 cannot read it at all
    if schema.validate(tree):
        return []
    whole = _reasons(schema, tree)
    devices = tree.find("devices")
    if devices is None:
        return whole
    # The domain with an empty <devices>: if it fails, the fault is (also) outside them.
    probe = _copy_without_devices(tree)
    outside = [] if schema.validate(probe) else _reasons(schema, probe)
    faulty: list[SchemaError] = []
    probe_devices = probe.find("devices")
    assert probe_devices is not None
    if not outside:
        for device in devices:
            if not isinstance(device.tag, str):
                continue  # a comment or processing instruction
            probe_devices.append(_copy(device))
            if not schema.validate(probe):
                telling = _telling(schema)
                path = tree.getroottree().getpath(device)
                line = device.sourceline if isinstance(device.sourceline, int) else None
                reason = telling[0].reason if telling else None
                faulty.append(SchemaError(path, line, _describe(device), reason))
            probe_devices.remove(probe_devices[-1])
    return outside + faulty or whole


def _copy(element: lxml.etree._Element) -> lxml.etree._Element:
    import copy

    return copy.deepcopy(element)


def _copy_without_devices(root: lxml.etree._Element) -> lxml.etree._Element:
    """The domain with an empty <devices>, to which devices are added one at a time. Its
    free text (<description>, <metadata>: any text, any foreign elements in domain.rng)
    is emptied too, so that checking each device costs the device, not the document."""
    probe = _copy(root)
    for name in ("devices", "metadata"):
        for element in probe.findall(name):
            for child in list(element):
                element.remove(child)
            element.text = None
    for description in probe.findall("description"):
        description.text = None
    return probe


def _reasons(schema: lxml.etree.RelaxNG, tree: lxml.etree._Element) -> list[SchemaError]:
    """libxml2's errors for the last validation, the telling ones first, each once.

    libxml2 reports line 0 and no path for interleave errors; those are kept only when
    nothing better was said, located at the deepest element any error names."""
    telling = _telling(schema)
    if telling:
        return telling
    entries = list(schema.error_log)
    located = [e for e in entries if e.path]
    deepest = max(located, key=lambda e: e.path.count("/"), default=None)
    extra = next((e.message for e in entries if e.type_name == "RELAXNG_ERR_INTEREXTRA"), None)
    if deepest is None:
        return [SchemaError("", None, "the domain", extra)]
    return [SchemaError(deepest.path, deepest.line or None, _named(deepest.path), extra)]


def _telling(schema: lxml.etree.RelaxNG) -> list[SchemaError]:
    """The errors of the last validation that name what is wrong, each once."""
    telling = [
        SchemaError(e.path or "", e.line or None, _named(e.path), e.message)
        for e in schema.error_log
        if e.type_name not in _CONSEQUENTIAL
    ]
    return list(dict.fromkeys(telling))


def _named(path: str | None) -> str:
    """`<memory>` for /domain/memory; "the domain" when libxml2 names no element."""
    tag = (path or "").rsplit("/", 1)[-1].partition("[")[0]
    return f"<{tag}>" if tag else "the domain"


def _describe(device: lxml.etree._Element) -> str:
    """`<disk type='file' device='disk'>`: the device as an administrator would find it."""
    attrs = "".join(f" {k}='{device.get(k)}'" for k in ("type", "device", "model") if device.get(k))
    return f"<{device.tag}{attrs}>"


def domain_rng_errors(
    data: bytes, source: str, rng: str = DOMAIN_RNG
) -> list[tuple[Location, str]]:
    """Every way `data` fails libvirt's domain.rng, with its line; [] when it validates."""
    try:
        errors = schema_errors(data, rng, source)
    except InputError as exc:
        return [(exc.where, exc.what)]
    return [(Location(source, e.line), e.message) for e in errors]


def libxml2_tree(data: bytes, source: str) -> Any:
    """`data` parsed by lxml, as libvirt's libxml2 reads it, or an InputError.

    Our own reader (expat) has no depth limit, but libxml2 refuses elements nested
    deeper than 256 levels unless XML_PARSE_HUGE is given, which libvirt never gives
    (virXMLParseHelper): such a document is malformed input, not a crash of ours.
    """
    import lxml.etree

    parser = _parser()
    assert isinstance(parser, lxml.etree.XMLParser)
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
