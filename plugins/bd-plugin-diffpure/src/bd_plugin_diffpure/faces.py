"""Olivetti / ORL faces as tensors, and the ``olivetti`` data source (40 identities × 10 images)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bdcore.context import derive_seed
from bdcore.data.dataset import seeded_split
from bdcore.data.sources import SplitSource, resize_short_side
from bdcore.errors import DataError


def load_olivetti_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``olivettifaces.mat``: returns (400×64×64 uint8 upright faces, 400 labels = column // 10)."""
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"{path}: file not found (expected olivettifaces.mat, variable `faces` 4096×400)")
    mat = loadmat(str(path))
    if "faces" not in mat:
        raise DataError(f"{path}: no variable `faces`")
    faces = np.asarray(mat["faces"])
    if faces.shape[0] != 4096:
        raise DataError(f"{path}: `faces` must be 4096×N, got {faces.shape}")
    imgs = faces.T.reshape(-1, 64, 64).transpose(0, 2, 1)  # MATLAB column-major → upright
    if imgs.dtype != np.uint8:
        imgs = np.clip(np.round(imgs * (255.0 if imgs.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(imgs), np.arange(imgs.shape[0]) // 10


def stratified_split(labels: np.ndarray, train_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Per-identity seeded split (the same rule as bdcore's ``identity-folder``)."""
    train: list[int] = []
    test: list[int] = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        tr, te = seeded_split(len(idx), train_fraction, derive_seed(seed, "split", int(label)))
        train += idx[tr].tolist()
        test += idx[te].tolist()
    return sorted(train), sorted(test)


def _face_item(img: np.ndarray, label: int, channels: int, size: int | None) -> dict[str, Any]:
    arr = img[:, :, None]
    if size is not None and size != arr.shape[0]:
        arr = resize_short_side(arr, size)
    if channels == 3:
        arr = np.repeat(arr, 3, axis=2)
    return {"input": arr, "target": int(label)}


class Olivetti(SplitSource):
    """The Olivetti faces (ORL, 64×64 grey) from ``olivettifaces.mat``; target = identity 0..39.

    Grey faces are replicated to 3 channels when ``channels = 3`` (needed by the colorization stage).
    """

    def items(self) -> tuple[list[Callable[[], dict[str, Any]]], list[str]]:
        imgs, labels = load_olivetti_mat(self.ctx.resolve_path(self.params.path))
        self._labels = labels
        loaders = [
            partial(_face_item, imgs[k], int(labels[k]), self.params.channels, self.params.size)
            for k in range(len(imgs))
        ]
        return loaders, [f"s{labels[k] + 1}/{k % 10 + 1}" for k in range(len(imgs))]

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        return stratified_split(self._labels[: len(names)], self.params.train_fraction, self.ctx.seed)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


def face_view(path: Path, view_seed: int, *, size: int, crop_scale: tuple[float, float], channels: int) -> np.ndarray:
    """One seeded view of a face photo: centred square → random square crop (side ``crop_scale`` × the
    square's, random position) → horizontal flip with probability ½ → ``size``×``size`` (PIL box filter, i.e.
    area averaging). Returns ``size×size×channels`` uint8; the same ``view_seed`` gives the same view."""
    from PIL import Image

    from bdcore.data.images import read_image

    img = read_image(path, channels)
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    rng = np.random.default_rng(view_seed)
    crop = max(1, round(side * rng.uniform(*crop_scale)))
    top += int(rng.integers(0, side - crop + 1))
    left += int(rng.integers(0, side - crop + 1))
    patch = img[top : top + crop, left : left + crop]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    im = Image.fromarray(np.ascontiguousarray(patch[:, :, 0] if channels == 1 else patch))
    out = np.asarray(im.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)
    return out[:, :, None] if out.ndim == 2 else out


def _view_item(path: Path, label: int, view_seed: int, params: Any) -> dict[str, Any]:
    view = face_view(path, view_seed, size=params.size, crop_scale=params.crop_scale, channels=params.channels)
    return {"input": view, "target": label}


class FaceViews(SplitSource):
    """``face-views``: one identity per photo, ``views`` seeded views each, split per identity (see
    :class:`~bd_plugin_diffpure.params.FaceViewsParams`). Colour faces, so colorization has colour to restore."""

    limits_itself = True

    def items(self) -> tuple[list[Callable[[], dict[str, Any]]], list[str]]:
        root = self.ctx.resolve_path(self.params.path)
        if not root.is_dir():
            raise DataError(f"{root}: face-views path is not a folder")
        pattern = self.params.pattern
        files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if self.params.limit is not None:
            files = files[: self.params.limit]
        if len(files) < 2:
            raise DataError(f"{root}: face-views needs at least 2 face images matching {pattern!r}, found {len(files)}")
        loaders, names, labels = [], [], []
        for label, f in enumerate(files):
            for v in range(self.params.views):
                seed = derive_seed(self.ctx.seed, "face-view", f.relative_to(root).as_posix(), v)
                loaders.append(partial(_view_item, f, label, seed, self.params))
                names.append(f"{f.relative_to(root).as_posix()}#{v}")
                labels.append(label)
        self._labels = np.asarray(labels)
        return loaders, names

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        return stratified_split(self._labels[: len(names)], self.params.train_fraction, self.ctx.seed)
