"""packaging/rpm/hostdev-resolver.spec parses (rpmspec -P) and installs what the .deb does."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.packaging import apt

SPEC = apt.PACKAGING / "rpm" / "hostdev-resolver.spec"


@pytest.fixture(scope="module")
def expanded() -> str:
    try:
        apt.ensure_installed(["rpm"])
    except apt.AptUnavailable as exc:
        pytest.skip(f"rpmspec unavailable: {exc}")
    proc = apt.run(["rpmspec", "-P", str(SPEC)])
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr.lower() and "warning" not in proc.stderr.lower(), proc.stderr
    return proc.stdout


def _section(text: str, name: str) -> list[str]:
    match = re.search(
        rf"^%{name}\b[^\n]*\n(.*?)(?=^%(?:changelog|files|post|pre)\b|\Z)", text, re.M | re.S
    )
    assert match, f"no %{name} section"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_versions_agree(expanded: str) -> None:
    with open(apt.REPO / "pyproject.toml", "rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    assert re.search(rf"^Version:\s+{re.escape(version)}$", expanded, re.M)
    changelog = apt.run(
        ["dpkg-parsechangelog", "-l", str(apt.PACKAGING / "debian" / "changelog"), "-S", "Version"]
    )
    assert changelog.stdout.strip() == version


def test_requires_match_the_deb_depends(expanded: str, built_deb: Path) -> None:
    requires = set(re.findall(r"^Requires:\s+(\S+)", expanded, re.M))
    depends = set(apt.relation_names(apt.deb_field(built_deb, "Depends"))) - {"python3"}
    assert requires == depends
    recommends = set(re.findall(r"^Recommends:\s+(\S+)", expanded, re.M))
    assert "libvirt-daemon" in recommends


def test_files_match_the_deb(expanded: str, built_deb: Path) -> None:
    """Every file the .deb ships outside the Python package and docs is in %files with
    the same mode, and %files names nothing the .deb lacks."""
    entries: dict[str, str] = {}
    for line in _section(expanded, "files"):
        attr = re.search(r"%attr\((\d+),root,root\)", line)
        path = line.split()[-1]
        if path.startswith("/"):
            entries[path.rstrip("*")] = attr.group(1) if attr else ""
    deb = apt.deb_contents(built_deb)
    shipped = {
        path: mode
        for path, mode in deb.items()
        if not mode.startswith("d")
        and not path.startswith(("/usr/lib/python3/", "/usr/share/doc/"))
    }
    assert shipped
    for path in shipped:
        assert any(path.startswith(prefix) for prefix in entries), f"{path} not in the spec"
    for prefix in entries:
        assert any(path.startswith(prefix) for path in deb), f"spec lists {prefix}, the .deb not"
    for path, attr in entries.items():
        if attr:
            mode = deb[path]
            octal = sum(
                bit
                for bit, char in zip((256, 128, 64, 32, 16, 8, 4, 2, 1), mode[1:], strict=True)
                if char != "-"
            )
            assert octal == int(attr, 8), f"{path}: spec {attr}, deb {mode}"
    config = {
        line.split()[-1] for line in _section(expanded, "files") if "%config(noreplace)" in line
    }
    # As in the .deb: qemu.d/ holds only a symlink made by %posttrans (an .rpmsave copy
    # there would run as a hook), and hook.toml is copied in %post.
    assert config == {"/etc/logrotate.d/hostdev-resolver"}
    posttrans = "\n".join(_section(expanded, "posttrans"))
    assert "ln -sfn /usr/libexec/hostdev-resolver/qemu-hook" in posttrans
    assert "/etc/libvirt/hooks/qemu.d/50-hostdev-resolver.rpmsave" in posttrans


def test_install_steps_use_files_of_the_tree(expanded: str) -> None:
    for source in re.findall(r"^install (?:-D )?-m \d+ (\S+) ", expanded, re.M):
        if source.startswith("build/"):
            continue
        matches = list(apt.REPO.glob(source))
        assert matches, f"%install copies {source}, which the tree lacks"
