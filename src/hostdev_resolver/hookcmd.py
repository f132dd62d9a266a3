"""`hostdev-resolver hook install`: put the qemu hook where libvirtd looks for it.

libvirt (>= 6.5) runs `/etc/libvirt/hooks/qemu` and then every executable in
`/etc/libvirt/hooks/qemu.d/` in alphabetical order (docs/hooks.rst, "Script
structure"), so by default the hook goes into `qemu.d/50-hostdev-resolver` and leaves
any existing `qemu` script alone. libvirtd builds its list of hooks when it starts:
a *new* hook is only run after a restart of the daemon; an updated one is run at once.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import HostAccessError, Location, RefusedError

if TYPE_CHECKING:
    import argparse

DEFAULT_HOOKS_DIR = "/etc/libvirt/hooks"
HOOK_NAME = "50-hostdev-resolver"
MARKER = "# installed by 'hostdev-resolver hook install'"


def hook_script(interpreter: str, config: str | None) -> str:
    """The installed hook: hooks/qemu with the interpreter that has this package."""
    lines = [
        f"#!{interpreter}",
        MARKER,
        '"""libvirt qemu hook for hostdev-resolver (SPEC §6)."""',
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
        "from hostdev_resolver.hook import main",
        "",
        "sys.exit(main(sys.argv[1:], sys.stdin.buffer))",
        "",
    ]
    return "\n".join(lines)


def install_hook(
    hooks_dir: Path, *, as_qemu: bool, config: str | None, interpreter: str = sys.executable
) -> tuple[Path, bool]:
    """Install atomically (root-owned, 0755); returns the path and whether it is new."""
    target = hooks_dir / "qemu" if as_qemu else hooks_dir / "qemu.d" / HOOK_NAME
    existed = target.exists()
    if as_qemu and existed and MARKER not in target.read_text(errors="replace"):
        raise RefusedError(
            "another program's hook is installed here; not overwriting it",
            where=Location(str(target)),
            fix="install into qemu.d/ instead (without --as-qemu)",
        )
    data = hook_script(interpreter, config).encode()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise HostAccessError(
            f"cannot write the hook: {exc.strerror}",
            where=Location(str(target)),
            fix=_fix_for(exc),
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
            f"cannot install the hook: {exc.strerror}",
            where=Location(str(target)),
            fix=_fix_for(exc),
        ) from None
    return target, not existed


def _fix_for(exc: OSError) -> str:
    if isinstance(exc, PermissionError) or os.geteuid() != 0:
        return "run as root"
    return "check that --hooks-dir is a directory (not a file) on a writable file system"


def cmd_hook_install(args: argparse.Namespace) -> int:
    config = os.path.abspath(args.config) if args.config else None
    target, new = install_hook(Path(args.hooks_dir), as_qemu=args.as_qemu, config=config)
    print(f"installed the hostdev-resolver hook as {target} (python {sys.executable})")
    if new:
        print(
            "restart libvirtd (or virtqemud) now: libvirt reads the list of hooks when it "
            "starts, so a new hook is not run before a restart"
        )
    else:
        print("it replaced the previous version, which libvirtd runs from the next call on")
    return 0


def register_hook_command(
    subparsers: argparse._SubParsersAction[Any], common_parser: argparse.ArgumentParser
) -> None:
    """Add `hook install`. The common host options mean nothing to it, so `common_parser`
    only lends its class (the CLI's one-line usage errors) to the new parsers."""
    hook = subparsers.add_parser("hook", help="the libvirt qemu hook")
    actions = hook.add_subparsers(
        dest="hook_command", metavar="ACTION", parser_class=type(common_parser)
    )
    actions.required = True
    install = actions.add_parser(
        "install",
        help=f"install the hook as qemu.d/{HOOK_NAME} (libvirt >= 6.5) or as qemu",
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
        "--config",
        metavar="PATH",
        help="hook config the installed hook reads (default /etc/hostdev-resolver/hook.toml)",
    )
    install.set_defaults(handler=cmd_hook_install)
