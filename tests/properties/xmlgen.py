"""A generator of XML documents that knows what it wrote: every element's expanded
name, attribute values, character data and byte spans, for the reader to be checked
against. Spellings vary as administrators' files do: both quote kinds, entity and
character references, CDATA, comments, processing instructions, CRLF line ends,
whitespace inside tags, namespace prefixes declared anywhere."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import strategies as st

HR = "http://hostdev-resolver.org/xmlns/domain/1"
OTHER = "urn:example:other"

# Text of characters XML 1.0 allows: mostly the ones that need care, else any.
_CAREFUL = [*"&<>'\"\t\n\r ]=/-?ab", "\u00e9", "\u20ac", "\U0001f600", "\u2028", "\x85"]
xml_text = st.one_of(
    st.text(st.sampled_from(_CAREFUL), max_size=8),
    st.text(
        st.characters(
            codec="utf-8",
            exclude_categories=["Cs"],
            exclude_characters="\ufffe\uffff",
            min_codepoint=0x20,
        ),
        max_size=8,
    ),
)


@dataclass
class Expected:
    ns: str | None
    tag: str
    qname: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Expected] = field(default_factory=list)
    start: int = 0
    start_end: int = 0
    end: int = 0
    self_closing: bool = False
    attr_spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # by qname


def _attr_value(draw: st.DrawFn, value: str, quote: str) -> tuple[str, str]:
    """(written form, value the parser must report) of an attribute value."""
    # Spelling choices per character come from one drawn seed: a draw per character
    # would make generation several times slower.
    rnd = random.Random(draw(st.integers(0, 2**32)))
    out = []
    parsed = []
    for c in value:
        if c in "\t\n":
            # Literal whitespace in attributes is normalised to a space; a reference keeps it.
            if rnd.random() < 0.5:
                out.append(c)
                parsed.append(" ")
                continue
            out.append(f"&#{ord(c)};")
        elif c == "\r":
            out.append(rnd.choice(["&#13;", "&#xD;"]))
        elif c == "&":
            out.append(rnd.choice(["&amp;", "&#38;"]))
        elif c == "<":
            out.append(rnd.choice(["&lt;", "&#x3c;"]))
        elif c == quote:
            out.append("&quot;" if c == '"' else "&apos;")
        elif c in "'\">" and rnd.random() < 0.5:
            out.append({"'": "&apos;", '"': "&quot;", ">": "&gt;"}[c])
        elif rnd.random() < 0.1:
            out.append(f"&#x{ord(c):x};")
        else:
            out.append(c)
        parsed.append(c)
    return "".join(out), "".join(parsed)


def _text(draw: st.DrawFn, value: str) -> tuple[str, str]:
    """(written form, character data the parser must report) of text content."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    out = []
    parsed = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\r":
            if value[i + 1 : i + 2] == "\n" and rnd.random() < 0.5:
                out.append("\r\n")  # a CRLF line end reads as one LF
                parsed.append("\n")
                i += 2
                continue
            out.append("&#13;")
        elif c == "&":
            out.append("&amp;")
        elif c == "<":
            out.append("&lt;")
        elif c == ">":
            out.append("&gt;")  # "]]>" may not appear in text
        else:
            out.append(c)
        parsed.append(c)
        i += 1
    return "".join(out), "".join(parsed)


_TAGS = ["domain", "devices", "hostdev", "source", "address", "x", "metadata", "a-b", "c.d"]
_ATTRS = ["type", "name", "bus", "x-y", "a.b", "map"]
_WS = st.sampled_from([" ", " ", "  ", "\n    ", "\t", "\r\n  "])


