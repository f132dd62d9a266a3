"""Reading the mapping store (and the hook's config) from disk: host I/O.

Two ways in. The commands read a store with `read_store_bytes`/`load_store`: any
regular file (symlinks followed), never a FIFO or a device node. The hook, running as
root, reads with `read_trusted`: the file and every directory on the way to it must be
root's and not writable by others, walked one component at a time (openat with
O_NOFOLLOW) so nothing can be swapped behind the check.

Kept apart from `storefile` (the locked writer) so the hook imports only what reading
needs; the parse is `xml.store`, imported only by `load_store`.
"""

from __future__ import annotations

import os
import stat

from ..model.errors import InputError, Location, UntrustedFileError
from ..xml.xmldoc import MAX_DOCUMENT_BYTES

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..xml.store import Store

# The one spelling of the default store path: the commands' (`hostsource.default_store`)
# and the hook config's default. Here because the hook imports this module anyway.
DEFAULT_PATH = "/etc/hostdev-resolver/mappings.xml"


def _kind_of(mode: int) -> str:
    """What a non-regular file is, for a message."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _read_fd(fd: int) -> bytes:
    """At most one byte past xmldoc's document limit: the parser refuses it then, and a
    huge file is not read whole only to be refused."""
    chunks = []
    left = MAX_DOCUMENT_BYTES + 1
    while left > 0 and (chunk := os.read(fd, min(1 << 16, left))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_regular(path: str, what: str) -> bytes:
    """Read a file that must be a regular one (symlinks followed).

    A FIFO would block `open` until a writer comes, and a device node reads forever
    (/dev/zero) or has side effects on open: the type is checked before opening, the
    open is non-blocking, and the open descriptor is checked again. OSError (missing,
    permission denied) is left to the caller; anything but a regular file is an
    InputError naming what it is.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, what, info.st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, what, info.st_mode)
        return _read_fd(fd)
    finally:
        os.close(fd)


def _not_regular(path: str, what: str, mode: int) -> InputError:
    return InputError(
        f"the {what} is {_kind_of(mode)}, not a regular file; not read",
        where=Location(path),
        fix=f"point to the {what} file itself",
    )


def read_store_bytes(path: str) -> bytes:
    where = Location(path)
    try:
        return read_regular(path, "mapping store")
    except FileNotFoundError:
        raise InputError(
            "mapping store not found",
            where=where,
            fix="create it with 'hostdev-resolver map add', or give --store",
        ) from None
    except PermissionError:
        raise InputError(
            "cannot read the mapping store: permission denied", where=where, fix="run as root"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read the mapping store: {exc.strerror}", where=where) from None


def load_store(path: str, *, schema: bool = True) -> Store:
    """Read and check a store. The hook passes schema=False: xmlschema is too slow to import
    on every guest start, and parse_store already refuses every value it cannot use."""
    from ..xml.store import parse_store, validate_schema
    from ..xml.xmldoc import parse_bytes

    doc = parse_bytes(read_store_bytes(path), path)
    store = parse_store(doc)
    if schema:
        validate_schema(doc)
    return store


def _untrusted_mode(info: os.stat_result) -> bool:
    return bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


# Linux gives up a path lookup after 40 symlinks (MAXSYMLINKS, fs/namei.c); so do we.
_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _check_directory(fd: int, real: str, what: str, where: Location, via: str | None) -> None:
    info = os.fstat(fd)
    sticky = bool(info.st_mode & stat.S_ISVTX)
    if info.st_uid != 0 or (_untrusted_mode(info) and not sticky):
        through = f" (reached through the symlink {via})" if via else ""
        raise UntrustedFileError(
            f"the {what} is under {real}{through}, which another user can change "
            f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); not trusted",
            where=where,
            fix=f"keep it in a directory only root can write, e.g. chown root {real}; chmod go-w {real}",
        )


def _open_trusted_directory(path: str, what: str) -> tuple[int, str]:
    """Walk down to the directory that holds `path`'s last component, one component at
    a time (openat with O_NOFOLLOW), checking each real directory before looking into
    it; returns its descriptor and the file's name in it.

    A symlinked directory is followed by reading the link in its (already trusted)
    directory and walking its target the same way, so every directory the lookup
    really passes through is checked, and none can be swapped behind the check: each
    is looked into through a descriptor, and only root can change its entries.
    """
    where = Location(path)
    full = path if path.startswith("/") else os.path.join(os.getcwd(), path)
    parts = full.split("/")
    name = parts.pop()
    todo = [p for p in reversed(parts) if p not in ("", ".")]
    fd = os.open("/", _DIR_FLAGS)
    real: list[str] = []
    via: str | None = None
    links = 0
    try:
        _check_directory(fd, "/", what, where, None)
        while todo:
            part = todo.pop()
            here = "/" + "/".join(real)
            try:
                info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise
            except OSError as exc:
                raise UntrustedFileError(
                    f"cannot look up {os.path.join(here, part)}: {exc.strerror}", where=where
                ) from None
            if stat.S_ISLNK(info.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise UntrustedFileError(
                        f"more than {_MAX_SYMLINKS} symlinks on the way to the {what}",
                        where=where,
                    )
                target = os.readlink(part, dir_fd=fd)
                via = os.path.join(here, part)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                    real = []
                todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                continue
            if not stat.S_ISDIR(info.st_mode):
                raise UntrustedFileError(
                    f"{os.path.join(here, part)} is not a directory", where=where
                )
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
            if part == "..":
                real = real[:-1]
            else:
                real.append(part)
            _check_directory(fd, "/" + "/".join(real), what, where, via)
    except BaseException:
        os.close(fd)
        raise
    return fd, name or "."


def read_trusted(path: str, what: str = "mapping store") -> bytes:
    """Read a file the hook, running as root, may act on.

    The file must be root's and not group/world-writable, and so must every directory
    the lookup passes through (a sticky one such as /tmp protects entries it does not
    own), or another user could swap it; a symlinked directory is checked at its real
    place (see `_open_trusted_directory`). The file itself is opened without following
    a symlink, non-blocking (a FIFO would block the hook, and libvirtd with it) and
    checked on the open descriptor, so it cannot change between the check and the
    read. FileNotFoundError is left to the caller: a missing config means defaults, a
    missing store is an error.
    """
    where = Location(path)
    dir_fd, name = _open_trusted_directory(path, what)
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISLNK(info.st_mode):
            raise UntrustedFileError(
                f"the {what} is {_kind_of(info.st_mode)}, not a regular file; not read",
                where=where,
                fix=f"point the hook at the {what} file itself",
            )
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise UntrustedFileError(
                f"cannot open the {what}: {exc.strerror} (a symlink is not followed)",
                where=where,
                fix="point the hook config at the file itself",
            ) from None
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedFileError(
                f"the {what} is {_kind_of(info.st_mode)}, not a regular file; not read",
                where=where,
                fix=f"point the hook at the {what} file itself",
            )
        if info.st_uid != 0:
            raise UntrustedFileError(
                f"the {what} is owned by uid {info.st_uid}, not root; not trusted",
                where=where,
                fix=f"chown root {path}",
            )
        if _untrusted_mode(info):
            raise UntrustedFileError(
                f"the {what} is group- or world-writable (mode {stat.S_IMODE(info.st_mode):o}); not trusted",
                where=where,
                fix=f"chmod go-w {path}",
            )
        return _read_fd(fd)
    finally:
        os.close(fd)
