"""Optional dependencies of observers: a missing one is a plugin problem (exit 3) that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from bdcore.errors import MissingExtra


def require_module(module: str, *, extra: str, who: str) -> ModuleType:
    """Import the top-level package ``module`` or raise :class:`~bdcore.errors.MissingExtra`
    naming ``pip install 'bdcore[extra]'``.

    Only the package itself being absent is translated; an error inside an installed package
    (one of *its* dependencies missing) passes through, to show what broke.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise MissingExtra(
            f"{who} needs the Python package {module!r}, which is not installed: pip install 'bdcore[{extra}]'"
        ) from exc
