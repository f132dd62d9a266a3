"""The hook's fast config reader against tomllib (issue 10, item 8's promise).

`flat_toml` returns a table only for text it is sure of, None otherwise (the caller
then asks tomllib). So the whole reader agrees with tomllib exactly when: every table
flat_toml returns is what tomllib returns for the same text, and tomllib accepts that
text. An error is then always tomllib's own.
"""

from __future__ import annotations

import os
import tempfile
import tomllib

import pytest
from hypothesis import Phase, example, find, given, settings
from hypothesis import strategies as st

from hostdev_resolver.doors.hookops import flat_toml, load_config
from hostdev_resolver.model.errors import InputError, UntrustedFileError

# Pieces of TOML-ish text, weighted towards what the fast path reads, with everything
# that separates the two readers: control characters, CR, CRLF, the Unicode line
# separators, comments, both quote kinds, escapes, tables, numbers, duplicate keys.
_ODD = [
    "\r",
    "\r\n",
    "\n",
    "\x00",
    "\x01",
    "\x1f",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "\t",
    "\ufeff",
    "\u00a0",
]
_KEYS = st.sampled_from(["store", "node", "sysfs", "state_dir", "trust_any_owner", "a-b", "k_1"])
_KEYISH = st.one_of(
    _KEYS,
    _KEYS,
    _KEYS,
    st.text(alphabet="abcXYZ019_-. \"'=#[]", min_size=0, max_size=6),
)
_CHARS = st.one_of(
    st.sampled_from(_ODD),
    st.sampled_from(list("ab /\\\"'#=[]{}.,0x-_éü€")),
    st.characters(codec="utf-8", exclude_categories=["Cs"]),
)
_STRINGISH = st.one_of(
    st.text(alphabet="abc /-_.:éü€", max_size=8),
    st.lists(_CHARS, max_size=12).map("".join),
)


@st.composite
def _value(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(["basic", "basic", "literal", "literal", "bool", "raw", "multi", "number"])
    )
    body = draw(_STRINGISH)
    if kind == "basic":
        return f'"{body}"'
    if kind == "literal":
        return f"'{body}'"
    if kind == "bool":
        return draw(
            st.sampled_from(["true", "false", "true", "false", "True", "tru", "true1", "false#"])
        )
    if kind == "multi":
        quote = draw(st.sampled_from(['"""', "'''"]))
        return f"{quote}{body}{quote}"
    if kind == "number":
        return draw(st.sampled_from(["1", "0x1f", "1.5", "-0", "inf", "1979-05-27"]))
    return body


_SPACE = st.text(alphabet=" \t", max_size=2)


@st.composite
def _line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["pair", "pair", "pair", "comment", "blank", "table", "raw"]))
    if kind == "pair":
        key = draw(_KEYISH)
        comment = draw(st.one_of(st.just(""), _STRINGISH.map(lambda c: "#" + c)))
        return (
            draw(_SPACE)
            + key
            + draw(_SPACE)
            + draw(st.sampled_from(["=", "=", "=", "==", ""]))
            + draw(_SPACE)
            + draw(_value())
            + draw(_SPACE)
            + comment
        )
    if kind == "comment":
        return draw(_SPACE) + "#" + draw(_STRINGISH)
    if kind == "blank":
        return draw(_SPACE)
    if kind == "table":
        return "[" + draw(_KEYISH) + "]"
    return draw(_STRINGISH)


_CLEAN_VALUE = st.one_of(
    st.text(alphabet="abc /-_.:#=éü€", max_size=8).map(lambda v: f'"{v}"'),
    st.text(alphabet="abc /-_.:#=\\éü€", max_size=8).map(lambda v: f"'{v}'"),
    st.sampled_from(["true", "false"]),
)


_CLEAN_KEY = st.one_of(_KEYS, st.text(alphabet="abAB09_-", min_size=1, max_size=4))


