"""pytest fixtures for bdcore plugins: ``from bdcore.testing.fixtures import *``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from bdcore.plugins import PluginHost, load_plugins
from bdcore.registry import Provenance
from bdcore.testing.runner import plugin_name

os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = ["bd_host", "register_plugin", "shared_data", "tiny_images"]


@pytest.fixture
def bd_host() -> PluginHost:
    """A fresh plugin host with bdcore's built-ins only (no entry-point autoload)."""
    return load_plugins(entry_points=False)


@pytest.fixture
def register_plugin(bd_host: PluginHost) -> Iterator[Callable[[ModuleType | object], Any]]:
    """``register_plugin(module)`` adds a plugin to ``bd_host``; fails the test if it does not load."""
    added: list[object] = []

    def add(module: ModuleType | object, name: str | None = None) -> Any:
        label = name or plugin_name(module)
        record = bd_host.add_plugin(module, label, Provenance(label, label.replace("_", "-"), "test"))
        if record is None:
            pytest.fail(f"plugin {label} failed to load:\n{bd_host.failures[-1].traceback}")
        added.append(module)
        return record

    yield add
    for module in added:
        if bd_host.pm.is_registered(module):
            bd_host.pm.unregister(module)


@pytest.fixture
def tiny_images() -> Any:
    """A seeded ``8×3×32×32`` float tensor in [0, 1] (smooth, image-like)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    base = torch.rand(8, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(base, size=32, mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="session")
def shared_data() -> Any:
    """The project's ``shared/data`` folder (skips the test when it is absent)."""
    from pathlib import Path

    env = os.environ.get("BDCORE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path.cwd().resolve()
    candidates += [p / "shared" / "data" for p in [here, *here.parents]]
    candidates += [p.parent / "shared" / "data" for p in [here, *here.parents]]
    for c in candidates:
        if c.is_dir():
            return c
    pytest.skip("shared/data is not available")


def pytest_report_header(config: Any) -> list[str]:  # pragma: no cover - cosmetic
    import torch

    from bdcore import __version__

    return [f"bdcore {__version__}, torch {torch.__version__}"]
