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
