"""The Debian side of the packaging tests: apt/dpkg calls and the build of the .deb.

The package must build from Debian's own packages only, so the build dependencies are
read from packaging/debian/control (one list, no copy here) and installed with apt-get
when missing; scripts/bootstrap installs the same list on a fresh machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
CONTROL = PACKAGING / "debian" / "control"
PACKAGE = "hostdev-resolver"

# What maintainer scripts and the installed commands see: Debian's own tools and
# Python, never a pyenv shim or the .venv that runs pytest.
SYSTEM_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "HOME": os.environ.get("HOME", "/root"),
}


def _test_cache() -> dict[str, str]:
    """The test's own store-verdict cache (tests/conftest.py), so the installed commands
    never write root's /var/cache/hostdev-resolver during a test run."""
    cache = os.environ.get("HOSTDEV_RESOLVER_CACHE")
    return {"HOSTDEV_RESOLVER_CACHE": cache} if cache else {}


class AptUnavailable(Exception):
    """This machine cannot install Debian packages (not root, or no apt)."""


def run(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    input: str | None = None,
    cwd: str | Path = "/",
) -> subprocess.CompletedProcess[str]:
    """A command with the system environment, from / (so no checkout is on sys.path)."""
    return subprocess.run(
        args,
        env={**SYSTEM_ENV, **_test_cache(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        cwd=cwd,
        check=False,
    )


def relation_names(field: str) -> list[str]:
    """Package names of a Depends/Build-Depends field (first alternative, no versions)."""
    names = []
    for relation in field.split(","):
        first = relation.split("|")[0].strip()
        if not first or first.startswith("$"):
            continue
        name = re.split(r"[\s(\[<]", first, maxsplit=1)[0].removesuffix(":any")
        names.append("debhelper" if name == "debhelper-compat" else name)
    return names


def build_depends() -> list[str]:
    """Build-Depends of packaging/debian/control, plus what dpkg-buildpackage assumes."""
    text = "\n".join(
        line for line in CONTROL.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    match = re.search(r"^Build-Depends:(.*?)(?=^\S)", text, re.M | re.S)
    assert match, f"{CONTROL}: no Build-Depends field"
    return ["build-essential", "dpkg-dev", *relation_names(match.group(1))]


def missing(packages: list[str]) -> list[str]:
    absent = []
    for name in packages:
        proc = run(["dpkg-query", "-W", "-f=${Status}", name])
        if "install ok installed" not in proc.stdout:
            absent.append(name)
    return absent


def ensure_installed(packages: list[str]) -> None:
    """apt-get install whatever of `packages` is missing (apt-get update once if needed)."""
    absent = missing(packages)
    if not absent:
        return
    if os.geteuid() != 0:
        raise AptUnavailable(f"not root: cannot install {' '.join(absent)}")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
    install += ["-o", "DPkg::Lock::Timeout=120", *absent]
    proc = run(install, timeout=600)
    if proc.returncode != 0:
        # A fresh machine has no package lists yet.
        run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=120"], timeout=600)
        proc = run(install, timeout=600)
    if proc.returncode != 0:
        raise AptUnavailable(f"apt-get install {' '.join(absent)} failed:\n{proc.stderr[-2000:]}")


def build_deb(outdir: Path) -> Path:
    """packaging/build-deb into `outdir`; the path of the .deb.

    Where this machine allows it, the build runs in a network namespace with no
    interfaces (`unshare -n`): proof that it downloads nothing.
    """
    command = ["sh", str(PACKAGING / "build-deb"), str(outdir)]
    if run(["unshare", "-n", "true"]).returncode == 0:
        command = ["unshare", "-n", *command]
    proc = run(command, timeout=600)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}"
    debs = sorted(outdir.glob(f"{PACKAGE}_*_all.deb"))
    assert len(debs) == 1, f"expected one .deb in {outdir}: {debs}"
    return debs[0]


def deb_field(deb: Path, field: str) -> str:
    proc = run(["dpkg-deb", "-f", str(deb), field])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def deb_contents(deb: Path) -> dict[str, str]:
    """Path -> `ls -l` style mode string of every entry in the .deb's data."""
    proc = run(["dpkg-deb", "-c", str(deb)])
    assert proc.returncode == 0, proc.stderr
    entries = {}
    for line in proc.stdout.splitlines():
        fields = line.split(None, 5)
        path = fields[5].split(" -> ")[0].removeprefix(".")
        entries[path.rstrip("/") or "/"] = fields[0]
    return entries


def package_status() -> str:
    """dpkg's status word for the package: installed, config-files, not-installed."""
    proc = run(["dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE])
    return proc.stdout.strip() if proc.returncode == 0 else "not-installed"


def dpkg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """dpkg, waiting for the lock like apt does (dpkg itself has no timeout)."""
    deadline = time.monotonic() + 120
    while True:
        proc = run(["dpkg", *args], env=env)
        if "lock" not in proc.stderr or time.monotonic() > deadline:
            return proc
        time.sleep(1)


def apt_get(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run(["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", *args], env=env)
