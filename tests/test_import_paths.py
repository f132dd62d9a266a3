"""What the commands measured in bench/bench_commands.py import (issue 12): each module
named here cost a command a tenth of a bare interpreter start or more."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli.parser import Formatter

ROOT = Path(__file__).resolve().parents[1]
GUEST = ROOT / "tests" / "allocation" / "golden"


def _modules_after(args: list[str], cwd: Path, runs: int = 1) -> set[str]:
    """The modules loaded once the command `args` has run, in a process of its own (the
    last of `runs`). The probe imports nothing of its own: the command's output goes
    first, the probe's line last."""
    code = (
        "import sys\n"
        "from hostdev_resolver.doors.cli.main import main\n"
        f"rc = main({args!r})\n"
        "print(rc, ' '.join(sorted(sys.modules)))\n"
    )
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd
        )
    rc, _, names = out.stdout.strip().splitlines()[-1].partition(" ")
    assert rc == "0", out.stdout + out.stderr
    return set(names.split())


def test_allocate_imports_no_tempfile_typing_or_shutil(tmp_path: Path) -> None:
    domain = tmp_path / "d.xml"
    domain.write_text(
        "<domain type='kvm'><name>a</name><memory>1048576</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
        "<devices><interface type='user'><model type='virtio'/></interface></devices></domain>"
    )
    loaded = _modules_after(["allocate", str(domain), "-o", str(tmp_path / "o.xml")], tmp_path)
    assert {"tempfile", "typing", "shutil"} & loaded == set()
    assert (tmp_path / "o.xml").read_text().count("<address") >= 1


def test_validate_imports_no_argparse_re_functools_or_contextlib(tmp_path: Path) -> None:
    """Each of these (with what it imports) cost `validate` of a fleet a tenth of a bare
    start or more: its command line is read by fastargs, rng caches without functools."""
    from tests.support.hosttree import HostSpec, HostTree

    HostTree.build(
        tmp_path / "sys", HostSpec.load(ROOT / "tests" / "golden" / "hosts" / "hv1.json")
    )
    domain = tmp_path / "d.xml"
    domain.write_text(
        "<domain type='kvm' xmlns:hr='http://hostdev-resolver.org/xmlns/domain/1'>"
        "<name>ml-a</name><memory>1048576</memory><os><type arch='x86_64'>hvm</type></os>"
        "<devices><hostdev mode='subsystem' type='pci' managed='yes' hr:map='gpu0'/>"
        "</devices></domain>"
    )
    store = ROOT / "tests" / "golden" / "stores" / "hv1.xml"
    args = ["validate", str(domain), "--store", str(store), "--node", "hv1"]
    # The second run: the first remembers the store's schema verdict (tempfile and all),
    # as an administrator's first command after an edit does.
    loaded = _modules_after([*args, "--sysfs", str(tmp_path / "sys")], tmp_path, runs=2)
    assert {"argparse", "re", "functools", "contextlib", "typing"} & loaded == set()
    assert "hostdev_resolver.xml.rng" in loaded  # the RELAX NG check did run


def test_the_help_is_as_wide_as_argparse_makes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for columns in ("60", "132", "", "junk"):
        monkeypatch.setenv("COLUMNS", columns)
        ours = Formatter("prog")
        theirs = argparse.HelpFormatter("prog")
        assert ours._width == theirs._width, columns


def _cycles(exclude_type_checking_imports: bool) -> list[set[str]]:
    """The strongly connected groups of more than one module in the package's import
    graph, function-level imports included (Tarjan's algorithm)."""
    import grimp

    # No cache: grimp's on-disk cache (keyed by modification times) could answer for
    # sources edited within the same second.
    graph = grimp.build_graph(
        "hostdev_resolver",
        exclude_type_checking_imports=exclude_type_checking_imports,
        cache_dir=None,
    )
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycles_at_run_time() -> None:
    """Imports inside functions count: the record reader asks the kind registry, which
    alone imports the kinds (core/kinds/__init__.py)."""
    assert _cycles(exclude_type_checking_imports=True) == []


def test_no_import_cycles_in_annotations_either() -> None:
    """Imports for annotations only (under TYPE_CHECKING) count too: a module that names
    another's type must not be named back."""
    assert _cycles(exclude_type_checking_imports=False) == []


def test_a_pci_guest_is_verified_without_the_other_kinds() -> None:
    """The hook's budget: the kind registry imports a kind only when a record needs it."""
    code = (
        "import sys\n"
        "from hostdev_resolver.core.verification import verify_domain\n"
        "from hostdev_resolver.xml.store import Store\n"
        "from hostdev_resolver.xml.xmldoc import parse_bytes\n"
        'doc = parse_bytes(b"<domain><name>g</name><metadata><hr:resolution xmlns:hr='
        "'http://hostdev-resolver.org/xmlns/domain/1' node='n'><hr:pci map='m' "
        "address='0000:01:00.0' vendor='10de' device='20b5'/></hr:resolution></metadata>"
        "<devices/></domain>\", 'd')\n"
        "verify_domain(doc, Store('s', {}), None, 'n')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('hostdev_resolver'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "hostdev_resolver.core.kinds.pci" in loaded
    others = {"vf", "usb", "mdev", "scsi", "sriov"}
    assert {m for m in loaded if m.rsplit(".", 1)[-1] in others} == set()
    assert "hostdev_resolver.core.scsiresolve" not in loaded
