"""What a directory tree holds, to prove a test run left it as it found it.

A snapshot records, for every entry under a root, its type, permission bits, owner and
group, and a regular file's bytes or a symlink's target. Modification times are left
out: putting a file back exactly still gives it a new mtime.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

Entry = tuple[str, int, int, int, bytes]
Snapshot = dict[str, Entry]


def snapshot(root: Path) -> Snapshot:
    """Every entry under root (root itself as "."); an absent root is an empty snapshot."""
    entries: Snapshot = {}
    if not root.exists() and not root.is_symlink():
        return entries
    stack = [root]
    while stack:
        path = stack.pop()
        info = path.lstat()
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            kind, data = "symlink", os.readlink(path).encode()
        elif stat.S_ISREG(mode):
            kind, data = "file", path.read_bytes()
        elif stat.S_ISDIR(mode):
            kind, data = "dir", b""
            stack.extend(sorted(path.iterdir()))
        else:
            kind, data = f"special {stat.S_IFMT(mode):o}", b""
        name = str(path.relative_to(root)) if path != root else "."
        entries[name] = (kind, stat.S_IMODE(mode), info.st_uid, info.st_gid, data)
    return entries


def differences(root: Path, before: Snapshot, after: Snapshot) -> list[str]:
    """One line per entry that appeared, disappeared or changed, in path order."""
    lines = []
    for name in sorted(before.keys() | after.keys()):
        path = root / name if name != "." else root
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None:
            lines.append(f"{path}: created")
        elif new is None:
            lines.append(f"{path}: removed")
        else:
            changed = [
                what
                for what, a, b in zip(
                    ("type", "mode", "owner", "group", "content"), old, new, strict=True
                )
                if a != b
            ]
            lines.append(f"{path}: {', '.join(changed)} changed")
    return lines


def restore_directories(root: Path, before: Snapshot) -> None:
    """Recreate, with their mode, owner and group, the directories of `before` that are gone
    (dpkg removes a directory it installed into once it is empty, even one that existed
    before the package)."""
    for name in sorted((n for n, e in before.items() if e[0] == "dir"), key=len):
        path = root / name if name != "." else root
        if path.exists() or path.is_symlink():
            continue
        _, mode, uid, gid, _ = before[name]
        path.mkdir()
        os.chown(path, uid, gid)
        path.chmod(mode)


def restore(root: Path, before: Snapshot) -> None:
    """Make the tree under root what `before` recorded: remove what was added, put back
    what was removed or changed (bytes, symlink targets, modes, owners)."""
    after = snapshot(root)
    for name in sorted(after, key=lambda n: n.count("/"), reverse=True):
        if name in before and before[name][0] == after[name][0]:
            continue
        path = root / name
        if after[name][0] == "dir":
            shutil.rmtree(path)
        else:
            path.unlink()
    for name in sorted(before, key=len):  # a directory before what is in it
        kind, mode, uid, gid, data = before[name]
        path = root / name if name != "." else root
        if kind == "dir":
            if not path.is_dir():
                path.mkdir()
        elif kind == "symlink":
            if not path.is_symlink() or os.readlink(path).encode() != data:
                path.unlink(missing_ok=True)
                os.symlink(os.fsdecode(data), path)
            os.lchown(path, uid, gid)
            continue
        elif kind == "file":
            if path.is_symlink() or not path.is_file() or path.read_bytes() != data:
                tmp = path.with_name(path.name + ".hostdev-resolver-restore")
                tmp.unlink(missing_ok=True)
                # Readable by root alone until it has its owner and mode (qemu.conf is 0600).
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                tmp.replace(path)
        else:
            continue  # a device node or FIFO in /etc/libvirt: nothing a test makes
        os.chown(path, uid, gid)
        path.chmod(mode)
