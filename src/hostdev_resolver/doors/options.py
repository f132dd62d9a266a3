"""The options every door shares: where the host devices come from and where the store is.

One table for all of them: `hostdev-resolver`'s parsers (`doors.cli.common`, for the
one-node commands, `map check` and `bind`) and hostdev-virsh's own option reader
(`doors.wrapper`, which cannot afford argparse on its `define` path) read the options
from here, so an option is added or re-worded in this module only. `SPECS` says how an
option is spelled and what it takes; each door's tuple says which ones it takes, in
the order its --help lists them, and what they mean there (one node or several, this
host or the connection's).

Plain tuples, no record classes: hostdev-virsh imports this on every command.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: see model/records.py.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Final

# The store when no --store is given, as help text: host.storeread.DEFAULT_PATH and the environment
# variable host.hostsource.default_store reads (tests/test_options.py keeps them equal).
DEFAULT_STORE: Final = "$HOSTDEV_RESOLVER_STORE or /etc/hostdev-resolver/mappings.xml"

# flag -> (metavar, repeatable). Metavar None: a flag that takes no value.
SPECS: Final[dict[str, tuple[str | None, bool]]] = {
    "--store": ("PATH", False),
    "--store-ca": ("FILE", False),
    "--store-cert": ("FILE", False),
    "--store-key": ("FILE", False),
    "--node": ("NAME", False),
    "--dev-root": ("DIR", False),
    "--sysfs": ("ROOT", False),
    "--host": ("SNAPSHOT", True),
    "--udev": (None, False),
    "--connect": ("[NODE=]URI", True),
}

# Where a command reads host devices from; a command that looks at one node takes one.
SOURCES: Final = ("--sysfs", "--host", "--udev", "--connect")

# A door's options: (flag, help), or (flag, help, metavar) where it names the value
# differently.
Help = tuple[str, ...]

STORE_TLS: Final[tuple[Help, ...]] = (
    ("--store-ca", "etcds://: CA bundle of the etcd cluster"),
    ("--store-cert", "etcds://: client certificate"),
    ("--store-key", "etcds://: client certificate's key"),
)

# Every one-node command, after its name (`map add … --store S --sysfs R`).
COMMON: Final[tuple[Help, ...]] = (
    (
        "--store",
        f"mapping store: a file, or etcd://HOST:PORT[,...]/PREFIX (default {DEFAULT_STORE})",
    ),
    *STORE_TLS,
    ("--node", "node name (default: this host's name)"),
    (
        "--dev-root",
        "where /dev/disk/by-id lives, for LUNs (default /dev on the live host, none with --sysfs)",
    ),
    ("--sysfs", "read devices from a directory laid out like /sys"),
    (
        "--host",
        "read devices from 'inventory --format json' output (repeatable where a command "
        "looks at several nodes)",
    ),
    ("--udev", "read the live host through udev"),
    (
        "--connect",
        "read node devices through a libvirt connection (repeatable where a command looks "
        "at several nodes)",
    ),
)

# `map check`: the store, then (after its own --max-age) the nodes, any mix of sources.
MAP_CHECK_STORE: Final[tuple[Help, ...]] = (
    (
        "--store",
        f"mapping store (default {DEFAULT_STORE}); with etcd://… and no "
        "--connect/--host/--sysfs, the nodes are the inventories their agents published",
        "PATH|URL",
    ),
    *STORE_TLS,
)
MAP_CHECK_NODES: Final[tuple[Help, ...]] = (
    (
        "--connect",
        "a node through libvirt (node name: the remote host name unless NODE= gives it); "
        "repeatable",
    ),
    ("--host", "a node from 'inventory --format json' output; repeatable"),
    ("--sysfs", "a node from a directory laid out like /sys"),
    ("--node", "node name for --sysfs or a single --host snapshot"),
)

# `bind` and `unbind` act on this host's sysfs, as the hook does: the hook config's
# store, node and sysfs unless given.
BIND: Final[tuple[Help, ...]] = (
    (
        "--store",
        "mapping store: a file, or etcd://… by hand (default $HOSTDEV_RESOLVER_STORE, "
        "else the hook config's)",
    ),
    ("--node", "node name (default the hook config's, or this host's)"),
    ("--sysfs", "sysfs root (default the hook config's, or /sys)"),
)

# hostdev-virsh: the node is the connection's.
WRAPPER: Final[tuple[Help, ...]] = (
    ("--store", f"mapping store (default {DEFAULT_STORE})"),
    ("--node", "node name (default: the connection's host name)"),
    ("--sysfs", "read host devices from a directory laid out like /sys"),
)


def metavar(option: Help) -> str | None:
    """The value's name in a door's help: its own, else the option's."""
    return option[2] if len(option) > 2 else SPECS[option[0]][0]
