"""The embedded sample set: real photographs that ship inside installed packages.

No download, ever: scikit-image's ``data`` images (7 RGB photos incl. a portrait,
grey photos, and an LFW subset of 100 grey 25×25 faces), scikit-learn's two sample
photos and matplotlib's portrait of Grace Hopper. The quickstart and the tests run
on these.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from bdcore.builtin.params import EmbeddedParams
from bdcore.data.sources import SplitSource, resize_short_side
from bdcore.errors import DataError

#: name -> how to load it as H×W×3 uint8.
SCENES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "immunohistochemistry",
    "china",
    "flower",
    "grace_hopper",
)
GREY = ("camera", "brick", "grass", "gravel", "coins", "clock", "moon", "page", "text")


def load_scene(name: str) -> np.ndarray:
    """One embedded RGB photograph as ``H×W×3`` uint8."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"), dtype=np.uint8)
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:  # type: ignore[union-attr]
            from PIL import Image

            return np.asarray(Image.open(fh).convert("RGB"), dtype=np.uint8)
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return np.asarray(left if name.endswith("left") else right, dtype=np.uint8)
    return np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)[:, :, :3]


def load_grey(name: str) -> np.ndarray:
    import skimage.data

    arr = np.asarray(getattr(skimage.data, name)())
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) / max(arr.max(), 1) * 255).round().astype(np.uint8)
    return arr


def lfw_faces() -> np.ndarray:
    """The 100 grey LFW face crops of ``skimage.data.lfw_subset`` (``100×25×25`` uint8)."""
    import skimage.data

    faces = skimage.data.lfw_subset()[:100]
    return (faces * 255).round().astype(np.uint8)


def _item(load: Callable[[], np.ndarray], channels: int, size: int | None) -> dict[str, Any]:
    img = load()
    if img.ndim == 2:
        img = img[:, :, None]
    if channels == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif channels == 1 and img.shape[2] == 3:
        img = np.round(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[:, :, None]
    if size is not None:
        img = resize_short_side(img, size)
    return {"input": img, "target": img}


class Embedded(SplitSource):
    """Embedded photographs (``set = "scenes" | "faces" | "grey"``); input = target."""

    params: EmbeddedParams

    def items(self) -> tuple[list[Callable[[], dict[str, Any]]], list[str]]:
        p = self.params
        try:
            if p.set == "scenes":
                loads = [partial(load_scene, n) for n in SCENES]
                names = list(SCENES)
            elif p.set == "grey":
                loads = [partial(load_grey, n) for n in GREY]
                names = list(GREY)
            else:
                faces = lfw_faces()
                loads = [partial(operator.getitem, faces, i) for i in range(len(faces))]
                names = [f"lfw_{i:03d}" for i in range(len(faces))]
        except ImportError as exc:
            raise DataError(
                f"embedded data needs {exc.name} (pip install scikit-image scikit-learn matplotlib)"
            ) from exc
        return [partial(_item, ld, p.channels, p.size) for ld in loads], names
