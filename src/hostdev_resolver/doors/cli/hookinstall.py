"""`hostdev-resolver hook install`: put the qemu hook where libvirtd looks for it.

libvirt (>= 6.5) runs `/etc/libvirt/hooks/qemu` and then every executable in
`/etc/libvirt/hooks/qemu.d/` in alphabetical order, whatever its name (docs/hooks.rst,
"Script structure"): a backup such as `50-hostdev-resolver.dpkg-old` or `.rpmsave` left
there runs as a hook too. So nothing but a symlink goes into that directory:
`qemu.d/50-hostdev-resolver` -> the hook's code, which lives outside /etc (dpkg and rpm
never make side copies of a symlink). The Debian package ships the code as
`/usr/libexec/hostdev-resolver/qemu-hook` and its maintainer scripts manage the same
symlink, so a manual install and the package write the same thing and cannot collide.

Run from the package, `hook install` points the symlink at the packaged hook. Run from
anywhere else (a venv, a checkout), it writes a small launcher with this interpreter in
its shebang (libvirtd runs hooks with a scrubbed environment, so neither PATH nor
HOSTDEV_RESOLVER_CONFIG can come from the daemon) to `<venv>/libexec/hostdev-resolver/`
(`/usr/local/libexec/hostdev-resolver/` outside a venv) and points the symlink at it.

libvirtd builds its list of hooks when it starts: a *new* hook is only run after a
restart of the daemon; an updated one is run at once.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...model.errors import HostAccessError, Location, RefusedError

if TYPE_CHECKING:
    import argparse

DEFAULT_HOOKS_DIR = "/etc/libvirt/hooks"
HOOK_NAME = "50-hostdev-resolver"
# Where the Debian package (and the RPM) ship the hook's code.
PACKAGED_HOOK = Path("/usr/libexec/hostdev-resolver/qemu-hook")
LAUNCHER_NAME = "qemu-hook"
MARKER = "# installed by 'hostdev-resolver hook install'"
# In the docstring of hooks/qemu and of every launcher: how a hook of ours is recognised.
SIGNATURE = "libvirt qemu hook for hostdev-resolver"


def hook_script(interpreter: str, config: str | None) -> str:
    """The launcher: hooks/qemu with the interpreter that has this package."""
    lines = [
        f"#!{interpreter}",
        MARKER,
        f'"""{SIGNATURE} (SPEC §6)."""',
        "",
        "import sys",
        "",
    ]
    if config is not None:
        # libvirtd runs hooks with a scrubbed environment, so the config path is fixed here.
        lines += [
            "import os",
            "",
            f"os.environ['HOSTDEV_RESOLVER_CONFIG'] = {config!r}",
            "",
        ]
    lines += [
        "from hostdev_resolver.doors.hook import main",
        "",
        "sys.exit(main(sys.argv[1:], sys.stdin.buffer))",
        "",
    ]
    return "\n".join(lines)


def running_from_package(module_file: str = __file__) -> bool:
    """Is this the distribution package's copy (system Python, /usr/lib/python3*/)?"""
    if sys.prefix != sys.base_prefix:
        return False
    return Path(module_file).resolve().is_relative_to("/usr/lib") and PACKAGED_HOOK.is_file()


def default_launcher_dir() -> Path:
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "libexec" / "hostdev-resolver"
    # Never /usr/libexec: that is the package's.
    return Path("/usr/local/libexec/hostdev-resolver")


def is_ours(path: Path) -> bool:
    """A hook this command or the package installed: hooks/qemu, the packaged copy or a
    launcher (all carry SIGNATURE), or a symlink to one of them, even a dangling one."""
    try:
        return SIGNATURE in path.read_text(errors="replace")
    except FileNotFoundError:
        if not path.is_symlink():
            return False
        target = Path(os.readlink(path))
        return target.name == LAUNCHER_NAME and target.parent.name == "hostdev-resolver"
    except OSError:
        return False


