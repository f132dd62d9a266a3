"""The hook's entry point under its name before the layered layout (issue 11).

Launchers that `hostdev-resolver hook install` wrote before then run
`from hostdev_resolver.hook import main`, and they stay on disk across upgrades: a hook
that fails to import fails every guest's start. The hook itself is `doors.hook`.
"""

from .doors.hook import main

__all__ = ["main"]
