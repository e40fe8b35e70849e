"""Built-in data sources: image folders, paired folders, scored CSVs, identity folders.

Every source indexes file paths when the run starts (one directory listing, no decoding) and
decodes an item only when a loader worker asks for it, so a folder of 100k images costs its
index in memory, not its pixels. ``[data] verify = true`` (``ctx.options["verify"]``) decodes
every item once at indexing, in threads, and stops with the list of unreadable files.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bdcore.builtin.params import (
    IdentityFolderParams,
    ImageFolderParams,
    PairedFolderParams,
    ScoredCsvParams,
    SplitParams,
)
from bdcore.context import Context, derive_seed
from bdcore.data.dataset import Augment, AugmentedDataset, seeded_split
from bdcore.data.images import IMAGE_SUFFIXES, list_images, read_image
from bdcore.errors import DataError


def resize_short_side(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize ``H×W×C`` uint8 so its shorter side is ``size`` (bicubic, PIL)."""
    from PIL import Image

    h, w = arr.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    out = np.asarray(im.resize((nw, nh), Image.Resampling.BICUBIC), dtype=np.uint8)
    return out[:, :, None] if out.ndim == 2 else out


class SplitSource:
    """Builds train/test :class:`AugmentedDataset` from a list of item loaders."""

    def __init__(self, params: SplitParams, ctx: Context) -> None:
        self.params = params
        self.ctx = ctx

    #: True when :meth:`items` already applied ``limit`` (per folder).
    limits_itself = False

    def items(self) -> tuple[list[Any], list[str]]:
        raise NotImplementedError

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        return seeded_split(len(names), self.params.train_fraction, derive_seed(self.ctx.seed, "split"))

    def splits(self) -> dict[str, AugmentedDataset]:
        loaders, names = self.items()
        if self.params.limit is not None and not self.limits_itself:
            loaders, names = loaders[: self.params.limit], names[: self.params.limit]
        if self.ctx.options.get("verify"):
            verify_items(loaders, names, self.ctx.component)
        if len(loaders) < 2:
            raise DataError(f"{self.ctx.component}: need at least 2 items for a train/test split, got {len(loaders)}")
        train_idx, test_idx = self.split_indices(names)
        p = self.params
        aug = Augment(crop=p.crop, flip=p.flip, test_crops=p.test_crops, test_crop=p.test_crop)

        def make(idx: list[int], train: bool) -> AugmentedDataset:
            return AugmentedDataset(
                [self.split_item(loaders[i], train) for i in idx],
                aug,
                train=train,
                repeats=p.repeats,
                names=[names[i] for i in idx],
            )

        return {"train": make(train_idx, True), "test": make(test_idx, False)}

    def split_item(self, load: Callable[[], dict[str, Any]], train: bool) -> Callable[[], dict[str, Any]]:  # noqa: ARG002
        """The loader of one item as it goes into the train (``train=True``) or test split;
        override to mark items by split (e.g. a clean-label attack that may only poison training items)."""
        return load