@st.composite
def _clean_line(draw: st.DrawFn) -> str:
    """A line the fast path reads: a pair, a comment or a blank."""
    kind = draw(st.sampled_from(["pair", "pair", "pair", "comment", "blank"]))
    if kind == "comment":
        return draw(_SPACE) + "#" + draw(st.text(alphabet="ab #='\"", max_size=6))
    if kind == "blank":
        return draw(_SPACE)
    comment = draw(st.sampled_from(["", "", "# c", "#", " #'x' = \"y\""]))
    return (
        draw(_SPACE)
        + draw(_CLEAN_KEY)
        + draw(_SPACE)
        + "="
        + draw(_SPACE)
        + draw(_CLEAN_VALUE)
        + draw(_SPACE)
        + comment
    )


@st.composite
def toml_texts(draw: st.DrawFn) -> str:
    """Mostly text near the fast path's edge: clean lines, then perhaps a few odd
    characters spliced in anywhere; otherwise free TOML-ish lines."""
    clean = draw(st.booleans())
    lines = draw(st.lists(_clean_line() if clean else _line(), max_size=6))
    text = ""
    for line in lines:
        ending = ["\n", "\r\n"] if clean else ["\n", "\n", "\r\n", "\r", "\u2028", "\x85", ""]
        text += line + draw(st.sampled_from(ending))
    if clean:
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from([*_ODD, '"', "'", "#", "=", "\\"])) + text[at:]
    return text


def _tomllib(text: str) -> dict[str, object] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


@given(toml_texts())
@example("store = '/etc/x'\r\nnode = \"hv1\" # a comment\r\ntrust_any_owner = true\n")
@example("a = 'x'\x85b = 'y'\n")
@example("a = 'x'\u2028")
@example('a = "x\\u0041"\n')
@example("a = true\na = false\n")
def test_fast_reader_agrees_with_tomllib(text: str) -> None:
    fast = flat_toml(text)
    if fast is not None:
        assert _tomllib(text) == fast, "flat_toml accepted what tomllib reads otherwise"


@given(st.lists(_line(), max_size=4).map(lambda ls: "\n".join(ls) + "\r"))
@example("node = 'hv1'\r")
def test_fast_reader_refuses_a_bare_cr_at_end(text: str) -> None:
    fast = flat_toml(text)
    if fast is not None:
        assert _tomllib(text) == fast


def test_the_generator_reaches_the_fast_path() -> None:
    """Guard: the agreement test is vacuous unless many texts are read by the fast path
    itself, with several keys, CRLF and comments among them."""
    found = find(
        toml_texts(),
        lambda t: (
            (fast := flat_toml(t)) is not None and len(fast) >= 2 and "\r\n" in t and "#" in t
        ),
        # Any such text will do: no shrinking, and a bound on the search.
        settings=settings(max_examples=500, phases=[Phase.generate], database=None),
    )
    assert flat_toml(found)


_TYPES = {"store": str, "node": str, "sysfs": str, "state_dir": str, "trust_any_owner": bool}


@given(toml_texts())
@example("store = '/s'\nnode = 'hv1'\n")
@example("store = 1\n")
@example("[store]\n")
def test_the_config_fails_exactly_when_tomllib_does(text: str) -> None:
    """The whole reader (fast path, tomllib fallback, key checks) as the hook runs it:
    an InputError exactly when tomllib fails or a key is unknown or mistyped; otherwise
    tomllib's values."""
    expected = _tomllib(text)
    valid = expected is not None and all(
        k in _TYPES and type(v) is _TYPES[k] for k, v in expected.items()
    )
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "hook.toml")
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        try:
            config = load_config({"HOSTDEV_RESOLVER_CONFIG": path})
        except UntrustedFileError:
            # As root the hook trusts only root-owned directories; not a TOML question.
            pytest.skip(f"{directory} is not trusted by a root-run hook")
        except InputError:
            assert not valid
            return
    assert valid and expected is not None
    for key, value in expected.items():
        assert getattr(config, key) == value
