"""The default store path is spelled once (host.storeread): the commands and the hook agree."""

from __future__ import annotations

import pytest

from hostdev_resolver.doors.hookops import HookConfig
from hostdev_resolver.host.hostsource import default_store
from hostdev_resolver.host.storeread import DEFAULT_PATH


def test_the_hook_and_the_commands_default_to_the_same_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOSTDEV_RESOLVER_STORE", raising=False)
    assert HookConfig().store == default_store() == DEFAULT_PATH
    monkeypatch.setenv("HOSTDEV_RESOLVER_STORE", "/srv/m.xml")
    assert default_store() == "/srv/m.xml"
    assert HookConfig().store == DEFAULT_PATH  # the hook reads its config, not the environment
