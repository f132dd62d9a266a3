"""The one exception hierarchy of hostdev-resolver.

Every error says what is wrong, where (file:line, node, address) and what to do.
Only the CLI, the hook and the wrapper turn these into exit codes (SPEC §5):

- `RefusedError` (1): the input is well-formed but not acceptable;
- `InputError` / `UsageError` (2): malformed or unreadable input, bad arguments;
- `HostAccessError` (3): the environment failed us (libvirt, permissions, sysfs).
"""

from __future__ import annotations

from .records import frozen

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


@frozen
class Location:
    """Where a problem is: a file and line, or a node, or nothing known."""

    source: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.source is None:
            return ""
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}"


class HostdevError(Exception):
    """Base of every error the tool reports to a user."""

    exit_code: ClassVar[int] = 1

    def __init__(self, what: str, *, where: Location | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where or Location()
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = self.what
        where = str(self.where)
        if where:
            text = f"{where}: {text}"
        if self.fix:
            text = f"{text}; {self.fix}"
        return text

    def located(self, where: Location) -> HostdevError:
        """The same error, placed at `where` when it had no place of its own."""
        if str(self.where):
            return self
        self.where = where
        self.args = (self.message,)
        return self


class InputError(HostdevError):
    """Malformed or unreadable input: bad XML, bad store, bad value (exit 2)."""

    exit_code = 2


class UsageError(InputError):
    """Bad command-line arguments (exit 2)."""


class RefusedError(HostdevError):
    """Well-formed input that cannot be accepted (exit 1)."""

    exit_code = 1


class UnresolvableError(RefusedError):
    """A reference names no mapping, or the mapping has no usable entry on the node."""


class AmbiguousError(RefusedError):
    """Several host devices fit one reference and nothing recorded tells them apart."""


class AccessDeniedError(RefusedError):
    """The mapping's <allow> list excludes the domain."""


class ConflictError(RefusedError):
    """Two claims on one thing: a host device in two domains, two devices on one guest address."""


class HostAccessError(HostdevError):
    """The environment failed: libvirt unreachable, permission denied, sysfs write failed (exit 3)."""

    exit_code = 3


class UntrustedFileError(HostAccessError):
    """A store or config the hook (running as root) must not trust."""
