"""Install the built .deb on this machine and check what an administrator gets.

Installing the package writes /etc/libvirt/hooks/qemu.d/50-hostdev-resolver on the
host (the real-daemon tests keep theirs in a private copy of /etc/libvirt, see
tests/support/libvirtd.py). Every file this module may replace is set aside first and put
back at the end, the package is purged, the directories dpkg removed on purge are made
again with their mode and owner, and the fixture then checks that /etc/libvirt is
byte-identical to what it found. Installing the hook while a libvirtd runs does not
change what that daemon calls for guests it is not starting.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import completion
import manpage
import pytest

from hostdev_resolver.cli import build_parser
from tests.packaging import apt
from tests.support import treesnapshot

ETC_LIBVIRT = Path("/etc/libvirt")
HOOK = ETC_LIBVIRT / "hooks" / "qemu.d" / "50-hostdev-resolver"
CONFDIR = Path("/etc/hostdev-resolver")
CONFIG = CONFDIR / "hook.toml"
STORE = CONFDIR / "mappings.xml"
SET_ASIDE = CONFDIR / "qemu-hook.dpkg-removed"
TOUCHED = (HOOK, CONFIG, STORE, STORE.with_name("mappings.xml.lock"), SET_ASIDE)

UNMAPPED_DOMAIN = """<domain type='qemu'>
  <name>guest</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='/var/lib/x.img'/>
    <target dev='vda' bus='virtio'/></disk></devices>
</domain>
"""

TEST_DRIVER_DOMAIN = """<domain type='test'>
  <name>pkgtest</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
</domain>
"""

STORE_XML = """<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>
  <usb name='key'><node name='hv1' vendor='1050' product='0407'/></usb>
</mappings>
"""


def _purge(env: dict[str, str] | None = None) -> None:
    if apt.package_status() != "not-installed":
        proc = apt.dpkg("--purge", apt.PACKAGE, env=env)
        assert proc.returncode == 0, proc.stderr


def _install(deb: Path) -> str:
    proc = apt.dpkg("-i", str(deb))
    assert proc.returncode == 0, f"dpkg -i failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@dataclass(frozen=True)
class Installed:
    deb: Path
    output: str


@pytest.fixture(scope="module")
def installed(built_deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The package installed with dpkg -i; purged afterwards, the machine's files restored."""
    try:
        depends = apt.relation_names(apt.deb_field(built_deb, "Depends"))
        apt.ensure_installed([*depends, "man-db"])
    except apt.AptUnavailable as exc:
        pytest.skip(f"cannot install the package's dependencies: {exc}")
    saved = tmp_path_factory.mktemp("set-aside")
    confdir_existed = CONFDIR.exists()
    etc_before = treesnapshot.snapshot(ETC_LIBVIRT)
    _purge()
    moved = []
    for path in TOUCHED:
        if path.exists() or path.is_symlink():
            target = saved / path.name
            shutil.move(path, target)
            moved.append((path, target))
    try:
        yield Installed(built_deb, _install(built_deb))
    finally:
        _purge()
        for path in TOUCHED:
            if path.exists() or path.is_symlink():
                path.unlink()
        treesnapshot.restore_directories(ETC_LIBVIRT, etc_before)
        for path, target in moved:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(target, path)
        if not confdir_existed and CONFDIR.is_dir() and not any(CONFDIR.iterdir()):
            CONFDIR.rmdir()
    changed = treesnapshot.differences(ETC_LIBVIRT, etc_before, treesnapshot.snapshot(ETC_LIBVIRT))
    assert changed == [], f"installing and purging the package changed {ETC_LIBVIRT}: {changed}"


def _safe(path: Path) -> os.stat_result:
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode), f"{path} is not a regular file"
    assert (info.st_uid, info.st_gid) == (0, 0), f"{path} is not owned by root"
    assert info.st_mode & 0o022 == 0, f"{path} is group/world-writable: {oct(info.st_mode)}"
    return info


def _conffiles() -> list[str]:
    proc = apt.run(["dpkg-query", "-W", "-f=${Conffiles}", apt.PACKAGE])
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def test_install_tells_to_restart_libvirtd(installed: Installed) -> None:
    assert "restart libvirtd once" in installed.output
    readme = Path("/usr/share/doc/hostdev-resolver/README.Debian").read_text()
    assert "restart it once" in readme
    assert "HOSTDEV_RESOLVER_PURGE_STORE=yes" in readme


def test_commands_run_from_usr_bin_with_system_python(installed: Installed, tmp_path: Path) -> None:
    for command in ("hostdev-resolver", "hostdev-virsh"):
        path = Path("/usr/bin") / command
        assert path.read_text().splitlines()[0] == "#!/usr/bin/python3"
        proc = apt.run([str(path), "--help"])
        assert proc.returncode == 0, proc.stderr
    where = apt.run(
        ["/usr/bin/python3", "-c", "import hostdev_resolver; print(hostdev_resolver.__file__)"]
    )
    assert where.stdout.startswith("/usr/lib/python3/dist-packages/hostdev_resolver/"), where

    # A store round trip on Debian's own lxml and xmlschema (map list checks the schema).
    store = tmp_path / "mappings.xml"
    add = ["map", "add", "usb", "key", "--offline", "--vendor", "1050", "--product", "0407"]
    proc = apt.run(["/usr/bin/hostdev-resolver", *add, "--store", str(store), "--node", "hv1"])
    assert proc.returncode == 0, proc.stderr
    proc = apt.run(["/usr/bin/hostdev-resolver", "map", "list", "--store", str(store)])
    assert proc.returncode == 0, proc.stderr
    assert "key" in proc.stdout

    # hostdev-virsh defines through Debian's python3-libvirt (the test driver: no daemon).
    domain = tmp_path / "domain.xml"
    domain.write_text(TEST_DRIVER_DOMAIN)
    virsh = ["/usr/bin/hostdev-virsh", "--store", str(store), "-c", "test:///default"]
    proc = apt.run([*virsh, "define", str(domain)])
    assert proc.returncode == 0, proc.stderr
    assert "pkgtest" in proc.stdout


