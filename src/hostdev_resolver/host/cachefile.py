"""The agent's cache of an etcd store, as the hook reads it (docs/cluster.md).

The cache is the store's file form with one comment before the root element that
says which etcd revision it reflects and when the agent last knew it to be current:

    <!-- hostdev-resolver agent cache: revision=42 synced=1764547140 url=etcd://… -->

Next to it, the agent writes this node's view (`CACHE.NODE`): the same form holding
only the mappings with an entry on NODE and the node-independent ones, with a second
comment indexing where each mapping's element is:

    <!-- hostdev-resolver index: gpu0=OFFSET+LENGTH@LINE … -->

(offsets and lines counted from the `<mappings` line). The hook cuts out only the
mappings a domain names, so a start on a node of a large cluster parses two
mappings, not a hundred or ten thousand. On the hook's path: imports nothing.
"""

from __future__ import annotations

MARK = b"<!-- hostdev-resolver agent cache:"
INDEX = b"<!-- hostdev-resolver index:"
HEAD = b"<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>"


def view_path(cache: str, node: str) -> str:
    """Where the agent writes NODE's view of the cache `cache`."""
    return f"{cache}.{node}"


def header(revision: int, synced: float, url: str) -> bytes:
    return MARK + f" revision={revision} synced={int(synced)} url={url} -->\n".encode()


def read_header(data: bytes) -> tuple[int, float] | None:
    """(revision, synced) from a cache's first line; None for a plain store file."""
    if not data.startswith(MARK):
        return None
    line = data[len(MARK) : data.find(b"-->")].decode("ascii", "replace")
    fields = dict(item.partition("=")[::2] for item in line.split())
    try:
        return int(fields["revision"]), float(fields["synced"])
    except (KeyError, ValueError):
        return None


def indexed(body: bytes, spans: dict[str, tuple[int, int, int]]) -> bytes:
    """The index comment for `body` (a file form), then `body`."""
    items = " ".join(f"{n}={o}+{n_bytes}@{line}" for n, (o, n_bytes, line) in spans.items())
    return INDEX + f" {items} -->\n".encode() + body


def select(data: bytes, names: set[str]) -> bytes | None:
    """A file-form store of just the mappings `names`, cut out of an indexed view, each
    element on the line it has in the view (so messages point at the right line);
    None when `data` has no index or a name is not in it."""
    start = data.find(INDEX)
    if start < 0:
        return None
    end = data.find(b"-->\n", start)
    if end < 0:
        return None
    body = end + 4
    spans: dict[str, tuple[int, int, int]] = {}
    for item in data[start + len(INDEX) : end].decode("utf-8", "replace").split():
        name, _, where = item.rpartition("=")
        at, _, row = where.partition("@")
        offset, _, length = at.partition("+")
        if name in names:
            if not (offset.isdigit() and length.isdigit() and row.isdigit()):
                return None
            spans[name] = (int(offset), int(length), int(row))
    if len(spans) != len(names):
        return None
    prelude = data[:body].count(b"\n")
    out = [HEAD]
    current = 1
    for offset_at, size, row_at in sorted(spans.values()):
        out.append(b"\n" * (prelude + row_at - current))
        current = prelude + row_at
        element = data[body + offset_at : body + offset_at + size]
        out.append(element)
        current += element.count(b"\n")
    out.append(b"\n</mappings>\n")
    return b"".join(out)
