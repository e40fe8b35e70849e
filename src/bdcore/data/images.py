"""Reading images from disk and converting between uint8 arrays and float tensors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bdcore.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")


def read_image(path: Path, channels: int | None = 3) -> np.ndarray:
    """Read an image as ``H×W×C`` uint8 (C = ``channels``; None keeps the file's own).

    Raises:
        DataError: the file is missing or not a readable image (the message names it).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            im: Any = opened
            if channels == 3:
                im = im.convert("RGB")
            elif channels == 1:
                im = im.convert("L")
            elif im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            arr = np.array(im, dtype=np.uint8)  # a writable copy: np.asarray of a PIL image is read-only
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (one ``scandir``: no per-file ``stat`` where
    the file system reports entry types, so 100k files index in well under a second)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file())
    files = [folder / n for n in names]
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def to_tensor(arr: np.ndarray) -> Tensor:
    """``H×W×C`` uint8 (0–255), or float already in [0, 1] (an input an attack prepared, see
    :meth:`bdcore.data.dataset.AugmentedDataset.with_inputs`) → ``C×H×W`` float32 in [0, 1]. ``arr`` may
    be read-only; it is never written."""
    if arr.dtype.kind == "f":
        return torch.from_numpy(np.array(arr.transpose(2, 0, 1), dtype=np.float32, order="C", copy=True))
    # Without the dtype, np.ascontiguousarray returns a one-channel image's transpose as a view, read-only
    # when ``arr`` is, and torch.from_numpy warns "The given NumPy array is not writable". With it, the
    # result is always a new array (same values: uint8 -> float32 is exact, then the same division).
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)).div_(255.0)


def to_uint8(img: Tensor) -> np.ndarray:
    """``C×H×W`` float in [0, 1] → ``H×W×C`` uint8 (rounded)."""
    arr = img.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return arr.transpose(1, 2, 0)


def save_png(img: Tensor, path: Path) -> None:
    from PIL import Image

    arr = to_uint8(img)
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path)
