"""The agent's cache of an etcd store, as the hook reads it (docs/cluster.md).

The cache is the store's file form with one comment before the root element that
says which etcd revision it reflects and when the agent last knew it to be current:

    <!-- hostdev-resolver agent cache: revision=42 synced=1764547140 url=etcd://… -->

Next to it, the agent writes this node's view (`CACHE.NODE`): the same form holding
only the mappings with an entry on NODE and the node-independent ones, so a start
on a node of a large cluster reads a hundred mappings, not ten thousand. On the
hook's path: imports nothing.
"""

from __future__ import annotations

MARK = b"<!-- hostdev-resolver agent cache:"


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
