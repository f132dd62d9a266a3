"""Shell-style patterns (`<allow domain='ml-*'>`, modules.alias), matched as
fnmatch.fnmatchcase does.

fnmatch compiles every pattern into a regular expression, and importing `re` (with
`enum`) costs about half of a bare interpreter's start-up: the hook and `hostdev-virsh
define` pay it on every call whose store has an <allow>. Patterns made of `*`, `?` and
literal characters (every pattern seen in practice) are matched here directly; a pattern
with a `[` set, whose corner cases (ranges, `!`, a `]` first) only fnmatch defines,
goes to fnmatch itself, so the answer is always fnmatch's.
"""

from __future__ import annotations


def matches(name: str, pattern: str) -> bool:
    """fnmatch.fnmatchcase(name, pattern): `*` any run (also empty, also `/`), `?` any
    one character, everything else itself; case-sensitive."""
    if "[" in pattern:
        from fnmatch import fnmatchcase

        return fnmatchcase(name, pattern)
    # Greedy match with one backtrack point, the last `*`: exact for `*` and `?` alone.
    n, p = 0, 0
    star, mark = -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] in ("?", name[n]):
            n += 1
            p += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, n
            p += 1
        elif star >= 0:
            mark += 1
            n, p = mark, star + 1
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)
