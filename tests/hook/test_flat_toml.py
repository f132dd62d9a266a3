"""The hook's fast TOML reader never disagrees with tomllib: same table, or it steps aside."""

from __future__ import annotations

import tomllib

import pytest

from hostdev_resolver.doors.hookops import flat_toml

CASES = [
    "",
    "# only a comment\n\n",
    'store = "/etc/hostdev-resolver/mappings.xml"\n',
    "store = '/etc/x.xml'   # literal string, trailing comment\n",
    'node = "hv1"\ntrust_any_owner = true\n',
    "trust_any_owner = false # no\n",
    '  sysfs = "/sys"  \n',
    'dev-root = "/dev"\n',
    'path = "C:\\\\dir"\n',  # escapes: tomllib's job
    'quote = "a\\"b"\n',
    "store = '/has \"double\" quotes'\n",
    'x = "#not a comment"\n',
    "n = 3\n",
    "a.b = 1\n",
    "[table]\nkey = 'v'\n",
    "arr = ['a', 'b']\n",
    'dup = "a"\ndup = "b"\n',
    'bad = "unterminated\n',
    "flag = True\n",
    'trailing = "x" junk\n',
    "= 'no key'\n",
    "noequals\n",
    '"quoted key" = 1\n',
    "empty = ''\n",
    'multi = """\nline\n"""\n',
    # Found in review: other line separators and whitespace that str.splitlines() and
    # str.strip() honour but TOML does not; a comment must stay a comment.
    "store = '/etc/x.xml' # default\u2028trust_any_owner = true\n",
    "# c\x85store = '/tmp/evil.xml'\n",
    "# c\u2029node = 'hv2'\n",
    "store = '/a'\rnode = 'b'\n",
    "store = '/a'\x0cnode = 'b'\n",
    "store = '/a'\r\nnode = 'b'\r\n",
    "\u00a0store = '/a'\n",
    "\u3000store = '/a'\n",
    "store = '/a\x01'\n",
    "store = '/a\x7f'\n",
    "# \x01\n",
    "st\u00f6re = '/a'\n",
    "store = '/caf\u00e9'\n",
    "\tstore\t=\t'/a'\t#\tc\n",
    # Found in review: a CR not followed by LF at the very end (no newline after it).
    "store = '/a'\r",
    "# c\r",
    "store = '/a'\r\n# c\r",
    "store = '/a'\r\r\n",
    "store = '/a'\r\n",
]


@pytest.mark.parametrize("text", CASES)
def test_fast_reader_agrees_with_tomllib(text: str) -> None:
    try:
        expected: dict[str, object] | None = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        expected = None
    got = flat_toml(text)
    if got is not None:
        assert expected is not None, f"fast reader accepted invalid TOML {text!r}"
        assert got == expected


def test_the_shipped_config_forms_take_the_fast_path() -> None:
    text = (
        "# hostdev-resolver hook configuration\n"
        'store = "/etc/hostdev-resolver/mappings.xml"\n'
        "node = 'hv1'\n"
        'sysfs = "/sys"\n'
        "trust_any_owner = false\n"
    )
    assert flat_toml(text) == tomllib.loads(text)
