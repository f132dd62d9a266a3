from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.packaging import apt

# packaging/ is a directory of build scripts, not a Python package (and its name
# would shadow PyPA's `packaging`): import manpage.py and completion.py from it.
sys.path.insert(0, str(apt.PACKAGING))


@pytest.fixture(scope="session")
def built_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb, built once per session by packaging/build-deb from a clean copy of the tree."""
    try:
        apt.ensure_installed(apt.build_depends())
    except apt.AptUnavailable as exc:
        pytest.skip(f"cannot install the Debian build dependencies: {exc}")
    return apt.build_deb(tmp_path_factory.mktemp("deb"))
