"""shellpattern.matches is fnmatch.fnmatchcase, without importing re on the way."""

from __future__ import annotations

import subprocess
import sys
from fnmatch import fnmatchcase

from hypothesis import example, given
from hypothesis import strategies as st

from hostdev_resolver.model.shellpattern import matches

# Few letters, so that names and patterns meet often; '/' and '\n' because fnmatch's
# `*` and `?` match them too; '[' and ']' exercise the hand-over to fnmatch.
_ALPHABET = "ab-/\n"
_names = st.text(alphabet=_ALPHABET, max_size=8)
_patterns = st.text(alphabet=_ALPHABET + "*?*[]!", max_size=8)


@given(_names, _patterns)
@example("ml-train", "ml-*")
@example("", "*")
@example("", "?")
@example("aaa", "*a*a*a*")
@example("ab", "*?*?*?")
@example("a\nb", "a?b")
@example("a]", "[!]]*")
def test_matches_is_fnmatchcase(name: str, pattern: str) -> None:
    assert matches(name, pattern) == fnmatchcase(name, pattern)


def test_a_plain_pattern_imports_no_re() -> None:
    code = (
        "import sys\n"
        "from hostdev_resolver.model.shellpattern import matches\n"
        "assert matches('ml-train', 'ml-*') and not matches('web', 'ml-?')\n"
        "print('re' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
