"""The installed commands' entry points (pyproject's [project.scripts]).

Each runs one command as a short-lived process, with the cyclic garbage collector off
from its first import: its passes, set off by allocation counts while modules load and
records are made, find nothing that the process's exit would not free, and cost every
command about a millisecond (about 5 % of `hostdev-virsh define`'s own part; measured in
bench/). `main` of `doors.cli.main` and of `doors.wrapper` stay as they were for callers
in a process of their own (the tests); `hostdev-resolver agent`, which runs for days,
turns the collector back on.
"""

from __future__ import annotations

import gc


def hostdev_resolver() -> int:
    """`hostdev-resolver`."""
    gc.disable()
    from .cli.main import main

    return main()


def hostdev_virsh() -> int:
    """`hostdev-virsh`."""
    gc.disable()
    from .wrapper import main

    return main()
