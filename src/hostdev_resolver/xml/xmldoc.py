"""Reading and editing XML documents in place, byte for byte.

libvirt domain files and the mapping store are edited by administrators: their
comments, attribute order and quoting must survive our edits. So we never
re-serialise a document. We parse it with expat (fast, no lxml: the hook imports
this) into light `Element`s that know their byte spans, and apply edits as
splices of the original bytes. Whatever we do not touch comes out identical.

Documents with a DOCTYPE or entity declarations are refused: no entity
expansion, no external fetches, whatever the parser version.
"""

from __future__ import annotations

# pyexpat is the C module xml.parsers.expat re-exports (ParserCreate, ExpatError,
# ErrorString, the constants); imported directly, it costs every start that parses
# (the hook's, `hostdev-virsh define`'s) three pure-Python package modules less
# (xml, xml.parsers, xml.parsers.expat): ~0.35 ms, issue 12.
import pyexpat as expat

from ..model.errors import InputError, Location
from ..model.pciaddress import MAX_DIGITS, decimal_digits, shown
from ..model.records import field, mutable

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO

XML_NS = "http://www.w3.org/XML/1998/namespace"

# The largest domain or store document read. virsh reads a domain XML file into at most
# 10 MiB (VSH_MAX_XML_FILE in libvirt's tools/vsh.h), and libvirtd's RPC carries no
# string over 4 MiB (VIR_NET_MESSAGE_STRING_MAX, src/rpc/virnetprotocol.x), so no domain
# libvirt accepts is larger. hook.py spells the number out again (it imports nothing of
# the package before it knows the domain is ours).
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
_SPACE = b" \t\r\n"


def _attributes(tag: bytes) -> Iterator[tuple[bytes, int, int]]:
    """The attributes written in a start tag: (qname, start, end), each span from the
    whitespace before the name to the closing quote. Read by hand, not with a regular
    expression: `import re` costs ~0.5x a bare interpreter start, and resolve and
    hostdev-virsh define would pay it on every call. The tag is one expat accepted, so
    each attribute is `S Name S? = S? quoted-value`: names and values are found with
    bytes.find, only the whitespace between them is stepped over byte by byte."""
    n = len(tag)
    head = tag.split(None, 1)[0] if n else b""
    if b"/" in head or b">" in head:
        return  # no whitespace after the element's name: no attributes
    i = len(head)
    while i < n:
        start = i
        while i < n and tag[i] in _SPACE:
            i += 1
        if i == start or i >= n or tag[i] in b"/>":
            return
        eq = tag.find(b"=", i)
        if eq < 0:
            return
        name = tag[i:eq].rstrip(_SPACE)
        i = eq + 1
        while i < n and tag[i] in _SPACE:
            i += 1
        if i >= n or tag[i] not in b"'\"":
            return
        close = tag.find(tag[i : i + 1], i + 1)
        if close < 0:
            return
        i = close + 1
        yield name, start, i


@mutable(eq=False)
class Element:
    """One element: its expanded name, attributes, children and where its bytes are."""

    ns: str | None
    tag: str
    attrs: dict[str, str]  # "{ns}local" for namespaced attributes, "local" otherwise
    line: int
    start: int  # offset of '<'
    start_end: int = 0  # offset just past the start tag's '>'
    end: int = 0  # offset just past the element's last byte
    self_closing: bool = False
    parent: Element | None = None
    children: list[Element] = field(default_factory=list)
    text: str = ""  # character data directly inside (not in children)
    qnames: dict[str, str] = field(default_factory=dict)  # attrs key -> name as written

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)

    def find(self, tag: str, ns: str | None = None) -> Element | None:
        for child in self.children:
            if child.tag == tag and child.ns == ns:
                return child
        return None

    def findall(self, tag: str, ns: str | None = None) -> list[Element]:
        return [c for c in self.children if c.tag == tag and c.ns == ns]

    def iter(self) -> Iterator[Element]:
        """This element and all below it, in document order. Not recursive: expat reads
        documents nested thousands deep, deeper than Python's recursion limit."""
        stack = [self]
        while stack:
            el = stack.pop()
            yield el
            stack.extend(reversed(el.children))


