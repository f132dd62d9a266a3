"""The expat reader and the byte-exact splicer (xmldoc.py).

The reader is checked against a generator that knows what it wrote (tests/properties/
xmlgen.py); the splicer by what must hold after any edit: the result parses, says what
the edit said, and every byte outside the edited element is the original byte."""

from __future__ import annotations

from xml.parsers import expat

from hypothesis import example, given
from hypothesis import strategies as st

from hostdev_resolver.model.errors import InputError
from hostdev_resolver.xml.xmldoc import Document, Element, Node, Splicer, parse_bytes

from .xmlgen import Expected, documents, xml_text


def _line_of(data: bytes, offset: int) -> int:
    before = data[:offset].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return before.count(b"\n") + 1


def _check(data: bytes, el: Element, exp: Expected) -> None:
    assert (el.ns, el.tag) == (exp.ns, exp.tag)
    assert el.attrs == exp.attrs
    assert el.text == exp.text
    assert (el.start, el.start_end, el.end) == (exp.start, exp.start_end, exp.end)
    assert el.self_closing == exp.self_closing
    assert el.line == _line_of(data, el.start)
    assert len(el.children) == len(exp.children)
    for child, exp_child in zip(el.children, exp.children, strict=True):
        assert child.parent is el
        _check(data, child, exp_child)


def _pairs(el: Element, exp: Expected) -> list[tuple[Element, Expected]]:
    out = [(el, exp)]
    for child, exp_child in zip(el.children, exp.children, strict=True):
        out += _pairs(child, exp_child)
    return out


@given(documents())
def test_reader_reports_what_was_written(case: tuple[bytes, Expected]) -> None:
    data, expected = case
    doc = parse_bytes(data, "gen.xml")
    _check(data, doc.root, expected)
    for el, exp in _pairs(doc.root, expected):
        for qname, span in exp.attr_spans.items():
            assert doc.attribute_span(el, qname) == span


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data, _ = draw(documents())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 4))
        noise = draw(
            st.one_of(
                st.sampled_from(
                    [
                        b"<",
                        b">",
                        b"&",
                        b"'",
                        b'"',
                        b"<!DOCTYPE d>",
                        b"<!ENTITY e 'x'>",
                        b"&e;",
                        b"\xff",
                        b"\xc3",
                        b"\x00",
                        b"]]>",
                        b"<?xml version='1.0' encoding='latin-1'?>",
                        b"\xef\xbb\xbf",
                        b"\xff\xfe",
                        b"</x>",
                        b"xmlns:hr=''",
                    ]
                ),
                st.binary(max_size=3),
            )
        )
        data = data[:at] + noise + data[at + cut :]
    return data


@given(st.one_of(_mutated(), st.binary(max_size=40)))
@example(b"")
@example(b"<a/><b/>")
@example(b"<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>")
@example(b"<a xmlns:p='' p:b='1'/>")
def test_reader_raises_only_input_error(data: bytes) -> None:
    try:
        doc = parse_bytes(data, "fuzz.xml")
    except InputError as exc:
        assert exc.where.source == "fuzz.xml"
        return
    for el in doc.root.iter():
        assert data[el.start : el.start + 1] == b"<"
        assert data[el.start_end - 1 : el.start_end] == b">"


# -- splicing ------------------------------------------------------------------


def _common_prefix(a: bytes, b: bytes) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _untouched_outside(old: bytes, new: bytes, start: int, end: int) -> None:
    """Every byte before `start` and after `end` of `old` is in `new`, unmoved from
    its end."""
    assert new[:start] == old[:start]
    assert new[len(new) - (len(old) - end) :] == old[end:]


def _elements(doc: Document) -> list[Element]:
    return list(doc.root.iter())


def _same_except(before: Document, after: Document, changed: set[int]) -> None:
    """Every element not in `changed` (by document order) keeps its name, attributes
    and text; the edited ones keep their names."""
    old, new = _elements(before), _elements(after)
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        assert (a.ns, a.tag) == (b.ns, b.tag)
        if i not in changed:
            assert a.attrs == b.attrs


_new_attr = st.sampled_from(["name", "type", "fresh", "a.b", "hr-x"])


@given(documents(), st.data())
def test_set_attribute_changes_only_that_attribute(
    case: tuple[bytes, Expected], data: st.DataObject
) -> None:
    raw, _ = case
    doc = parse_bytes(raw, "gen.xml")
    elements = _elements(doc)
    index = data.draw(st.integers(0, len(elements) - 1))
    el = elements[index]
    name = data.draw(_new_attr)
    value = data.draw(xml_text)
    splicer = Splicer(doc)
    splicer.set_attribute(el, name, value)
    out = splicer.apply()
    _untouched_outside(raw, out, el.start, el.start_end)
    after = parse_bytes(out, "out.xml")
    new = _elements(after)[index]
    assert new.attrs == {**el.attrs, name: value}
    assert [c.tag for c in new.children] == [c.tag for c in el.children]
    assert new.text == el.text
    _same_except(doc, after, {index})


@given(documents(), st.data())
def test_remove_attribute_removes_only_that_attribute(
    case: tuple[bytes, Expected], data: st.DataObject
) -> None:
    raw, _ = case
    doc = parse_bytes(raw, "gen.xml")
    candidates = [(i, el) for i, el in enumerate(_elements(doc)) if el.qnames]
    if not candidates:
        return
    index, el = data.draw(st.sampled_from(candidates))
    key = data.draw(st.sampled_from(sorted(el.qnames)))
    splicer = Splicer(doc)
    splicer.remove_attribute(el, el.qnames[key])
    out = splicer.apply()
    _untouched_outside(raw, out, el.start, el.start_end)
    after = parse_bytes(out, "out.xml")
    assert _elements(after)[index].attrs == {k: v for k, v in el.attrs.items() if k != key}
    _same_except(doc, after, {index})


