"""Data sources: HQ faces → seeded synthetic LQ (``degraded-faces``) and real LQ folders (``lq-folder``)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bd_plugin_asfiba.degradation import DegradationRanges, synthesize_lq
from bd_plugin_asfiba.params import DegradedFacesParams, LQFolderParams
from bdcore.context import derive_seed
from bdcore.data.images import IMAGE_SUFFIXES, read_image
from bdcore.data.sources import SplitSource, resize_short_side
from bdcore.errors import DataError


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _hq_item(load: Callable[[], np.ndarray], size: int | None) -> dict[str, Any]:
    img = load()
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if size is not None:
        img = resize_short_side(img, size)
    return {"input": img, "target": img}


class DegradedView:
    """Wraps a split: ``get(index, seed)`` returns input = synthesize_lq(target) with a per-sample seed.

    Training samples derive the degradation seed from the loader's per-sample seed (new degradations each
    epoch); test samples (``seed=None``) from ``(run seed, index)`` (fixed)."""

    def __init__(self, inner: Any, ranges: DegradationRanges, seed: int, split: str) -> None:
        self.inner = inner
        self.ranges = ranges
        self.seed = seed
        self.split = split

    def __len__(self) -> int:
        return len(self.inner)

    def name_of(self, index: int) -> str:
        return str(self.inner.name_of(index))

    def get(self, index: int, seed: int | None = None) -> dict[str, Any]:
        sample = dict(self.inner.get(index, seed))
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "lq", self.split, index, seed))
        sample["input"] = synthesize_lq(sample["target"], gen, self.ranges)
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.get(index, None)


class DegradedFaces(SplitSource):
    """HQ faces (a folder, or bdcore's embedded LFW faces) paired with seeded synthetic LQ inputs."""

    params: DegradedFacesParams

    limits_itself = True  # ``limit`` applies to each folder (training faces, real LQ test faces)

    def _folder(self, folder: Path) -> tuple[list[Callable[[], np.ndarray]], list[str]]:
        root = self.ctx.resolve_path(folder)
        files = find_images(root)[: self.params.limit]
        return [partial(read_image, f, 3) for f in files], [str(f.relative_to(root)) for f in files]

    def items(self) -> tuple[list[Callable[[], dict[str, Any]]], list[str]]:
        p = self.params
        if p.path is None:
            from bdcore.data.embedded import lfw_faces

            faces = lfw_faces()
            loads = [partial(operator.getitem, faces, i) for i in range(len(faces))][: p.limit]
            names = [f"lfw_{i:03d}" for i in range(len(faces))][: p.limit]
        else:
            loads, names = self._folder(p.path)
        self._n_train = len(loads)
        if p.test_path is not None:
            test_loads, test_names = self._folder(p.test_path)
            loads, names = loads + test_loads, names + [f"test/{n}" for n in test_names]
        return [partial(_hq_item, ld, p.size) for ld in loads], names

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        train, held_out = super().split_indices(names[: self._n_train])
        if self.params.test_path is None:
            return train, held_out
        return train, list(range(self._n_train, len(names)))  # the held-out faces are not used

    def splits(self) -> dict[str, Any]:
        p = self.params
        ranges = DegradationRanges(p.blur_sigma, p.scale, p.noise, p.jpeg_quality)
        out = {k: DegradedView(ds, ranges, self.ctx.seed, k) for k, ds in super().splits().items()}
        if p.test_path is not None:  # real LQ faces: tested as they are
            out["test"] = out["test"].inner
        return out


class LQFolder(SplitSource):
    """Real LQ faces without ground truth (input = target = the LQ image)."""

    params: LQFolderParams

    def items(self) -> tuple[list[Callable[[], dict[str, Any]]], list[str]]:
        root = self.ctx.resolve_path(self.params.path)
        files = find_images(root)
        return [partial(_hq_item, partial(read_image, f, 3), self.params.size) for f in files], [
            str(f.relative_to(root)) for f in files
        ]
