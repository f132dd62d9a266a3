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
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import completion
import manpage
import pytest

from hostdev_resolver.doors.cli.hookinstall import hook_script, install_hook
from hostdev_resolver.doors.cli.main import build_parser
from tests.packaging import apt
from tests.support import treesnapshot

ETC_LIBVIRT = Path("/etc/libvirt")
HOOK = ETC_LIBVIRT / "hooks" / "qemu.d" / "50-hostdev-resolver"
QEMU_D = HOOK.parent
TARGET = Path("/usr/libexec/hostdev-resolver/qemu-hook")
CONFDIR = Path("/etc/hostdev-resolver")
CONFIG = CONFDIR / "hook.toml"
STORE = CONFDIR / "mappings.xml"
# Where 0.1.0's postrm set its hook aside, and where postinst keeps an old hook's text.
SET_ASIDE = CONFDIR / "qemu-hook.dpkg-removed"
KEPT = CONFDIR / "50-hostdev-resolver.dpkg-old"
TOUCHED = (HOOK, CONFIG, STORE, STORE.with_name("mappings.xml.lock"), SET_ASIDE, KEPT)
# The last commit whose package shipped the hook as a conffile in qemu.d/ (0.1.0):
# the upgrade test builds that package from this repository's history.
CONFFILE_RELEASE = "73ab85fd28893404f61e3b79353222372dd7190b"

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
    qemu_d_existed: bool  # before the package came (after our own hook was set aside)


def _executables() -> list[str]:
    """Every entry of qemu.d/ libvirt would run: executable, whatever its name."""
    if not QEMU_D.is_dir():
        return []
    return sorted(p.name for p in QEMU_D.iterdir() if p.is_file() and os.access(p, os.X_OK))


def _entries() -> list[str]:
    return sorted(p.name for p in QEMU_D.iterdir()) if QEMU_D.is_dir() else []


def _assert_only_our_link() -> None:
    assert _entries() == [HOOK.name] and _executables() == [HOOK.name], _entries()
    assert HOOK.is_symlink() and Path(os.readlink(HOOK)) == TARGET


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
    qemu_d_existed = QEMU_D.is_dir()
    try:
        yield Installed(built_deb, _install(built_deb), qemu_d_existed)
    finally:
        _purge()
        for path in TOUCHED:
            if path.exists() or path.is_symlink():
                path.unlink()
        treesnapshot.restore_directories(ETC_LIBVIRT, etc_before)
        for path, target in moved:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(target, path)
        if qemu_d_existed:
            QEMU_D.mkdir(parents=True, exist_ok=True)
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
    assert f"{HOOK} -> {TARGET}" in installed.output
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


def test_qemu_d_holds_only_a_link_to_root_owned_code_and_no_conffiles(
    installed: Installed,
) -> None:
    _assert_only_our_link()
    hook = _safe(TARGET)
    assert hook.st_mode & 0o111 == 0o111, f"hook not executable: {oct(hook.st_mode)}"
    assert TARGET.read_text().splitlines()[0] == "#!/usr/bin/python3"
    _safe(CONFIG)
    # Neither the hook (dpkg's side copies would run as hooks) nor hook.toml (dpkg
    # would then own /etc/hostdev-resolver and warn at a purge that keeps the store):
    # only the logrotate snippet for the hook's log.
    assert _conffiles() == ["/etc/logrotate.d/hostdev-resolver"]
    rotate = Path("/etc/logrotate.d/hostdev-resolver").read_text()
    assert "/var/log/hostdev-resolver/hook.log {" in rotate
    # The default config is all comments, and documents every key of SPEC §6.
    text = CONFIG.read_text()
    assert text == Path("/usr/share/hostdev-resolver/hook.toml").read_text()
    assert all(not line.strip() or line.startswith("#") for line in text.splitlines())
    for key in ("store", "node", "sysfs", "dev_root", "state_dir", "trust_any_owner", "log_file"):
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


