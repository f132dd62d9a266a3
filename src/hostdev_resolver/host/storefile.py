"""The store on disk: locked read-modify-write, atomic replace.

Kept apart from `storeread` (reading, and the hook's trusted read) so the hook, which
only reads the store, never imports what writing needs; the parse and in-memory edits
are `xml.store`.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from ..model.errors import InputError, Location
from ..xml.store import EMPTY, parse_store, validate_schema
from ..xml.storeedit import StoreEditor
from ..xml.xmldoc import parse_bytes
from .storeread import read_store_bytes


class StoreFile:
    """The store on disk: locked read-modify-write, atomic replace."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _real_path(self) -> str:
        """Where the store really is. A symlinked store is edited at its target: the
        rename that makes a write atomic replaces whatever name it is given, so
        renaming onto the link would turn it into a file and leave the real store
        unchanged. A dangling link is refused rather than guessed at."""
        if not os.path.islink(self.path):
            return self.path
        real = os.path.realpath(self.path)
        if not os.path.exists(real):
            raise InputError(
                f"the mapping store is a symlink to {real}, which does not exist",
                where=Location(self.path),
                fix="create the store there (or fix the link), or give --store the real file",
            )
        return real

    @contextmanager
    def edit(self) -> Iterator[StoreEditor]:
        """Lock, read (an empty store if none yet), yield an editor, validate, replace."""
        real = self._real_path()
        directory = os.path.dirname(os.path.abspath(real))
        try:
            os.makedirs(directory, exist_ok=True)
            lock_fd = os.open(real + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            from ..model.errors import HostAccessError

            raise HostAccessError(
                f"cannot lock the mapping store: {exc.strerror}",
                where=Location(self.path),
                fix="run as root or give --store a writable path",
            ) from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            exists = os.path.exists(real)
            data = read_store_bytes(real) if exists else EMPTY
            doc = parse_bytes(data, self.path)
            if exists:
                validate_schema(doc)
            editor = StoreEditor(doc)
            yield editor
            result = editor.result()
            if result != data:
                new_doc = parse_bytes(result, self.path)
                parse_store(new_doc)
                validate_schema(new_doc)
                self._replace(real, result)
        finally:
            os.close(lock_fd)

    def _replace(self, real: str, data: bytes) -> None:
        directory = os.path.dirname(os.path.abspath(real))
        try:
            mode = stat.S_IMODE(os.stat(real).st_mode)
        except FileNotFoundError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(prefix=".mappings.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, real)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
