from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import libvirtd, treesnapshot

# /etc/libvirt as the session found it: a test run must leave it byte for byte as it was
# (issue 10). Compared in pytest_sessionfinish, after the daemon is stopped.
_ETC_BEFORE = pytest.StashKey[treesnapshot.Snapshot]()

# The places the installed tool writes on a host. Tests point every one of them at temp
# directories (hook.toml keys, HOSTDEV_RESOLVER_CACHE...): a run that creates one has a
# test that reached the host's defaults, which is what an administrator must not see.
_OWN_PATHS = (
    "/etc/hostdev-resolver",
    "/var/log/hostdev-resolver",
    "/var/cache/hostdev-resolver",
    "/run/hostdev-resolver",
    "/var/lib/hostdev-resolver",
    "/usr/local/libexec/hostdev-resolver",
)
_OWN_BEFORE = pytest.StashKey[frozenset[str]]()
_SESSION_CACHE = pytest.StashKey[str]()


def _own_paths_present() -> frozenset[str]:
    import os

    return frozenset(p for p in _OWN_PATHS if os.path.lexists(p))


@pytest.fixture(autouse=True)
def _no_host_id_databases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Device names come from the host's pci.ids/usb.ids when installed; tests (goldens
    included) must not depend on whether this machine has them. Tests of the names
    point HOSTDEV_RESOLVER_IDS at their own files."""
    monkeypatch.setenv("HOSTDEV_RESOLVER_IDS", "")


@pytest.fixture(autouse=True)
def _private_verdict_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store schema's verdict cache (storeschema) goes to a fresh directory per test,
    never root's /var/cache; subprocesses inherit it through the environment."""
    monkeypatch.setenv("HOSTDEV_RESOLVER_CACHE", str(tmp_path_factory.mktemp("cache") / "c"))


@pytest.fixture(scope="session")
def libvirt_uri() -> Iterator[str]:
    """The real libvirtd (SPEC §9), in its own mount namespace (tests/support/libvirtd.py).
    Skips only when the packages cannot be installed."""
    try:
        uri = libvirtd.ensure_daemon()
    except libvirtd.DaemonUnavailable as exc:
        pytest.skip(f"real libvirtd unavailable: {exc}")
    yield uri
    libvirtd.stop_daemon()


def pytest_sessionstart(session: pytest.Session) -> None:
    import os
    import tempfile

    session.stash[_ETC_BEFORE] = treesnapshot.snapshot(libvirtd.ETC)
    session.stash[_OWN_BEFORE] = _own_paths_present()
    # A verdict cache for the whole run, before any fixture: module- and session-scoped
    # fixtures (the installed package's) run commands before the per-test one is set.
    session.stash[_SESSION_CACHE] = tempfile.mkdtemp(prefix="hostdev-resolver-verdicts.")
    os.environ["HOSTDEV_RESOLVER_CACHE"] = os.path.join(session.stash[_SESSION_CACHE], "c")


@pytest.hookimpl(trylast=True)  # after the fixtures' teardown (packaging restores files)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    lines = []
    try:
        # Modules that call ensure_daemon() directly have no fixture teardown to stop it.
        libvirtd.stop_daemon()
    except RuntimeError as exc:
        lines.append(str(exc))
    before = session.stash.get(_ETC_BEFORE, None)
    if before is not None:
        after = treesnapshot.snapshot(libvirtd.ETC)
        changed = treesnapshot.differences(libvirtd.ETC, before, after)
        if changed:
            lines.append(
                f"the test run changed {libvirtd.ETC} (or something else did meanwhile, such "
                "as the host's own libvirtd defining a guest); put back:"
            )
            lines.extend(changed)
    cache = session.stash.get(_SESSION_CACHE, None)
    if cache is not None:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
    own_before = session.stash.get(_OWN_BEFORE, None)
    if own_before is not None:
        for path in sorted(_own_paths_present() - own_before):
            lines.append(f"the test run created {path}: a test used the host's default path")
    if lines:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            for line in lines:
                reporter.write_line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen", action="store_true", help="rewrite golden files instead of comparing"
    )


@pytest.fixture
def regen(request: pytest.FixtureRequest) -> bool:
    """Golden files are rewritten only on request (--regen or HOSTDEV_REGEN=1)."""
    import os

    return bool(request.config.getoption("--regen")) or os.environ.get("HOSTDEV_REGEN") == "1"