class _Writer:
    def __init__(self, draw: st.DrawFn, crlf: bool) -> None:
        self.draw = draw
        self.out = bytearray()
        self.crlf = crlf
        self.budget = 7  # elements left to write: small documents, many of them

    def write(self, text: str) -> None:
        self.out += text.encode()

    def newline(self) -> str:
        return "\r\n" if self.crlf else "\n"

    def misc(self) -> tuple[str, str]:
        """Whitespace, comments and PIs between elements: (written, character data)."""
        draw = self.draw
        parts = []
        chars = ""
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["ws", "ws", "comment", "pi"]))
            if kind == "ws":
                indent = draw(st.sampled_from(["", "  ", "\t"]))
                parts.append(self.newline() + indent)
                chars += "\n" + indent
            elif kind == "comment":
                body = draw(xml_text).replace("\r", "").replace("-", "_")
                parts.append(f"<!--{body}-->")
            else:
                body = draw(xml_text).replace("\r", "").replace("?>", "?_")
                parts.append(f"<?pi {body}?>")
        return "".join(parts), chars

    def element(self, depth: int, scope: dict[str | None, str | None]) -> Expected:
        draw = self.draw
        scope = dict(scope)
        decls: list[tuple[str, str]] = []
        # Namespace declarations on this element.
        if draw(st.integers(0, 3)) == 0:
            uri = draw(st.sampled_from([HR, OTHER, ""]))
            decls.append(("xmlns", uri))
            scope[None] = uri or None
        prefix = None
        if draw(st.integers(0, 3)) == 0:
            prefix = draw(st.sampled_from(["hr", "o"]))
            if prefix not in scope or draw(st.booleans()):
                uri = HR if prefix == "hr" else OTHER
                decls.append((f"xmlns:{prefix}", uri))
                scope[prefix] = uri
        tag = draw(st.sampled_from(_TAGS))
        qname = f"{prefix}:{tag}" if prefix else tag
        ns = scope.get(prefix) if prefix else scope.get(None)
        attrs: list[tuple[str, str, str | None]] = []  # (qname, value, ns)
        seen: set[str] = set()
        for _ in range(draw(st.integers(0, 3))):
            a_prefix = None
            if draw(st.integers(0, 4)) == 0 and any(p in scope for p in ("hr", "o")):
                a_prefix = draw(st.sampled_from([p for p in ("hr", "o") if p in scope]))
            local = draw(st.sampled_from(_ATTRS))
            a_ns = scope[a_prefix] if a_prefix else None
            key = f"{{{a_ns}}}{local}" if a_ns else local
            if key in seen:
                continue
            seen.add(key)
            attrs.append((f"{a_prefix}:{local}" if a_prefix else local, draw(xml_text), a_ns))
        expected = Expected(ns, tag, qname, {})
        expected.start = len(self.out)
        self.write(f"<{qname}")
        items: list[tuple[str, str, str | None, bool]] = [(n, v, None, True) for n, v in decls]
        items += [(n, v, a_ns, False) for n, v, a_ns in attrs]
        items = draw(st.permutations(items))
        for name, value, a_ns, is_decl in items:
            begin = len(self.out)  # attribute spans include the whitespace before them
            self.write(draw(_WS))
            quote = draw(st.sampled_from(["'", '"']))
            if is_decl:
                written, parsed = value, value
            else:
                written, parsed = _attr_value(draw, value, quote)
            eq = draw(st.sampled_from(["=", " = ", "=\n"]))
            self.write(f"{name}{eq}{quote}{written}{quote}")
            if not is_decl:
                local = name.split(":")[-1]
                expected.attrs[f"{{{a_ns}}}{local}" if a_ns else local] = parsed
                expected.attr_spans[name] = (begin, len(self.out))
        self.write(draw(st.sampled_from(["", "", " ", "\n"])))
        n_children = min(self.budget, draw(st.integers(0, 3))) if depth < 4 else 0
        self.budget -= n_children
        if n_children == 0 and draw(st.booleans()):
            self.write("/>")
            expected.start_end = expected.end = len(self.out)
            expected.self_closing = True
            return expected
        self.write(">")
        expected.start_end = len(self.out)
        for i in range(n_children + 1):
            written, chars = self.misc()
            self.write(written)
            expected.text += chars
            if draw(st.integers(0, 2)) == 0:
                if draw(st.integers(0, 3)) == 0:
                    body = draw(xml_text).replace("\r", "").replace("]]>", "]]_")
                    self.write(f"<![CDATA[{body}]]>")
                    expected.text += body
                else:
                    written, parsed = _text(draw, draw(xml_text))
                    self.write(written)
                    expected.text += parsed
            if i < n_children:
                expected.children.append(self.element(depth + 1, scope))
        self.write(f"</{qname}{draw(st.sampled_from(['', ' ', chr(10)]))}>")
        expected.end = len(self.out)
        return expected


@st.composite
def documents(draw: st.DrawFn) -> tuple[bytes, Expected]:
    writer = _Writer(draw, crlf=draw(st.booleans()))
    if draw(st.booleans()):
        writer.write(
            draw(
                st.sampled_from(["<?xml version='1.0'?>", '<?xml version="1.0" encoding="UTF-8"?>'])
            )
        )
    writer.write(writer.misc()[0])
    root = writer.element(0, {None: None})
    writer.write(writer.misc()[0] + draw(st.sampled_from(["", "\n", "\r\n"])))
    return bytes(writer.out), root