@given(documents(), st.data())
def test_append_child_adds_only_that_child(
    case: tuple[bytes, Expected], data: st.DataObject
) -> None:
    raw, _ = case
    doc = parse_bytes(raw, "gen.xml")
    elements = _elements(doc)
    index = data.draw(st.integers(0, len(elements) - 1))
    el = elements[index]
    node = Node(
        "source",
        data.draw(st.dictionaries(_new_attr, xml_text, max_size=2)),
        [Node("address", {"bus": data.draw(xml_text)})],
    )
    splicer = Splicer(doc)
    splicer.append_child(el, node)
    out = splicer.apply()
    # A self-closing parent loses its "/>" (and the blanks before it); nothing before
    # them moves.
    cut = el.start_end
    if el.self_closing:
        cut -= 2
        while raw[cut - 1 : cut].isspace():
            cut -= 1
    _untouched_outside(raw, out, cut, el.end)
    after = parse_bytes(out, "out.xml")
    parent = _elements(after)[index]
    assert [c.tag for c in parent.children] == [*(c.tag for c in el.children), "source"]
    added = parent.children[-1]
    assert added.attrs == node.attrs
    assert [(c.tag, c.attrs) for c in added.children] == [("address", node.children[0].attrs)]
    assert parent.attrs == el.attrs
    if b"\r\n" in raw:
        # New lines follow the document's CRLF line ends.
        assert b"\n" not in out[added.start : added.end].replace(b"\r\n", b"")


@given(documents(), st.data())
def test_edits_of_several_elements_compose(
    case: tuple[bytes, Expected], data: st.DataObject
) -> None:
    raw, _ = case
    doc = parse_bytes(raw, "gen.xml")
    elements = _elements(doc)
    chosen = data.draw(
        st.lists(st.integers(0, len(elements) - 1), unique=True, min_size=1, max_size=4)
    )
    values = {i: data.draw(xml_text) for i in chosen}
    splicer = Splicer(doc)
    for i in chosen:
        splicer.set_attribute(elements[i], "fresh", values[i])
    after = parse_bytes(splicer.apply(), "out.xml")
    new = _elements(after)
    for i in chosen:
        assert new[i].attrs == {**elements[i].attrs, "fresh": values[i]}
    _same_except(doc, after, set(chosen))
    # Applying the same edits again is the same result.
    assert splicer.apply() == after.data


@given(documents(), st.data())
def test_replace_element_keeps_everything_around_it(
    case: tuple[bytes, Expected], data: st.DataObject
) -> None:
    raw, _ = case
    doc = parse_bytes(raw, "gen.xml")
    elements = _elements(doc)
    index = data.draw(st.integers(1, len(elements) - 1)) if len(elements) > 1 else 0
    el = elements[index]
    text = data.draw(xml_text)
    node = Node("x", {"v": data.draw(xml_text)}, text=text)
    splicer = Splicer(doc)
    splicer.replace_element(el, node)
    out = splicer.apply()
    _untouched_outside(raw, out, el.start, el.end)
    after = parse_bytes(out, "out.xml")
    new = _elements(after)[index]
    assert (new.tag, new.attrs, new.children) == ("x", node.attrs, [])
    assert new.text == text


@given(xml_text, st.sampled_from([b"<d>\n  <x/>\n</d>\n", b"<d>\r\n  <x/>\r\n</d>\r\n"]))
@example("\r", b"<d>\n  <x/>\n</d>\n")
@example("a\r\nb", b"<d>\r\n  <x/>\r\n</d>\r\n")
def test_written_text_reads_back_exactly(text: str, raw: bytes) -> None:
    """Regression: a CR in a new element's text was written raw and read back as LF."""
    doc = parse_bytes(raw, "d.xml")
    splicer = Splicer(doc)
    splicer.append_child(doc.root, Node("node", text=text))
    after = parse_bytes(splicer.apply(), "out.xml")
    assert after.root.children[-1].text == text


def _start_offsets(data: bytes) -> list[int]:
    """Where every element starts, as expat reports them in document order."""
    parser = expat.ParserCreate()
    offsets: list[int] = []
    parser.StartElementHandler = lambda *_: offsets.append(parser.CurrentByteIndex)
    parser.Parse(data, True)
    return offsets


@given(documents(), st.integers(0, 3000))
@example((b"<domain><devices/></domain>", Expected(None, "domain", "domain", {})), 3000)
def test_every_element_is_visited_in_document_order(
    case: tuple[bytes, Expected], depth: int
) -> None:
    """Regression: Element.iter recursed, and a document nested a few thousand deep
    (which expat reads) raised RecursionError wherever the elements were walked."""
    raw, _ = case
    root = parse_bytes(raw, "gen.xml").root
    # The generated document with a chain `depth` deep as the root's first child.
    raw = raw[: root.start_end] + b"<n>" * depth + b"</n>" * depth + raw[root.start_end :]
    if root.self_closing:
        raw = raw[: root.start] + b"<r>" + b"<n>" * depth + b"</n>" * depth + b"</r>"
    doc = parse_bytes(raw, "gen.xml")
    assert [el.start for el in doc.root.iter()] == _start_offsets(raw)