def test_docs_examples_and_schemas_are_on_the_host(installed: Installed) -> None:
    doc = Path("/usr/share/doc/hostdev-resolver")
    sources = sorted((apt.REPO / "docs").glob("*.md"))
    assert sources
    for source in sources:
        assert (doc / "docs" / source.name).read_text() == source.read_text()
    # Every relative link of the installed README (and of README.Debian's promises)
    # leads somewhere on the host.
    readme = (doc / "README.md").read_text()
    links = set(re.findall(r"\]\(([^):#]+)\)", readme))
    assert {"docs/hook.md", "schemas/store.xsd"} <= links
    for link in links:
        assert (doc / link).exists(), f"README links {link}, not installed"
    for schema in ("store.xsd", "domain.xsd"):
        assert (Path("/usr/share/hostdev-resolver/schemas") / schema).is_file()
    # The example host works from where it is installed.
    ws = doc / "examples" / "workstation"
    files = ["ml-train.xml", "desktop.xml", "mappings.xml"]
    where = ["--store", "mappings.xml", "--node", "ws1", "--sysfs", "sys"]
    proc = apt.run(["/usr/bin/hostdev-resolver", "validate", *files, *where], cwd=ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (doc / "examples" / "README.md").is_file()
    assert not (ws / ".gitignore").exists()


def test_man_pages_render(installed: Installed) -> None:
    for command in ("hostdev-resolver", "hostdev-virsh", "hostdev-resolver-hook"):
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


BIND_UNIT = Path("/lib/systemd/system/hostdev-resolver-bind.service")
BIND_ENABLED = Path("/etc/systemd/system/sysinit.target.wants/hostdev-resolver-bind.service")
AGENT_ENABLED = Path("/etc/systemd/system/multi-user.target.wants/hostdev-resolver-agent.service")


def test_boot_binding_unit_is_enabled_verified_and_purged(installed: Installed) -> None:
    info = _safe(BIND_UNIT)
    assert stat.S_IMODE(info.st_mode) == 0o644
    # Enabled (it binds only mappings marked vfio='boot'); the agent is not.
    assert BIND_ENABLED.is_symlink() and Path(os.readlink(BIND_ENABLED)) == BIND_UNIT
    assert not AGENT_ENABLED.exists() and not AGENT_ENABLED.is_symlink()
    if shutil.which("systemd-analyze"):
        proc = apt.run(["systemd-analyze", "verify", str(BIND_UNIT)])
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    # What the unit runs works from the package, and a fresh host binds nothing.
    proc = apt.run(["/usr/bin/hostdev-resolver", "bind", "--boot", "--dry-run"])
    assert proc.returncode == 0, proc.stderr
    _purge()
    assert not BIND_ENABLED.is_symlink(), "purge left the unit enabled"
    _install(installed.deb)
    assert BIND_ENABLED.is_symlink()


def test_remove_takes_the_hook_away_and_purge_keeps_the_store(installed: Installed) -> None:
    STORE.write_text(STORE_XML)
    STORE.chmod(0o644)
    with CONFIG.open("a") as handle:
        handle.write('node = "hv1"  # set by the administrator\n')

    proc = apt.apt_get("remove", apt.PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert _executables() == [] and not HOOK.is_symlink(), "remove left a hook for libvirt"
    assert not Path("/usr/bin/hostdev-resolver").exists()
    assert STORE.read_text() == STORE_XML
    assert 'node = "hv1"' in CONFIG.read_text()
    assert apt.package_status() == "config-files"

    # Installing again brings the hook back and keeps the administrator's config.
    _install(installed.deb)
    _assert_only_our_link()
    assert 'node = "hv1"' in CONFIG.read_text()

    proc = apt.apt_get("purge", apt.PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    assert apt.package_status() == "not-installed"
    assert _executables() == [] and not HOOK.is_symlink()
    assert not CONFIG.exists() and not KEPT.exists()
    assert sorted(p.name for p in CONFDIR.iterdir()) == ["mappings.xml"]
    assert STORE.read_text() == STORE_XML, "purge deleted the administrator's store"
    # qemu.d/ goes only if the package made it.
    assert QEMU_D.is_dir() == installed.qemu_d_existed

    # Asked explicitly, purge deletes /etc/hostdev-resolver, store and all.
    _install(installed.deb)
    proc = apt.apt_get("purge", apt.PACKAGE, env={"HOSTDEV_RESOLVER_PURGE_STORE": "yes"})
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    assert not CONFDIR.exists()
    assert not Path("/var/lib/hostdev-resolver").exists()
    _install(installed.deb)


def test_purge_never_removes_a_qemu_d_that_was_there_before(installed: Installed) -> None:
    _purge()
    made = not QEMU_D.is_dir()
    QEMU_D.mkdir(parents=True, exist_ok=True)
    try:
        _install(installed.deb)
        _assert_only_our_link()
        _purge()
        assert QEMU_D.is_dir(), "purge removed a qemu.d/ the package did not make"
        assert _entries() == []
    finally:
        if made and QEMU_D.is_dir() and not any(QEMU_D.iterdir()):
            QEMU_D.rmdir()
        _install(installed.deb)


def test_install_over_a_manual_hook_install_leaves_one_hook(
    installed: Installed, tmp_path: Path
) -> None:
    _purge()
    # The copy an older 'hostdev-resolver hook install' wrote, then today's form: a
    # link to a launcher in a venv. Neither may stop dpkg or be left to run twice.
    QEMU_D.mkdir(parents=True, exist_ok=True)
    HOOK.write_text(hook_script("/usr/bin/python3", None))
    HOOK.chmod(0o755)
    output = _install(installed.deb)
    assert "conffile" not in output.lower()
    _assert_only_our_link()
    assert not KEPT.exists()
    assert "restart libvirtd" not in output  # libvirtd already knew a hook there

    _purge()
    launcher_dir = tmp_path / "venv" / "libexec" / "hostdev-resolver"
    install_hook(HOOK.parents[1], as_qemu=False, config=None, launcher_dir=launcher_dir)
    assert Path(os.readlink(HOOK)) == launcher_dir / "qemu-hook"
    _install(installed.deb)
    _assert_only_our_link()

    # And 'hook install' run from the package makes the package's own link.
    proc = apt.run(["/usr/bin/hostdev-resolver", "hook", "install"])
    assert proc.returncode == 0, proc.stderr
    assert f"{HOOK} -> {TARGET}" in proc.stdout
    _assert_only_our_link()
    assert not Path("/usr/local/libexec/hostdev-resolver").exists()

    proc = apt.apt_get("remove", apt.PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert _executables() == [] and not HOOK.is_symlink()
    _install(installed.deb)


@pytest.fixture(scope="module")
def conffile_release_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.1.0, the hook as a conffile, built from this repository's history."""
    tmp = tmp_path_factory.mktemp("release-0.1.0")
    clone = tmp / "src"
    for args in (
        ["git", "clone", "-q", "--no-checkout", str(apt.REPO), str(clone)],
        ["git", "-C", str(clone), "checkout", "-q", CONFFILE_RELEASE],
    ):
        proc = apt.run(args)
        if proc.returncode != 0:
            pytest.skip(f"release 0.1.0 is not in this checkout's history: {proc.stderr}")
    proc = apt.run(["sh", str(clone / "packaging" / "build-deb"), str(tmp / "out")], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (deb,) = (tmp / "out").glob("hostdev-resolver_0.1.0_all.deb")
    return deb


@pytest.mark.parametrize("edited", [False, True], ids=["pristine", "edited"])
def test_upgrade_from_the_conffile_hook(
    installed: Installed, conffile_release_deb: Path, edited: bool
) -> None:
    _purge()
    _install(conffile_release_deb)
    assert HOOK.is_file() and not HOOK.is_symlink()
    if edited:
        with HOOK.open("a") as handle:
            handle.write("# edited by the administrator\n")
    with CONFIG.open("a") as handle:
        handle.write('node = "hv1"\n')

    output = _install(installed.deb)
    _assert_only_our_link()
    assert 'node = "hv1"' in CONFIG.read_text(), "the upgrade lost the administrator's config"
    if edited:
        assert KEPT.read_text().endswith("# edited by the administrator\n")
        assert KEPT.stat().st_mode & 0o111 == 0
        assert str(KEPT) in output
    else:
        assert not KEPT.exists()

    proc = apt.apt_get("purge", apt.PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert _executables() == [] and not KEPT.exists() and not CONFIG.exists()
    _install(installed.deb)


def test_install_after_removing_the_conffile_release(
    installed: Installed, conffile_release_deb: Path
) -> None:
    # 0.1.0's remove set its hook aside in /etc/hostdev-resolver; that copy must not
    # come back into qemu.d/.
    _purge()
    _install(conffile_release_deb)
    proc = apt.dpkg("--remove", apt.PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert SET_ASIDE.exists() and _executables() == []
    _install(installed.deb)
    _assert_only_our_link()
    assert not SET_ASIDE.exists() and KEPT.stat().st_mode & 0o111 == 0


def test_lintian_finds_no_errors_or_warnings(built_deb: Path) -> None:
    try:
        apt.ensure_installed(["lintian"])
    except apt.AptUnavailable as exc:
        pytest.skip(f"lintian unavailable: {exc}")
    proc = apt.run(["lintian", "--fail-on", "error,warning", str(built_deb)], timeout=120)
    tags = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr
