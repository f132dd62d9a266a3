"""Where the mapping store lives: a file (the default) or etcd (`etcd://…`, SPEC §7a).

The CLI opens and edits the store through these three functions only; the etcd
modules are imported only when the store is a URL.
"""

from __future__ import annotations

from ..xml.store import Store
from .hostsource import default_store
from .storeread import load_store

# Not typing.TYPE_CHECKING: every command (and hostdev-virsh define) imports this
# module, and typing is a sizeable part of a bare start-up (see cli.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import TypeVar

    from ..xml.storeedit import StoreEditor
    from .etcdstore import EtcdStore

    T = TypeVar("T")


def store_location(args: argparse.Namespace) -> str:
    return str(getattr(args, "store", None) or default_store())


def is_url(text: str) -> bool:
    """A store given as SCHEME://… (anything else is a file path)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isascii() and scheme.replace("+", "").isalnum()


def is_etcd(args: argparse.Namespace) -> bool:
    return is_url(store_location(args))


def etcd_store(args: argparse.Namespace, location: str | None = None) -> EtcdStore:
    """The etcd store the arguments name, or `location` with the arguments' TLS files
    (a bad URL is a usage error, exit 2)."""
    from .etcdstore import open_etcd_store

    location = location or store_location(args)
    tls = [getattr(args, k, None) for k in ("store_ca", "store_cert", "store_key")]
    if location.startswith("etcds://") and not any(tls):
        # The TLS files the node's agent uses (docs/cluster.md), when none are given.
        from .clusterconfig import cluster_config_path, read_agent_config

        config = read_agent_config(cluster_config_path(), required=False)
        tls = [config.get(k) for k in ("store_ca", "store_cert", "store_key")]
    return open_etcd_store(location, *tls)


def open_store(args: argparse.Namespace) -> Store:
    if is_etcd(args):
        return etcd_store(args).load()
    return load_store(store_location(args))


def edit_store(args: argparse.Namespace, name: str, change: Callable[[StoreEditor], T]) -> T:
    """Apply `change` to the store: under the file lock, or as an etcd transaction on
    mapping `name` (retried when another writer got there first)."""
    if is_etcd(args):
        return etcd_store(args).edit_mapping(name, change)
    from .storefile import StoreFile

    with StoreFile(store_location(args)).edit() as editor:
        return change(editor)