def test_hook_and_config_are_root_owned_conffiles(installed: Installed) -> None:
    hook = _safe(HOOK)
    assert hook.st_mode & 0o111 == 0o111, f"hook not executable: {oct(hook.st_mode)}"
    assert HOOK.read_text().splitlines()[0] == "#!/usr/bin/python3", (
        f"{HOOK} is not the package's hook: did a concurrent run of the real-daemon tests "
        "(tests/support/libvirtd.py) write its test hook there?"
    )
    _safe(CONFIG)
    assert set(_conffiles()) == {str(HOOK), str(CONFIG)}
    # The default config is all comments, and documents every key of SPEC §6.
    text = CONFIG.read_text()
    assert all(not line.strip() or line.startswith("#") for line in text.splitlines())
    for key in ("store", "node", "sysfs", "dev_root", "state_dir", "trust_any_owner"):
        assert f"#{key} = " in text
    assert CONFDIR.stat().st_mode & 0o022 == 0


def test_hook_passes_an_unmapped_domain(installed: Installed) -> None:
    # libvirtd gives hooks a scrubbed environment and the domain XML on stdin.
    for op, subop in (("prepare", "begin"), ("release", "end"), ("started", "begin")):
        proc = apt.run([str(HOOK), "guest", op, subop, "-"], input=UNMAPPED_DOMAIN)
        assert proc.returncode == 0, f"{op} {subop}: {proc.stderr}"


def test_schemas_are_installed(installed: Installed) -> None:
    shipped = sorted(p.name for p in Path("/usr/share/hostdev-resolver/schemas").iterdir())
    source = sorted(p.name for p in (apt.REPO / "schemas").glob("*.xsd"))
    assert shipped == source and source
    for name in source:
        installed_schema = Path("/usr/share/hostdev-resolver/schemas") / name
        assert installed_schema.read_bytes() == (apt.REPO / "schemas" / name).read_bytes()


def test_man_pages_render(installed: Installed) -> None:
    for command in ("hostdev-resolver", "hostdev-virsh"):
        page = Path(f"/usr/share/man/man8/{command}.8.gz")
        proc = apt.run(["man", "--warnings", "-l", str(page)], env={"MANWIDTH": "80"})
        assert proc.returncode == 0 and not proc.stderr, proc.stderr
        assert proc.stdout.startswith(f"{command.upper()}(8)")
        assert "SYNOPSIS" in proc.stdout
    text = apt.run(["man", "-l", "/usr/share/man/man8/hostdev-resolver.8.gz"]).stdout
    for command in manpage.commands(build_parser()):
        title = " ".join(command.words)
        assert f"\n   {title}" in text, f"command {title!r} missing from the man page"


def test_bash_completion_is_installed(installed: Installed) -> None:
    script = (
        "source /usr/share/bash-completion/completions/hostdev-resolver\n"
        'COMP_LINE="hostdev-resolver "; COMP_POINT=${#COMP_LINE}\n'
        '_hostdev_resolver; echo "${COMPREPLY[*]}"\n'
    )
    proc = apt.run(["bash", "-c", script])
    assert proc.returncode == 0, proc.stderr
    top = next(completion.command_tree(build_parser()))
    assert proc.stdout.split() == top.subcommands


def test_remove_takes_the_hook_away_and_purge_keeps_the_store(installed: Installed) -> None:
    STORE.write_text(STORE_XML)
    STORE.chmod(0o644)
    with CONFIG.open("a") as handle:
        handle.write('node = "hv1"  # set by the administrator\n')

    proc = apt.apt_get("remove", apt.PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert not HOOK.exists() and not HOOK.is_symlink(), "remove left the hook for libvirt to run"
    assert not Path("/usr/bin/hostdev-resolver").exists()
    assert STORE.read_text() == STORE_XML
    assert 'node = "hv1"' in CONFIG.read_text()
    assert apt.package_status() == "config-files"

    # Installing again brings the hook back (dpkg alone would take the missing
    # conffile for a deliberate deletion) and keeps the administrator's config.
    _install(installed.deb)
    assert _safe(HOOK).st_mode & 0o111 == 0o111
    assert 'node = "hv1"' in CONFIG.read_text()
    assert not SET_ASIDE.exists()

    proc = apt.apt_get("purge", apt.PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert apt.package_status() == "not-installed"
    assert not HOOK.exists() and not CONFIG.exists() and not SET_ASIDE.exists()
    assert STORE.read_text() == STORE_XML, "purge deleted the administrator's store"

    # Asked explicitly, purge deletes the store too.
    _install(installed.deb)
    proc = apt.apt_get("purge", apt.PACKAGE, env={"HOSTDEV_RESOLVER_PURGE_STORE": "yes"})
    assert proc.returncode == 0, proc.stderr
    assert not STORE.exists()


def test_lintian_finds_no_errors_or_warnings(built_deb: Path) -> None:
    try:
        apt.ensure_installed(["lintian"])
    except apt.AptUnavailable as exc:
        pytest.skip(f"lintian unavailable: {exc}")
    proc = apt.run(["lintian", "--fail-on", "error,warning", str(built_deb)], timeout=120)
    tags = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr
