"""bdcore: a plugin-based framework for backdoor attacks and defenses on low-level vision.

Importing :mod:`bdcore` is cheap (no torch): it exposes the hook marker for plugins,
the version and the error classes. The torch-side base classes live in
:mod:`bdcore.protocols` and :mod:`bdcore.components`.
"""

from __future__ import annotations

import pluggy

from bdcore._version import __version__
from bdcore.errors import (
    BdcoreError,
    ComponentError,
    ContractError,
    DataError,
    PluginError,
    SpecError,
    UntrustedFileError,
)
from bdcore.registry import NoParams

#: Decorate a plugin's ``register_*`` functions with this.
hookimpl = pluggy.HookimplMarker("bdcore")

__all__ = [
    "BdcoreError",
    "ComponentError",
    "ContractError",
    "DataError",
    "NoParams",
    "PluginError",
    "SpecError",
    "UntrustedFileError",
    "__version__",
    "hookimpl",
]
