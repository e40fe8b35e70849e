import os

import pytest

try:  # noqa: SIM105 - the core's testing fixtures are landing in parallel; the pure-function tests do not need them
    from bdcore.testing.fixtures import *  # noqa: F403
except ImportError:  # pragma: no cover - depends on the core's progress
    pass

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    if os.environ.get("BDCORE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set BDCORE_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