@mutable(eq=False)
class Document:
    data: bytes
    root: Element
    source: str

    def where(self, element: Element | None = None) -> Location:
        return Location(self.source, element.line if element is not None else None)

    def start_tag(self, element: Element) -> bytes:
        return self.data[element.start : element.start_end]

    def element_bytes(self, element: Element) -> bytes:
        return self.data[element.start : element.end]

    def indent_of(self, element: Element) -> str:
        """The whitespace before `element` on its line ('' when it is not first on it)."""
        line_start = self.data.rfind(b"\n", 0, element.start) + 1
        lead = self.data[line_start : element.start]
        return lead.decode() if lead.strip() == b"" else ""

    def child_indent(self, element: Element) -> str:
        """Indentation for a new child: its siblings', else one step deeper than the parent."""
        if element.children:
            indent = self.indent_of(element.children[0])
            if indent:
                return indent
        return self.indent_of(element) + "  "

    def uint(self, element: Element, name: str) -> int | None:
        """An optional non-negative integer attribute (IOMMU group, NUMA node, bus...)."""
        value = element.get(name)
        if value is None:
            return None
        if not decimal_digits(value):
            raise InputError(
                f"{name}={shown(value)} is not a non-negative integer of at most "
                f"{MAX_DIGITS} digits",
                where=self.where(element),
            )
        return int(value)

    def attribute_span(self, element: Element, qname: str) -> tuple[int, int] | None:
        """Byte span of ` qname='value'` (with its leading space) in the start tag."""
        tag = self.start_tag(element)
        wanted = qname.encode()
        for name, start, end in _attributes(tag):
            if name == wanted:
                return element.start + start, element.start + end
        return None


def _tag_end(data: bytes, start: int) -> int:
    """Offset just past the '>' closing the tag that begins at `start`. A quoted
    attribute value may hold a '>' (XML allows it unescaped): quotes are skipped whole.
    Searched with bytes.find, not byte by byte: the parser calls this for every element."""
    i = start + 1
    close = data.find(b">", i)
    if close < 0:
        return len(data)
    single = data.count(b"'", i, close)
    double = data.count(b'"', i, close)
    if not (single and double) and not (single | double) & 1:
        # One kind of quote (or none), each opened one closed: the '>' is outside them.
        return close + 1
    while True:
        close = data.find(b">", i)
        if close < 0:
            return len(data)
        double = data.find(b'"', i, close)
        single = data.find(b"'", i, close)
        if double < 0 and single < 0:
            return close + 1
        quote = double if single < 0 or 0 <= double < single else single
        i = data.find(data[quote : quote + 1], quote + 1) + 1
        if i == 0:  # an unclosed quote: the tag runs to the end
            return len(data)


def _split(name: str) -> tuple[str | None, str, str | None]:
    """expat's "uri local prefix" (namespace_prefixes on) -> (namespace, local, prefix)."""
    if " " not in name:
        return None, name, None
    parts = name.split(" ")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1], None
    return None, name, None


