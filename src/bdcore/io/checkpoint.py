"""Loading weights safely: safetensors, or ``torch.load(weights_only=True)`` — never pickle code.

A checkpoint that would execute code when unpickled is refused with
:class:`UntrustedFileError`; a given sha256 is checked before anything is parsed.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

from bdcore.errors import DataError, UntrustedFileError


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_weights(path: str | Path, *, sha256: str | None = None, map_location: str = "cpu") -> Any:
    """Load a state dict or checkpoint from ``path``.

    ``.safetensors`` files load with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickled code.

    Raises:
        DataError: the file does not exist.
        UntrustedFileError: the sha256 differs, or the pickle holds code/objects.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual.lower() != sha256.lower():
            raise UntrustedFileError(f"{path}: sha256 is {actual}, expected {sha256}; refusing to load it")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=map_location)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UntrustedFileError(
            f"{path}: refused to load: the file is a pickle that would run code or build "
            f"arbitrary objects ({first}). Only tensors and plain containers are loaded "
            "(torch.load(weights_only=True)); convert it to safetensors or a plain state dict."
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc


def extract_state_dict(obj: Any, keys: tuple[str, ...] = ("state_dict", "model", "net", "params")) -> dict[str, Any]:
    """The state dict inside a checkpoint (common wrappers unwrapped, ``module.`` stripped)."""
    if isinstance(obj, dict):
        for k in keys:
            if k in obj and isinstance(obj[k], dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict):
        raise DataError(f"checkpoint holds {type(obj).__name__}, not a state dict")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}
