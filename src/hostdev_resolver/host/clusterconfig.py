"""The cluster config file of a node (/etc/hostdev-resolver/cluster.toml, docs/cluster.md).

The agent reads its options from it, and every command that opens an `etcds://` store
without TLS options takes the agent's TLS files from it.
"""

from __future__ import annotations

import os

from ..model.errors import InputError, Location

AGENT_CONFIG = "/etc/hostdev-resolver/cluster.toml"
CONFIG_ENV = "HOSTDEV_RESOLVER_CLUSTER_CONFIG"  # another file instead (tests, by hand)
# Keys of the agent's config file, and the option each stands for.
_CONFIG_KEYS = {
    "store": "store",
    "store_ca": "store_ca",
    "store_cert": "store_cert",
    "store_key": "store_key",
    "cache": "cache",
    "node": "node",
    "sysfs": "sysfs",
}


def cluster_config_path() -> str:
    return os.environ.get(CONFIG_ENV) or AGENT_CONFIG


def read_agent_config(path: str, required: bool) -> dict[str, str]:
    """The agent's config file: flat TOML, `store`, `store_ca`, `store_cert`, `store_key`,
    `cache`, `node`, `sysfs` (command-line options win)."""
    import tomllib

    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        if required:
            raise InputError("agent config not found", where=Location(path)) from None
        return {}
    except OSError as exc:
        raise InputError(
            f"cannot read the agent config: {exc.strerror}", where=Location(path)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", where=Location(path)) from None
    out: dict[str, str] = {}
    for key, value in table.items():
        if key not in _CONFIG_KEYS:
            raise InputError(
                f"unknown key {key!r} in the agent config",
                where=Location(path),
                fix=f"the keys are {', '.join(_CONFIG_KEYS)}",
            )
        if not isinstance(value, str):
            raise InputError(f"{key} = {value!r} must be a string", where=Location(path))
        out[_CONFIG_KEYS[key]] = value
    return out
