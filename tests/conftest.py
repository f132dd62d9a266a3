from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import libvirtd


@pytest.fixture(autouse=True)
def _private_verdict_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store schema's verdict cache (storeschema) goes to a fresh directory per test,
    never root's /var/cache; subprocesses inherit it through the environment."""
    monkeypatch.setenv("HOSTDEV_RESOLVER_CACHE", str(tmp_path_factory.mktemp("cache") / "c"))


@pytest.fixture(scope="session")
def libvirt_uri() -> Iterator[str]:
    """The real libvirtd (SPEC §9). Skips only when the packages cannot be installed."""
    try:
        uri = libvirtd.ensure_daemon()
    except libvirtd.DaemonUnavailable as exc:
        pytest.skip(f"real libvirtd unavailable: {exc}")
    yield uri
    libvirtd.stop_daemon()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen", action="store_true", help="rewrite golden files instead of comparing"
    )


@pytest.fixture
def regen(request: pytest.FixtureRequest) -> bool:
    """Golden files are rewritten only on request (--regen or HOSTDEV_REGEN=1)."""
    import os

    return bool(request.config.getoption("--regen")) or os.environ.get("HOSTDEV_REGEN") == "1"
