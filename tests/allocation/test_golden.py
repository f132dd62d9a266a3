"""Golden cases for `hostdev-resolver allocate`.

A case is a folder under tests/allocation/golden/: `input.xml`, optional `args`
(the command-line options, e.g. `--policy tuned --spare-ports 3`), and either
`expected.xml` (the exact output bytes) or `expected.err` (exit code on the first
line, the stderr line on the second). A case without its expected file FAILS.
To (re)write the expected files after a deliberate change, run

    HOSTDEV_REGEN=1 .venv/bin/python -m pytest tests/allocation/test_golden.py

and review the diff before committing. Every expected.xml is also checked
against libvirt's RELAX NG schema, against the real libvirtd (defined, it must
come back with the same PCI layout), and for idempotence (allocating it again
changes no byte).
"""

from __future__ import annotations

import argparse
import difflib
import io
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostdev_resolver.core.allocation import allocate_domain_xml
from hostdev_resolver.doors.cli.allocate import (
    add_allocate_arguments,
    policy_from_args,
    run_allocate,
)
from tests.allocation.layout import layout_diff, pci_layout
from tests.support import libvirtd

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())
REGEN = os.environ.get("HOSTDEV_REGEN") == "1"
DOMAIN_RNG = Path("/usr/share/libvirt/schemas/domain.rng")


def _args(case: Path, output: str | None = None, relative: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hostdev-resolver allocate")
    add_allocate_arguments(parser)
    extra = shlex.split((case / "args").read_text()) if (case / "args").exists() else []
    argv = ["input.xml" if relative else str(case / "input.xml"), *extra]
    if output is not None:
        argv += ["-o", output]
    return parser.parse_args(argv)


def _run(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, bytes, str]:
    out = tmp_path / "out.xml"
    monkeypatch.chdir(case)  # messages name "input.xml", wherever the checkout is
    code = run_allocate(_args(case, str(out), relative=True))
    err = capsys.readouterr().err
    return code, out.read_bytes() if out.exists() else b"", err


@pytest.mark.parametrize("name", CASES)
def test_golden(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = GOLDEN / name
    code, output, err = _run(case, tmp_path, capsys, monkeypatch)
    expected_xml, expected_err = case / "expected.xml", case / "expected.err"
    if REGEN:
        expected_xml.unlink(missing_ok=True)
        expected_err.unlink(missing_ok=True)
        if code == 0:
            expected_xml.write_bytes(output)
        else:
            expected_err.write_text(f"{code}\n{err}")
    if expected_err.exists():
        want_code, want_err = expected_err.read_text().split("\n", 1)
        assert (code, err) == (int(want_code), want_err)
        assert err.count("\n") == 1 and "Traceback" not in err
        return
    assert expected_xml.exists(), (
        f"{expected_xml} is missing: run with HOSTDEV_REGEN=1 and review it"
    )
    assert code == 0, err
    if output != expected_xml.read_bytes():
        diff = difflib.unified_diff(
            expected_xml.read_text().splitlines(keepends=True),
            output.decode().splitlines(keepends=True),
            "expected.xml",
            "output",
        )
        pytest.fail("".join(diff))


def _successful_cases() -> list[str]:
    return [c for c in CASES if (GOLDEN / c / "expected.xml").exists()]


@pytest.mark.parametrize("name", _successful_cases())
def test_golden_output_is_idempotent(name: str) -> None:
    case = GOLDEN / name
    expected = (case / "expected.xml").read_bytes()
    policy = policy_from_args(_args(case))
    assert allocate_domain_xml(expected, "expected.xml", policy) == expected


@pytest.mark.parametrize("name", _successful_cases())
def test_golden_output_is_valid_for_libvirt_schema(name: str) -> None:
    etree = pytest.importorskip("lxml.etree")
    if not DOMAIN_RNG.exists():
        pytest.skip("libvirt's domain.rng is not installed")
    schema = etree.RelaxNG(etree.parse(str(DOMAIN_RNG)))
    document = etree.parse(str(GOLDEN / name / "expected.xml"))
    assert schema.validate(document), str(schema.error_log)


@pytest.fixture(scope="module")
def conn() -> Iterator[object]:
    libvirt = pytest.importorskip("libvirt")
    try:
        uri = libvirtd.ensure_daemon()
    except libvirtd.DaemonUnavailable as exc:
        pytest.skip(f"real libvirtd unavailable: {exc}")
    connection = libvirt.open(uri)
    yield connection
    connection.close()
    libvirtd.undefine_all("alloc-golden-")


@pytest.mark.daemon
@pytest.mark.parametrize("name", _successful_cases())
def test_golden_output_is_kept_by_libvirtd(name: str, conn: object) -> None:
    expected = (GOLDEN / name / "expected.xml").read_text()
    dom = conn.defineXML(expected)  # type: ignore[attr-defined]
    try:
        dumped = dom.XMLDesc(0)
    finally:
        dom.undefine()
    assert layout_diff(pci_layout(expected), pci_layout(dumped)) == []


@pytest.mark.daemon
@pytest.mark.parametrize(
    "name", [c for c in _successful_cases() if not (GOLDEN / c / "args").exists()]
)
def test_golden_libvirt_policy_matches_libvirtd(name: str, conn: object) -> None:
    source = (GOLDEN / name / "input.xml").read_text()
    dom = conn.defineXML(source)  # type: ignore[attr-defined]
    try:
        dumped = dom.XMLDesc(0)
    finally:
        dom.undefine()
    ours = (GOLDEN / name / "expected.xml").read_text()
    assert layout_diff(pci_layout(dumped), pci_layout(ours)) == []


def test_stdout_when_no_output_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = GOLDEN / "pc-libvirt"
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    assert run_allocate(_args(case)) == 0
    sys.stdout.flush()
    assert buffer.getvalue() == (case / "expected.xml").read_bytes()


def _libvirt_refusal_cases() -> list[str]:
    return [
        c
        for c in CASES
        if (GOLDEN / c / "expected.err").exists()
        and "libvirt 9.0 refuses the domain" in (GOLDEN / c / "expected.err").read_text()
    ]


@pytest.mark.daemon
@pytest.mark.parametrize("name", _libvirt_refusal_cases())
def test_golden_refusals_are_libvirts(name: str, conn: object) -> None:
    """A domain we refuse "because libvirt does" is one libvirtd refuses, for that reason."""
    import libvirt

    source = (GOLDEN / name / "input.xml").read_text()
    with pytest.raises(libvirt.libvirtError) as refused:
        dom = conn.defineXML(source)  # type: ignore[attr-defined]
        dom.undefine()
    reason = re.sub(r"^[a-z ]+: ", "", str(refused.value))
    assert reason in (GOLDEN / name / "expected.err").read_text()
