"""Writing a command's output file whole or not at all (write, then rename over it).

tempfile.mkstemp does the same, but importing tempfile (random, weakref, shutil and
through it bz2 and lzma) costs `allocate` and `resolve` about a quarter of a bare
interpreter start, for one file name.
"""

from __future__ import annotations

import errno
import os

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def create_temporary(directory: str, prefix: str, mode: int = 0o600) -> tuple[int, str]:
    """A new file in `directory` that did not exist before, as mkstemp makes one (of mode
    0600 unless `mode` says otherwise; the umask applies): (its descriptor, its path).
    OSError when the directory refuses it."""
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}")
        try:
            return os.open(path, _FLAGS, mode), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def _final_path(path: str) -> str:
    """Where writing to `path` really lands. The rename that makes the write whole
    replaces whatever name it is given: renamed onto a symlink, it would turn the link
    into a regular file and leave its target as it was (as host.storefile found for
    the store). So a symlink is written through, as `>` in a shell does, and the
    temporary file goes beside the target, in the directory the rename happens in. A
    dangling link's target is created; a loop is the kernel's ELOOP."""
    if not os.path.islink(path):
        return path
    real = os.path.realpath(path)
    if os.path.islink(real):  # realpath gives up on a loop and returns a link
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    return real


def replace_file(path: str, data: bytes, prefix: str) -> None:
    """`path` holds `data` afterwards, or is as it was: the bytes go to a temporary file
    beside it, which is renamed over it. A symlinked `path` is written at its target.
    The file keeps the mode it had; a new one gets 0666 less the umask, as a shell's `>`
    gives it (not mkstemp's 0600: an output file is meant to be read)."""
    real = _final_path(path)
    directory = os.path.dirname(os.path.abspath(real))
    try:
        keep: int | None = os.stat(real).st_mode & 0o7777
    except FileNotFoundError:
        keep = None
    fd, tmp = create_temporary(directory, prefix, 0o600 if keep is not None else 0o666)
    try:
        if keep is not None:
            os.fchmod(fd, keep)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, real)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
