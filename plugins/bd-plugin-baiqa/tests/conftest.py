import os
from pathlib import Path

import pytest

from bdcore.testing.fixtures import *  # noqa: F403 - bdcore's fixtures for plugin tests

SHARED = Path(__file__).resolve().parents[3] / "../shared/data"


def shared_path(*parts: str) -> Path:
    """A file under ``<repo>/../shared/data``; skips the test when absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not available")
    return p


def pytest_collection_modifyitems(config, items):  # noqa: ANN001, ARG001
    if os.environ.get("BDCORE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow (set BDCORE_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
