"""define and create: resolve in Python, then exec the real virsh (docs/wrapper.md).

A recording `virsh` first on PATH shows exactly what virsh is given: the same global
options, the command's own options, and the resolved document as /dev/fd/N. No daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev_resolver.doors.wrapper import command_args, default_uri, is_local, uses_pool
from hostdev_resolver.model.errors import UsageError
from hostdev_resolver.xml.xmldoc import parse_bytes
from tests.support.hosttree import HostSpec, HostTree, PciSpec

WRAPPER = str(Path(sys.executable).with_name("hostdev-virsh"))
HR = "http://hostdev-resolver.org/xmlns/domain/1"
NIC = "<node name='n1' address='0000:05:00.0' vendor='8086' device='1533'/>"
POOL = NIC + "<node name='n1' address='0000:06:00.0' vendor='8086' device='1533'/>"

RECORDER = """#!/bin/sh
printf '%s\\n' "$@" > "$VIRSH_LOG"
while [ $# -gt 0 ]; do
    if [ "$1" = --file ]; then cat "$2" > "$VIRSH_LOG.xml"; fi
    shift
done
echo "virsh ran"
exit 7
"""


def _domain(mapped: bool) -> str:
    dev = "<hostdev mode='subsystem' type='pci' managed='yes' hr:map='nic'/>" if mapped else ""
    return (
        f"<domain type='test' xmlns:hr='{HR}'><name>g</name><memory>65536</memory>"
        f"<os><type>hvm</type></os><devices>{dev}</devices></domain>\n"
    )


@pytest.fixture
def host(tmp_path: Path) -> dict[str, str]:
    HostTree.build(
        tmp_path / "sys",
        HostSpec(pci=[PciSpec("0000:05:00.0", "8086", "1533", klass="020000", iommu_group=5)]),
    )
    store = tmp_path / "m.xml"
    store.write_text(
        f"<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'><pci name='nic'>{NIC}"
        "</pci></mappings>\n"
    )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "virsh").write_text(RECORDER)
    (bindir / "virsh").chmod(0o755)
    return {"sys": str(tmp_path / "sys"), "store": str(store), "bin": str(bindir)}


def _run(
    host: dict[str, str], tmp_path: Path, *argv: str, python: list[str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str], str | None]:
    log = tmp_path / "virsh.log"
    env = dict(os.environ, PATH=f"{host['bin']}:/usr/bin:/bin", VIRSH_LOG=str(log))
    proc = subprocess.run(
        [*(python or []), WRAPPER, *argv], capture_output=True, text=True, env=env, check=False
    )
    xml = Path(f"{log}.xml")
    return (
        proc,
        log.read_text().splitlines() if log.exists() else [],
        xml.read_text() if xml.exists() else None,
    )


def test_define_hands_the_resolved_document_to_virsh(host: dict[str, str], tmp_path: Path) -> None:
    guest = tmp_path / "g.xml"
    guest.write_text(_domain(mapped=True))
    ours = ["--store", host["store"], "--node", "n1", "--sysfs", host["sys"]]
    proc, argv, xml = _run(
        host, tmp_path, "-qc", "test:///default", "define", str(guest), "--validate", *ours
    )
    # virsh's output and exit status are the command's own.
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "virsh ran\n", "")
    assert argv[:4] == ["-qc", "test:///default", "define", "--validate"]
    assert argv[4] == "--file" and argv[5].startswith("/dev/fd/") and len(argv) == 6
    assert xml is not None
    assert "<address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>" in xml
    assert "hr:resolution" in xml and "hr:map" not in xml.split("<metadata>")[0]


def test_a_domain_without_references_reaches_virsh_as_given(
    host: dict[str, str], tmp_path: Path
) -> None:
    guest = tmp_path / "plain.xml"
    guest.write_text(_domain(mapped=False))
    proc, argv, xml = _run(
        host, tmp_path, "-c", "test:///default", "create", str(guest), "--paused",
        "--store", str(tmp_path / "missing.xml"),
    )  # fmt: skip
    assert proc.returncode == 7
    assert argv == ["-c", "test:///default", "create", str(guest), "--paused"]
    assert xml is None


def test_create_keeps_its_options(host: dict[str, str], tmp_path: Path) -> None:
    guest = tmp_path / "g.xml"
    guest.write_text(_domain(mapped=True))
    proc, argv, xml = _run(
        host, tmp_path, "--connect=test:///default", "create", "--console", "--file",
        str(guest), "--autodestroy", "--sysfs", host["sys"], "--store", host["store"],
        "--node", "n1",
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr
    assert argv[:4] == ["--connect=test:///default", "create", "--autodestroy", "--console"]
    assert argv[4] == "--file" and argv[5].startswith("/dev/fd/")
    assert xml is not None and "bus='0x05'" in xml


def _define_imports(host: dict[str, str], tmp_path: Path, uri: str) -> set[str]:
    """The modules `hostdev-virsh -c URI define` of a mapped guest imports (-X importtime),
    virsh being the recorder."""
    guest = tmp_path / "g.xml"
    guest.write_text(_domain(mapped=True))
    proc, _, xml = _run(
        host, tmp_path, "-c", uri, "define", str(guest),
        "--store", host["store"], "--node", "n1", "--sysfs", host["sys"],
        python=[sys.executable, "-X", "importtime"],
    )  # fmt: skip
    assert proc.returncode == 7 and xml is not None
    return {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}


def test_define_path_imports_no_libvirt_and_no_option_library(
    host: dict[str, str], tmp_path: Path
) -> None:
    imported = _define_imports(host, tmp_path, "qemu:///system")
    assert "hostdev_resolver.core.resolution" in imported
    heavy = {
        "libvirt",
        "libvirtmod",
        "argparse",
        "getopt",
        "gettext",
        "typing",
        "urllib.parse",
        "re",
    }
    assert not imported & heavy


def test_our_error_stops_before_virsh(host: dict[str, str], tmp_path: Path) -> None:
    guest = tmp_path / "g.xml"
    guest.write_text(_domain(mapped=True).replace("hr:map='nic'", "hr:map='gpu9'"))
    proc, argv, _ = _run(
        host, tmp_path, "define", str(guest), "--store", host["store"], "--node", "n1",
        "--sysfs", host["sys"],
    )  # fmt: skip
    assert proc.returncode == 1 and argv == []
    assert proc.stderr.startswith(f"hostdev-virsh: {guest}:") and proc.stderr.count("\n") == 1


def test_command_arguments_as_virsh_reads_them() -> None:
    args = command_args("start", ["--paused", "dom", "--pass-fds=3,4"])
    assert (args.domain, args.paused, args.pass_fds, args.console) == ("dom", True, "3,4", False)
    args = command_args("attach-device", ["--file", "d.xml", "dom", "--live"])
    assert (args.domain, args.file, args.live) == ("dom", "d.xml", True)
    with pytest.raises(UsageError, match="define: option --paused not recognized"):
        command_args("define", ["f.xml", "--paused"])
    with pytest.raises(UsageError, match="unexpected argument 'two'"):
        command_args("define", ["one", "two"])
    with pytest.raises(UsageError, match=r"unexpected argument 'x\.xml'"):
        command_args("define", ["--file", "f.xml", "x.xml"])
    with pytest.raises(UsageError, match="--file needs a value"):
        command_args("define", ["--file"])
    assert command_args("define", ["--", "--odd.xml"]).file == "--odd.xml"


def test_only_a_pool_needs_the_running_guests() -> None:
    from hostdev_resolver.xml.store import parse_store

    def store(entries: str) -> object:
        data = (
            "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>"
            f"<pci name='nic'>{entries}</pci></mappings>"
        ).encode()
        return parse_store(parse_bytes(data, "m.xml"))

    doc = parse_bytes(_domain(mapped=True).encode(), "g.xml")
    assert not uses_pool(doc, store(NIC), "n1")  # type: ignore[arg-type]
    assert uses_pool(doc, store(POOL), "n1")  # type: ignore[arg-type]
    assert not uses_pool(doc, store(POOL), "n2")  # type: ignore[arg-type]


def test_default_uri_is_libvirts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIRSH_DEFAULT_CONNECT_URI", "qemu+ssh://hv2/system")
    assert default_uri() == "qemu+ssh://hv2/system"
    monkeypatch.delenv("VIRSH_DEFAULT_CONNECT_URI")
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///default")
    assert default_uri() == "test:///default"
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI")
    if os.geteuid() != 0:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        conf = tmp_path / "libvirt" / "libvirt.conf"
        conf.parent.mkdir()
        conf.write_text('# a comment\nuri_default = "qemu+ssh://hv3/system"\n')
        assert default_uri() == "qemu+ssh://hv3/system"


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu+unix:///system", True),
        ("qemu+ssh://root@hv2:22/system", False),
        ("qemu+tcp://[fe80::1]/system", False),
        ("test:///default", False),
        ("lxc:///", True),
    ],
)
def test_local_uris(uri: str, local: bool) -> None:
    assert is_local(uri) is local


def test_define_path_imports_only_what_resolving_needs(
    host: dict[str, str], tmp_path: Path
) -> None:
    """Running guests' claims (a pool), the default store path, etcd and execvp's
    `warnings` are each a part of what define adds to virsh (issue 12); none is needed
    for a domain without a pool and with --store given."""
    imported = _define_imports(host, tmp_path, "test:///default")
    unneeded = {
        "warnings",
        "hostdev_resolver.core.claims",
        "hostdev_resolver.core.sriov",
        "hostdev_resolver.host.hostsource",
        "hostdev_resolver.host.storebackend",
    }
    assert not imported & unneeded


def _virsh_dirs(tmp_path: Path, *kinds: str) -> str:
    """A PATH of directories, each with a `virsh` that is a recorder ("ok"), not
    executable ("denied"), or absent ("none")."""
    dirs = []
    for i, kind in enumerate(kinds):
        d = tmp_path / f"p{i}"
        d.mkdir()
        if kind != "none":
            (d / "virsh").write_text(RECORDER)
            (d / "virsh").chmod(0o755 if kind == "ok" else 0o644)
        dirs.append(str(d))
    return ":".join(dirs)


@pytest.mark.parametrize(
    ("kinds", "code", "err"),
    [
        (("none", "denied", "ok"), 7, ""),  # the first that runs, past one that cannot
        (("none", "none"), 3, "hostdev-virsh: cannot run virsh: No such file or directory"),
        (("denied", "none"), 3, "hostdev-virsh: cannot run virsh: Permission denied"),
    ],
)
def test_virsh_is_found_on_path_as_execvp_finds_it(
    tmp_path: Path, kinds: tuple[str, ...], code: int, err: str
) -> None:
    log = tmp_path / "virsh.log"
    env = dict(os.environ, PATH=_virsh_dirs(tmp_path, *kinds), VIRSH_LOG=str(log))
    proc = subprocess.run(
        [sys.executable, WRAPPER, "list", "--all"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == code
    assert proc.stderr.startswith(err) and proc.stderr.count("\n") == (1 if err else 0)
    if code == 7:
        assert log.read_text().splitlines() == ["list", "--all"]


@pytest.mark.parametrize("mapped", [True, False])
def test_define_with_a_policy_parses_each_document_once(
    host: dict[str, str], monkeypatch: pytest.MonkeyPatch, mapped: bool
) -> None:
    """The file once; with hr:map in it, the resolved document once more, shared by the
    record's NUMA nodes and the allocator (they each parsed it before)."""
    from hostdev_resolver.doors import wrapper
    from hostdev_resolver.xml import xmldoc

    sources: list[str] = []
    real = xmldoc.parse_bytes

    def counting(data: bytes, source: str) -> xmldoc.Document:
        sources.append(source)
        return real(data, source)

    monkeypatch.setattr(xmldoc, "parse_bytes", counting)
    monkeypatch.setattr(wrapper, "parse_bytes", counting)
    ours: dict[str, str | bool] = {"--store": host["store"], "--node": "n1", "--sysfs": host["sys"]}
    ours["--policy"] = "tuned"
    session = wrapper.Session(None, "test:///default", ours, True)
    data = _domain(mapped).replace("<os><type>", "<os><type arch='x86_64' machine='q35'>")
    out = wrapper.resolve_for_node(data.encode(), "g.xml", session)
    assert b"<controller type='pci'" in out  # allocated
    assert (b"bus='0x05'" in out) == mapped  # resolved
    assert sources.count("g.xml") == (2 if mapped else 1)