def parse_bytes(data: bytes, source: str) -> Document:
    """Parse `data` (named `source` in errors). Raises InputError with file:line."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise too_large(source)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:4] in (b"\x00\x00\xfe\xff",):
        raise InputError(
            "the document is UTF-16 or UTF-32; only UTF-8 is read",
            where=Location(source, 1),
            fix="convert it with 'iconv -t UTF-8' (libvirt writes UTF-8)",
        )
    parser = expat.ParserCreate(namespace_separator=" ")
    # Report each name's prefix too, so an attribute is removed by the name it was
    # written with, whatever prefix (or character reference) declared its namespace.
    parser.namespace_prefixes = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    # Contiguous character data in one call, not one per line and entity.
    parser.buffer_text = True
    stack: list[Element] = []
    # Character data arrives in many pieces (expat splits at every newline and entity):
    # the pieces are joined once per element, never appended to a str one by one, which
    # is quadratic in the length of a long <description>.
    texts: list[list[str]] = []
    roots: list[Element] = []

    def refuse(what: str) -> None:
        raise InputError(
            what,
            where=Location(source, parser.CurrentLineNumber),
            fix="remove the DOCTYPE/entity declarations; they are not allowed",
        )

    def start(name: str, attrs: dict[str, str]) -> None:
        ns, tag, _ = _split(name) if " " in name else (None, name, None)
        offset = parser.CurrentByteIndex
        values: dict[str, str] = {}
        qnames: dict[str, str] = {}
        for key, value in attrs.items():
            if " " not in key:  # most attributes: no namespace
                values[key] = value
                qnames[key] = key
                continue
            a_ns, local, prefix = _split(key)
            expanded = f"{{{a_ns}}}{local}" if a_ns else local
            values[expanded] = value
            qnames[expanded] = f"{prefix}:{local}" if prefix else local
        start_end = _tag_end(data, offset)
        self_closing = data[start_end - 2 : start_end] == b"/>"
        parent = stack[-1] if stack else None
        # Every field given in order: the records' constructor then takes its fast path.
        el = Element(
            ns,
            tag,
            values,
            parser.CurrentLineNumber,
            offset,
            start_end,
            start_end if self_closing else 0,
            self_closing,
            parent,
            [],
            "",
            qnames,
        )
        if parent is not None:
            parent.children.append(el)
        else:
            roots.append(el)
        stack.append(el)
        texts.append([])

    def end(name: str) -> None:
        el = stack.pop()
        pieces = texts.pop()
        if pieces:
            el.text = "".join(pieces)
        if not el.self_closing:
            # An end tag holds no quotes: its '>' is the first one after it.
            el.end = data.find(b">", parser.CurrentByteIndex) + 1 or len(data)

    def chars(text: str) -> None:
        if texts:
            texts[-1].append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars

    def declaration(version: str, encoding: str | None, standalone: int) -> None:
        # Edits splice UTF-8 bytes into the original: another encoding would be mixed.
        if encoding is not None and encoding.lower() not in ("utf-8", "utf8", "us-ascii", "ascii"):
            raise InputError(
                f"the document declares encoding {encoding!r}; only UTF-8 is read",
                where=Location(source, parser.CurrentLineNumber),
                fix="convert it with 'iconv -t UTF-8' and declare encoding='UTF-8'",
            )

    parser.XmlDeclHandler = declaration
    parser.StartDoctypeDeclHandler = lambda *a: refuse("DOCTYPE declarations are not allowed")
    parser.EntityDeclHandler = lambda *a: refuse("entity declarations are not allowed")
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise InputError(
            f"not well-formed XML: {expat.ErrorString(exc.code)}",
            where=Location(source, exc.lineno),
            fix="fix the XML syntax",
        ) from None
    return Document(data, roots[0], source)


def read_document(handle: BinaryIO) -> bytes:
    """The bytes of a document, at most one byte over the limit: a file far larger is
    not read whole only to be refused. Read in pieces: one read(limit) would make a
    10 MiB buffer for every file, which costs more than reading and parsing a domain
    (`validate` of a fleet reads thousands)."""
    first = handle.read(_FIRST_READ)
    if len(first) < _FIRST_READ:
        return first  # the whole file (read() returns short only at its end)
    chunks = [first]
    left = MAX_DOCUMENT_BYTES + 1 - len(first)
    while left > 0 and (chunk := handle.read(min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


_FIRST_READ = 1 << 16


def too_large(source: str) -> InputError:
    return InputError(
        f"the document is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB, "
        "libvirt's own limit for domain XML",
        where=Location(source),
        fix="check that this is the right file; libvirt would not accept it either",
    )


def parse_file(path: str) -> Document:
    where = Location(path)
    try:
        with open(path, "rb") as handle:
            data = read_document(handle)
    except FileNotFoundError:
        raise InputError("file not found", where=where, fix="check the path") from None
    except IsADirectoryError:
        raise InputError("is a directory, not an XML file", where=where) from None
    except PermissionError:
        raise InputError(
            "cannot read: permission denied", where=where, fix="check the file's permissions"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where=where) from None
    return parse_bytes(data, path)


# -- writing -----------------------------------------------------------------


# What escape_attr and escape_text change: most values (addresses, IDs, names) have
# none of it, and are returned as they are after one C-level test.
_ATTR_SPECIAL = frozenset("&<>'\n\r\t")
_TEXT_SPECIAL = frozenset("&<>\r")


def escape_attr(value: str) -> str:
    if _ATTR_SPECIAL.isdisjoint(value):
        return value
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&apos;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def escape_text(value: str) -> str:
    # A raw CR in character data reads back as LF (XML 1.0 §2.11 line-end handling).
    if _TEXT_SPECIAL.isdisjoint(value):
        return value
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


@mutable
class Node:
    """A new element to write (libvirt's style: single-quoted attributes)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    text: str | None = None

    def render(self, indent: str, step: str = "  ") -> str:
        attrs = "".join([f" {k}='{escape_attr(v)}'" for k, v in self.attrs.items()])
        if self.text is not None:
            return f"<{self.tag}{attrs}>{escape_text(self.text)}</{self.tag}>"
        if not self.children:
            return f"<{self.tag}{attrs}/>"
        deeper = indent + step
        inner = "".join([f"\n{deeper}{c.render(deeper, step)}" for c in self.children])
        return f"<{self.tag}{attrs}>{inner}\n{indent}</{self.tag}>"


class Splicer:
    """Collects non-overlapping replacements of byte spans and applies them at once."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self._edits: list[tuple[int, int, bytes]] = []
        # New lines follow the document's own line endings (files edited on Windows).
        self._newline = "\r\n" if b"\r\n" in doc.data else "\n"

    def replace(self, start: int, end: int, text: str | bytes) -> None:
        if isinstance(text, str):
            if self._newline != "\n":
                text = text.replace("\n", self._newline)
            payload = text.encode()
        else:
            payload = text
        self._edits.append((start, end, payload))

    def insert(self, offset: int, text: str) -> None:
        self.replace(offset, offset, text)

    def remove_attribute(self, element: Element, qname: str) -> None:
        span = self.doc.attribute_span(element, qname)
        if span is not None:
            self.replace(span[0], span[1], b"")

    def set_attribute(self, element: Element, qname: str, value: str) -> None:
        span = self.doc.attribute_span(element, qname)
        text = f" {qname}='{escape_attr(value)}'"
        if span is not None:
            self.replace(span[0], span[1], text)
        else:
            self.insert(self._tag_close(element), text)

    def _tag_close(self, element: Element) -> int:
        """Offset of the start tag's closing '>' or '/>', before any whitespace."""
        close = element.start_end - (2 if element.self_closing else 1)
        while close > element.start and self.doc.data[close - 1 : close].isspace():
            close -= 1
        return close

    def replace_element(self, element: Element, node: Node | str) -> None:
        text = node if isinstance(node, str) else node.render(self.doc.indent_of(element))
        self.replace(element.start, element.end, text)

    def append_child(self, parent: Element, node: Node) -> None:
        """Add `node` as the last child of `parent`, indented like its siblings."""
        indent = self.doc.child_indent(parent)
        rendered = node.render(indent)
        if parent.self_closing:
            # <hostdev .../> becomes <hostdev ...>\n  <source>..</source>\n</hostdev>; only the
            # "/>" is replaced, so attribute edits in the same start tag do not overlap.
            cut = self._tag_close(parent)
            outer = self.doc.indent_of(parent)
            qname = _qname(self.doc, parent)
            self.replace(cut, parent.end, f">\n{indent}{rendered}\n{outer}</{qname}>")
            return
        close = self.doc.data.rfind(b"</", parent.start_end, parent.end)
        line_start = self.doc.data.rfind(b"\n", 0, close) + 1
        if self.doc.data[line_start:close].strip() == b"":
            self.insert(line_start, f"{indent}{rendered}\n")
        else:
            self.insert(close, f"\n{indent}{rendered}\n{self.doc.indent_of(parent)}")

    def insert_after(self, sibling: Element, node: Node) -> None:
        indent = self.doc.indent_of(sibling)
        self.insert(sibling.end, f"\n{indent}{node.render(indent)}")

    def insert_before(self, sibling: Element, node: Node) -> None:
        """Add `node` just before `sibling`, on a line of its own when `sibling` has one."""
        indent = self.doc.indent_of(sibling)
        if indent:
            line_start = self.doc.data.rfind(b"\n", 0, sibling.start) + 1
            self.insert(line_start, f"{indent}{node.render(indent)}\n")
        else:
            indent = self._sibling_indent(sibling)
            self.insert(sibling.start, f"{node.render(indent)}\n{indent}")

    def insert_child(
        self,
        parent: Element,
        node: Node,
        *,
        after: tuple[str, ...] = (),
        before: tuple[str, ...] = (),
    ) -> None:
        """Add `node` as a child of `parent` at the place a schema's order asks for: just after
        the last child named in `after`; else just before the first child named in `before`;
        else as the first child element. Comments and text keep their place."""
        elements = [c for c in parent.children if c.ns is None]
        anchors = [c for c in elements if c.tag in after]
        if anchors:
            anchor = anchors[-1]
            indent = self.doc.indent_of(anchor) or self._sibling_indent(anchor)
            self.insert(anchor.end, f"\n{indent}{node.render(indent)}")
            return
        following = [c for c in elements if c.tag in before] or parent.children
        if following:
            self.insert_before(following[0], node)
        else:
            self.append_child(parent, node)

    def _sibling_indent(self, sibling: Element) -> str:
        parent = sibling.parent
        return self.doc.child_indent(parent) if parent is not None else ""

    def insert_first_child(self, parent: Element, node: Node) -> None:
        indent = self.doc.child_indent(parent)
        self.insert(parent.start_end, f"\n{indent}{node.render(indent)}")

    def apply(self) -> bytes:
        edits = sorted(self._edits, key=lambda e: (e[0], e[1]))
        out = []
        pos = 0
        for start, end, payload in edits:
            if start < pos:
                raise ValueError(f"overlapping XML edits at byte {start}")
            out.append(self.doc.data[pos:start])
            out.append(payload)
            pos = end
        out.append(self.doc.data[pos:])
        return b"".join(out)


def _qname(doc: Document, element: Element) -> str:
    tag = doc.start_tag(element)[1:]
    end = next((i for i, c in enumerate(tag) if c in b" \t\r\n/>"), len(tag))
    return tag[:end].decode() if end else element.tag
