"""`validate` names the element libvirt's schema rejects, on its own line in the file as
written, one line on stderr each (issue 10, item 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli
from hostdev_resolver.xml.rng import schema_errors
from tests.support.hosttree import HostSpec, HostTree

GOLDEN = Path(__file__).parent / "golden"
HEAD = """<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>
  <name>ml-train</name>
  <memory unit='MiB'>{memory}</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <devices>
"""
TAIL = """  </devices>
</domain>
"""
GOOD_DISK = """    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/a.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
"""
BAD_HOSTDEV = """    <hostdev mode='subsystem' type='pci' managed='yes'>
      <driver name='vfio'/>
      <address type='pci' domain='0' bus='0' slot='5' function='0'/>
      <source>
        <address domain='0' bus='0x41' slot='0' function='0'/>
      </source>
    </hostdev>
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    HostTree.build(
        tmp_path / "sys",
        HostSpec.from_json(json.loads((GOLDEN / "hosts" / "hv1.json").read_text())),
    )
    shutil.copy(GOLDEN / "stores" / "hv1.xml", tmp_path / "mappings.xml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOSTDEV_RESOLVER_STORE", raising=False)
    return tmp_path


def _validate(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    args = ["validate", "d.xml", "--store", "mappings.xml", "--sysfs", "sys", "--node", "hv1"]
    rc = cli.main([*args, *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[nth - 1]


def test_a_bad_device_is_named_at_its_line_not_at_devices(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The reference resolves: the schema sees the resolved copy, whose lines are shifted
    # by the new <source> and <metadata>; the report must give the file's own line.
    ref = "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'/>\n"
    text = HEAD.format(memory=1024) + ref + GOOD_DISK + BAD_HOSTDEV + TAIL
    (workdir / "d.xml").write_text(text)
    rc, out, err = _validate(capsys)
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"d.xml:{_line_of(text, '<hostdev', 2)}: error: <hostdev type='pci'>"
    )
    assert "domain.rng" in lines[0] and "libvirt.org/formatdomain.html" in lines[0]
    assert "line 0" not in err and "Extra element devices" not in err
    assert out == "1 file(s) checked, 1 problem(s) in 1 file(s)\n"


def test_an_error_outside_devices_keeps_libxml2s_reason_and_the_files_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'/>\n"
    text = HEAD.format(memory="lots") + ref + TAIL
    (workdir / "d.xml").write_text(text)
    rc, _, err = _validate(capsys)
    assert rc == 2
    assert err.splitlines() == [
        "d.xml:3: error: <memory> does not validate against libvirt's domain.rng: "
        "Type unsignedLong doesn't allow value 'lots'; fix it as "
        "https://libvirt.org/formatdomain.html describes "
        "('virt-xml-validate d.xml domain' shows libvirt's own check)"
    ]


def test_lines_count_devices_taken_out_for_an_unresolvable_reference(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # gpu9 is not in the store: the schema check runs on the domain without that hostdev,
    # so the bad hostdev is the first <hostdev> there and the second in the file.
    ref = "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu9'/>\n"
    text = HEAD.format(memory=1024) + ref + BAD_HOSTDEV + TAIL
    (workdir / "d.xml").write_text(text)
    rc, out, err = _validate(capsys, "--format", "json")
    assert rc == 2
    assert err == ""
    problems = json.loads(out)["problems"]
    rng = [p for p in problems if "domain.rng" in p["message"]]
    assert [p["line"] for p in rng] == [_line_of(text, "<hostdev", 2)]
    assert any("gpu9" in p["message"] for p in problems)


def test_every_bad_device_is_reported_once(tmp_path: Path) -> None:
    bad_disk = GOOD_DISK.replace("bus='virtio'", "bus='virtoi'")
    text = HEAD.format(memory=1024) + bad_disk + GOOD_DISK + BAD_HOSTDEV + TAIL
    errors = schema_errors(text.encode())
    assert [(e.line, e.element) for e in errors] == [
        (_line_of(text, "<disk"), "<disk type='file' device='disk'>"),
        (_line_of(text, "<hostdev"), "<hostdev type='pci'>"),
    ]
    assert schema_errors((HEAD.format(memory=1024) + GOOD_DISK + TAIL).encode()) == []


def test_a_valid_domain_is_checked_by_the_system_libxml2_without_lxml() -> None:
    """The common case costs what xmllint costs: no lxml import (issue 12)."""
    code = (
        "import sys; from hostdev_resolver.xml.rng import schema_errors, _system_libxml2, DOMAIN_RNG; "
        f"ok = schema_errors({(HEAD.format(memory=1024) + GOOD_DISK + TAIL).encode()!r}); "
        f"bad = schema_errors({(HEAD.format(memory=1024) + BAD_HOSTDEV + TAIL).encode()!r}); "
        "print(ok == [], len(bad), _system_libxml2(DOMAIN_RNG) is not None)"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "1", "True"]
    quiet = subprocess.run(
        [
            sys.executable,
            "-c",
            code.replace("bad = schema_errors", "bad = [1] or schema_errors")
            + "; print('lxml' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert quiet.stdout.split()[-1] == "False"  # a valid document never needed lxml
    assert out.stderr == "" and quiet.stderr == ""  # libxml2 printed nothing itself


def test_without_the_system_libxml2_lxml_gives_the_same_verdicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ctypes

    from hostdev_resolver.xml import rng

    def missing(*_args: object, **_kwargs: object) -> None:
        raise OSError("libxml2.so.2: cannot open shared object file")

    rng._system_libxml2.cache_clear()
    rng.libxml2.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", missing)
    try:
        assert rng._system_libxml2(rng.DOMAIN_RNG) is None
        text = HEAD.format(memory=1024) + GOOD_DISK + BAD_HOSTDEV + TAIL
        assert [e.line for e in schema_errors(text.encode())] == [_line_of(text, "<hostdev")]
        assert schema_errors((HEAD.format(memory=1024) + GOOD_DISK + TAIL).encode()) == []
    finally:
        rng._system_libxml2.cache_clear()
        rng.libxml2.cache_clear()


def test_one_libxml2_parser_and_validation_context_serve_a_whole_run() -> None:
    """The contexts kept across documents (issue 12) give each document its own verdict:
    a rejected or unreadable document does not change the next one's."""
    from hostdev_resolver.xml import rng

    native = rng._SystemLibxml2(rng.DOMAIN_RNG)
    good = (HEAD.format(memory=1024) + GOOD_DISK + TAIL).encode()
    bad = (HEAD.format(memory=1024) + BAD_HOSTDEV + TAIL).encode()
    other = (HEAD.format(memory=2048) + TAIL).encode()
    run = [good, bad, good, b"<domain>", other, bad, bad, good, other]
    assert [native.validates(d) for d in run] == [
        True,
        False,
        True,
        False,
        True,
        False,
        False,
        True,
        True,
    ]
    assert [rng._SystemLibxml2(rng.DOMAIN_RNG).validates(d) for d in run] == [
        native.validates(d) for d in run
    ]


def test_a_fleet_is_reported_in_file_order_with_claims_only_from_valid_files(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file is resolved, then checked by libxml2 in one stretch (issue 12); the
    report is still made file by file: problems in the files' order, and a file the
    schema rejects claims no device (so a later file holding its device is not told
    that another domain claims it)."""
    ref = "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'/>\n"
    unknown = "    <hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu9'/>\n"
    files = {
        "a.xml": HEAD.format(memory=1024).replace("ml-train", "ml-a") + ref + BAD_HOSTDEV + TAIL,
        "b.xml": HEAD.format(memory=1024).replace("ml-train", "ml-b") + unknown + TAIL,
        "c.xml": HEAD.format(memory=1024).replace("ml-train", "ml-c") + ref + TAIL,
        "d.xml": HEAD.format(memory=1024).replace("ml-train", "ml-d") + ref + TAIL,
    }
    for name, text in files.items():
        (workdir / name).write_text(text)
    args = ["--store", "mappings.xml", "--sysfs", "sys", "--node", "hv1"]
    rc = cli.main(["validate", *files, *args])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["a.xml", "b.xml", "d.xml"]
    assert "domain.rng" in lines[0]
    assert "gpu9" in lines[1]
    assert "also claimed by domain 'ml-c' (c.xml)" in lines[2]
    assert out == "4 file(s) checked, 3 problem(s) in 3 file(s)\n"
