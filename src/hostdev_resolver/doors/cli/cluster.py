"""`store export|import` and `agent`: the commands of cluster mode (SPEC §7a)."""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, Any

from ...host.clusterconfig import AGENT_CONFIG, cluster_config_path, read_agent_config
from ...model.errors import UsageError

if TYPE_CHECKING:
    import argparse


def _need_etcd(args: argparse.Namespace, command: str) -> Any:
    from ...host.storebackend import etcd_store, is_etcd

    if not is_etcd(args):
        raise UsageError(
            f"{command} needs --store etcd://HOST:PORT[,...]/PREFIX",
            fix="a file store is already in file form",
        )
    return etcd_store(args)


def cmd_store_export(args: argparse.Namespace) -> int:
    from .common import write_output

    store = _need_etcd(args, "store export")
    _, data = store.file_form()
    write_output(data, args.output)
    return 0


def cmd_store_import(args: argparse.Namespace) -> int:
    from ...host.storeread import read_store_bytes

    store = _need_etcd(args, "store import")
    count = store.replace_all(read_store_bytes(args.file), args.file)
    print(f"imported {count} mapping{'s' if count != 1 else ''} from {args.file} into {store.url}")
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    # The agent runs for days: the collector the entry point turned off runs again.
    gc.enable()
    from ...host.hostsource import this_node
    from ...host.snapshot import inventory_to_json
    from ..agent import Agent
    from .common import open_host, open_scsi

    config = read_agent_config(
        args.config or cluster_config_path(), required=args.config is not None
    )
    for key, value in config.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if not args.store:
        raise UsageError("agent needs --store etcd://… (or 'store' in the agent config)")
    if not args.cache:
        raise UsageError("agent needs --cache FILE (or 'cache' in the agent config)")
    store = _need_etcd(args, "agent")
    node = args.node or this_node()

    def inventory() -> tuple[Any, dict[str, Any]]:
        inv, _ = open_host(args)
        doc = inventory_to_json(inv, node)
        scsi = open_scsi(args, inv)
        if scsi is not None:
            from ...model.scsi import scsi_to_json

            doc["scsi"] = scsi_to_json(scsi)
        return inv, doc

    agent = Agent(
        store,
        os.path.abspath(args.cache),
        node,
        inventory,
        log=sys.stderr,
        heartbeat=args.heartbeat,
        publish_every=args.publish_every,
    )
    if args.once:
        agent.once()
        agent.log(f"cache {args.cache} at revision {agent.revision}; inventory of {node} published")
        return 0
    agent.log(f"following {store.url} into {args.cache} as node {node}")
    try:
        return agent.run()
    finally:
        agent.stop.set()


def register(sub: Any, name: str, help: str, common: argparse.ArgumentParser) -> None:
    """Add `store export|import` or `agent` (doors.cli.main.COMMANDS)."""
    if name == "store":
        sp = sub.add_parser(name, help=help)
        ssub = sp.add_subparsers(dest="store_command", metavar="ACTION", parser_class=type(sp))
        ssub.required = True
        exp = ssub.add_parser(
            "export", parents=[common], help="write an etcd store in file form (valid store.xsd)"
        )
        exp.add_argument(
            "-o", "--output", metavar="FILE", help="write here (atomically), not stdout"
        )
        exp.set_defaults(handler=cmd_store_export)
        imp = ssub.add_parser(
            "import",
            parents=[common],
            help="make an etcd store hold exactly the mappings of a file store (one transaction)",
        )
        imp.add_argument("file", metavar="FILE")
        imp.set_defaults(handler=cmd_store_import)
        return
    ag = sub.add_parser(name, parents=[common], help=help)
    ag.add_argument("--cache", metavar="FILE", help="the file the hook reads (hook.toml 'store')")
    ag.add_argument(
        "--config",
        metavar="FILE",
        help=f"agent config (default {AGENT_CONFIG} when it exists)",
    )
    ag.add_argument("--once", action="store_true", help="sync and publish once, then exit")
    ag.add_argument(
        "--heartbeat",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="rewrite the cache's sync time this often while etcd answers (default 30)",
    )
    ag.add_argument(
        "--publish-every",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="republish the inventory this often (default 60)",
    )
    ag.set_defaults(handler=cmd_agent)
