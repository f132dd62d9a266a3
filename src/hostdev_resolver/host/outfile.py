"""Writing a command's output file whole or not at all (write, then rename over it).

tempfile.mkstemp does the same, but importing tempfile (random, weakref, shutil and
through it bz2 and lzma) costs `allocate` and `resolve` about a quarter of a bare
interpreter start, for one file name.
"""

from __future__ import annotations

import os

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def create_temporary(directory: str, prefix: str) -> tuple[int, str]:
    """A new file of mode 0600 in `directory` that did not exist before, as mkstemp makes
    one: (its descriptor, its path). OSError when the directory refuses it."""
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}")
        try:
            return os.open(path, _FLAGS, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def replace_file(path: str, data: bytes, prefix: str) -> None:
    """`path` holds `data` afterwards, or is as it was: the bytes go to a temporary file
    beside it, which is renamed over it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = create_temporary(directory, prefix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