def verify_items(loaders: Sequence[Callable[[], Any]], names: Sequence[str], who: str = "data") -> None:
    """Load every item once (in threads: decoding releases the GIL) and fail with the unreadable ones.

    Raises:
        DataError: listing up to 20 unreadable items by name with their errors, and how many there are.
    """
    from concurrent.futures import ThreadPoolExecutor

    from bdcore.data.loader import usable_cpus

    def check(i: int) -> str | None:
        try:
            loaders[i]()
        except DataError as exc:
            return f"{names[i]}: {exc}"
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(16, usable_cpus()))) as pool:
        bad = [msg for msg in pool.map(check, range(len(loaders)), chunksize=64) if msg is not None]
    if bad:
        shown = "\n  ".join(bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise DataError(
            f"{who}: {len(bad)} of {len(loaders)} items are unreadable ([data] verify = true):\n  {shown}{more}"
        )


def _image_item(path: Path, channels: int) -> dict[str, Any]:
    img = read_image(path, channels)
    return {"input": img, "target": img}


class ImageFolder(SplitSource):
    """A folder of images; input = target (compression, autoencoding)."""

    params: ImageFolderParams
    limits_itself = True

    def items(self) -> tuple[list[Any], list[str]]:
        files = self._files(self.params.path)
        self._n_train = len(files)
        if self.params.test_path is not None:
            files += self._files(self.params.test_path)
        return [partial(_image_item, f, self.params.channels) for f in files], [f.name for f in files]

    def _files(self, folder: Path) -> list[Path]:
        files = list_images(self.ctx.resolve_path(folder))
        return files[: self.params.limit] if self.params.limit is not None else files

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        if self.params.test_path is None:
            return super().split_indices(names)
        return list(range(self._n_train)), list(range(self._n_train, len(names)))


def _paired_item(a: Path, b: Path, channels: int, target_channels: int) -> dict[str, Any]:
    x = read_image(a, channels)
    y = read_image(b, target_channels)
    if x.shape[:2] != y.shape[:2]:
        raise DataError(f"{a} is {x.shape[1]}x{x.shape[0]} but its pair {b} is {y.shape[1]}x{y.shape[0]}")
    return {"input": x, "target": y}


class PairedFolder(SplitSource):
    """Two folders of images paired by file stem (LQ/HQ, photo/sketch)."""

    params: PairedFolderParams

    def items(self) -> tuple[list[Any], list[str]]:
        p = self.params
        inputs = list_images(self.ctx.resolve_path(p.input_dir))
        targets = {}
        for f in list_images(self.ctx.resolve_path(p.target_dir)):
            stem = f.stem
            if p.target_suffix and stem.endswith(p.target_suffix):
                stem = stem[: -len(p.target_suffix)]
            targets[stem] = f
        loaders, names = [], []
        missing = [f.name for f in inputs if f.stem not in targets]
        if missing:
            raise DataError(
                f"{self.ctx.resolve_path(p.target_dir)}: no target for {len(missing)} input(s), e.g. {missing[0]} "
                f"(pairs are matched by file stem{' after removing ' + repr(p.target_suffix) if p.target_suffix else ''})"
            )
        tch = p.target_channels or p.channels
        for f in inputs:
            loaders.append(partial(_paired_item, f, targets[f.stem], p.channels, tch))
            names.append(f.name)
        return loaders, names


def _scored_item(path: Path, score: float, channels: int) -> dict[str, Any]:
    return {"input": read_image(path, channels), "target": float(score)}


class ScoredCsv(SplitSource):
    """Images with a quality score (MOS) from a CSV table."""

    params: ScoredCsvParams

    def items(self) -> tuple[list[Any], list[str]]:
        p = self.params
        table = self.ctx.resolve_path(p.csv)
        folder = self.ctx.resolve_path(p.images)
        if not table.is_file():
            raise DataError(f"{table}: file not found")
        loaders, names = [], []
        with table.open(newline="") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            for col in (p.name_column, p.score_column):
                if col not in cols:
                    raise DataError(f"{table}: no column {col!r} (columns: {', '.join(cols)})")
            for row_no, row in enumerate(reader, start=2):
                try:
                    score = float(row[p.score_column])
                except ValueError as exc:
                    raise DataError(f"{table}:{row_no}: score {row[p.score_column]!r} is not a number") from exc
                path = folder / row[p.name_column]
                if not path.is_file():
                    raise DataError(f"{table}:{row_no}: image {path} not found")
                loaders.append(partial(_scored_item, path, score, p.channels))
                names.append(path.name)
        return loaders, names


def _identity_item(path: Path, label: int, channels: int, size: int | None) -> dict[str, Any]:
    img = read_image(path, channels)
    if size is not None:
        img = resize_short_side(img, size)
    return {"input": img, "target": label}


class IdentityFolder(SplitSource):
    """One sub-folder per identity; the target is the identity's class index."""

    params: IdentityFolderParams

    def items(self) -> tuple[list[Any], list[str]]:
        root = self.ctx.resolve_path(self.params.path)
        if not root.is_dir():
            raise DataError(f"{root}: folder not found")
        people = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: _natural_key(d.name))
        if not people:
            raise DataError(f"{root}: no identity sub-folders")
        loaders, names, self._labels = [], [], []
        for label, person in enumerate(people):
            files = sorted(
                (f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), key=lambda f: _natural_key(f.name)
            )
            for f in files:
                loaders.append(partial(_identity_item, f, label, self.params.channels, self.params.size))
                names.append(f"{person.name}/{f.name}")
                self._labels.append(label)
        return loaders, names

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        """Stratified: the same share of every identity's images goes to training."""
        train: list[int] = []
        test: list[int] = []
        labels = np.array(self._labels)
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            tr, te = seeded_split(len(idx), self.params.train_fraction, derive_seed(self.ctx.seed, "split", int(label)))
            train += idx[tr].tolist()
            test += idx[te].tolist()
        return sorted(train), sorted(test)


def _natural_key(name: str) -> tuple[Any, ...]:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