def install_hook(
    hooks_dir: Path,
    *,
    as_qemu: bool,
    config: str | None,
    interpreter: str = sys.executable,
    packaged_hook: Path | None = None,
    launcher_dir: Path | None = None,
) -> tuple[Path, Path, bool]:
    """Point `hooks_dir/qemu.d/50-hostdev-resolver` (or `hooks_dir/qemu`) at the hook.

    The target is `packaged_hook` when given and no config is to be fixed; otherwise a
    launcher written to `launcher_dir` (root-owned, 0755, atomically). The link itself
    is replaced atomically. Returns (link, target, whether the link is new).
    """
    link = hooks_dir / "qemu" if as_qemu else hooks_dir / "qemu.d" / HOOK_NAME
    existed = link.exists() or link.is_symlink()
    if as_qemu and existed and not is_ours(link):
        raise RefusedError(
            "another program's hook is installed here; not overwriting it",
            where=Location(str(link)),
            fix="install into qemu.d/ instead (without --as-qemu)",
        )
    if packaged_hook is not None and config is None:
        target = packaged_hook
    else:
        directory = launcher_dir if launcher_dir is not None else default_launcher_dir()
        target = directory / LAUNCHER_NAME
        _write_executable(target, hook_script(interpreter, config).encode())
    _replace_with_symlink(link, target)
    return link, target, not existed


def _write_executable(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise HostAccessError(
            f"cannot write the hook launcher: {exc.strerror}",
            where=Location(str(target)),
            fix=_fix_for(exc, "--launcher-dir"),
        ) from None
    try:
        try:
            os.write(fd, data)
            # The hook runs as root: it must be root's and writable by nobody else.
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o755)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        os.unlink(tmp)
        raise HostAccessError(
            f"cannot write the hook launcher: {exc.strerror}",
            where=Location(str(target)),
            fix=_fix_for(exc, "--launcher-dir"),
        ) from None


def _replace_with_symlink(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.new")
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
        os.lchown(tmp, 0, 0)
        os.replace(tmp, link)
    except OSError as exc:
        if tmp.is_symlink():
            tmp.unlink()
        raise HostAccessError(
            f"cannot install the hook: {exc.strerror}",
            where=Location(str(link)),
            fix=_fix_for(exc, "--hooks-dir"),
        ) from None


def _fix_for(exc: OSError, option: str) -> str:
    if isinstance(exc, PermissionError) or os.geteuid() != 0:
        return "run as root"
    return f"check that {option} is a directory (not a file) on a writable file system"


def cmd_hook_install(args: argparse.Namespace) -> int:
    config = os.path.abspath(args.config) if args.config else None
    link, target, new = install_hook(
        Path(args.hooks_dir),
        as_qemu=args.as_qemu,
        config=config,
        packaged_hook=PACKAGED_HOOK if running_from_package() else None,
        launcher_dir=Path(args.launcher_dir) if args.launcher_dir else None,
    )
    print(f"installed the hostdev-resolver hook as {link} -> {target} (python {sys.executable})")
    if new:
        print(
            "restart libvirtd (or virtqemud) now: libvirt reads the list of hooks when it "
            "starts, so a new hook is not run before a restart"
        )
    else:
        print("it replaced the previous version, which libvirtd runs from the next call on")
    return 0


def register(
    sub: argparse._SubParsersAction[Any], name: str, help: str, common: argparse.ArgumentParser
) -> None:
    """Add `hook install` (doors.cli.main.COMMANDS). The common host options mean nothing
    to it, so `common` only lends its class (the CLI's one-line usage errors) to the new
    parsers."""
    hook = sub.add_parser(name, help=help)
    actions = hook.add_subparsers(dest="hook_command", metavar="ACTION", parser_class=type(common))
    actions.required = True
    install = actions.add_parser(
        "install",
        help=f"link qemu.d/{HOOK_NAME} (libvirt >= 6.5), or qemu, to the hook",
    )
    install.add_argument(
        "--hooks-dir",
        metavar="DIR",
        default=DEFAULT_HOOKS_DIR,
        help=f"libvirt's hook directory (default {DEFAULT_HOOKS_DIR})",
    )
    install.add_argument(
        "--as-qemu",
        action="store_true",
        help="install as DIR/qemu (for libvirt < 6.5; refused if another hook is there)",
    )
    install.add_argument(
        "--launcher-dir",
        metavar="DIR",
        help="where the launcher goes when not run from the package "
        "(default VENV/libexec/hostdev-resolver, or /usr/local/libexec/hostdev-resolver)",
    )
    install.add_argument(
        "--config",
        metavar="PATH",
        help="hook config the installed hook reads (default /etc/hostdev-resolver/hook.toml)",
    )
    install.set_defaults(handler=cmd_hook_install)
