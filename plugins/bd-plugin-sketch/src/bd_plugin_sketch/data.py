"""Photo/sketch datasets: CUFS (folder or ``pairs.csv`` layout) and the embedded stand-in.

Samples are ``{"input": photo C×H×W, "target": sketch 1×H×W, "index"}`` in [0, 1];
bdcore's :class:`~bdcore.data.dataset.AugmentedDataset` co-crops and co-flips the pair,
and the engine applies the trigger afterwards, on batches.
"""

from __future__ import annotations

import csv
import operator
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from bdcore.context import Context, derive_seed
from bdcore.data.dataset import Augment, AugmentedDataset, seeded_split
from bdcore.data.images import list_images, read_image, to_tensor, to_uint8
from bdcore.data.sources import resize_short_side, verify_items
from bdcore.errors import DataError

from bd_plugin_sketch.params import CufsParams, EmbeddedSketchParams

Loader = Callable[[], dict[str, Any]]


def _pair_item(photo: Path, sketch: Path, channels: int, size: int | None) -> dict[str, Any]:
    x = read_image(photo, channels)
    y = read_image(sketch, 1)  # some CUFS test sketches are stored as RGB: always luma
    if x.shape[:2] != y.shape[:2]:
        raise DataError(f"{photo} is {x.shape[1]}x{x.shape[0]} but its sketch {sketch} is {y.shape[1]}x{y.shape[0]}")
    if size is not None:
        x, y = resize_short_side(x, size), resize_short_side(y, size)
    return {"input": x, "target": y}


def _key(stem: str) -> str:
    return re.sub(r"-sz\d+$", "", stem.lower())


def _sketch_key_fallback(key: str) -> str:
    # CUHK training sketches are named F2-/M2- for photos f-/m-.
    return re.sub(r"^([a-z]+)2-", r"\1-", key)


def _pair_folders(root: Path, split: str) -> list[tuple[Path, Path]]:
    photos = list_images(root / f"{split}_photo")
    sketches: dict[str, Path] = {}
    for f in list_images(root / f"{split}_sketch"):
        k = _key(f.stem)
        sketches[k] = f
        sketches.setdefault(_sketch_key_fallback(k), f)
    missing = [p.name for p in photos if _key(p.stem) not in sketches]
    if missing:
        raise DataError(f"{root / (split + '_sketch')}: no sketch for {len(missing)} photo(s), e.g. {missing[0]}")
    return [(p, sketches[_key(p.stem)]) for p in photos]


def _pair_csv(root: Path) -> dict[str, list[tuple[Path, Path]]]:
    table = root / "pairs.csv"
    out: dict[str, list[tuple[Path, Path]]] = {"training": [], "testing": []}
    with table.open(newline="") as fh:
        reader = csv.DictReader(fh)
        for col in ("split", "photo", "sketch"):
            if col not in (reader.fieldnames or []):
                raise DataError(f"{table}: no column {col!r} (columns: {', '.join(reader.fieldnames or [])})")
        for row_no, row in enumerate(reader, start=2):
            split = row["split"].strip().lower()
            if split not in out:
                raise DataError(f"{table}:{row_no}: split {row['split']!r} is not 'training' or 'testing'")
            photo, sketch = root / row["photo"], root / row["sketch"]
            for p in (photo, sketch):
                if not p.is_file():
                    raise DataError(f"{table}:{row_no}: {p} not found")
            out[split].append((photo, sketch))
    return out


class Cufs:
    """CUFS photo/sketch pairs with the official training/testing split (or a seeded one)."""

    def __init__(self, params: CufsParams, ctx: Context) -> None:
        self.params = params
        self.ctx = ctx

    def pairs(self) -> dict[str, list[tuple[Path, Path]]]:
        """``{"training": [(photo, sketch)...], "testing": [...]}`` from the chosen layout."""
        root = self.ctx.resolve_path(self.params.root)
        if not root.is_dir():
            raise DataError(f"{root}: CUFS folder not found (set data.params.root)")
        layout = self.params.layout
        if layout == "auto":
            layout = "pairs-csv" if (root / "pairs.csv").is_file() else "folders"
        if layout == "pairs-csv":
            if not (root / "pairs.csv").is_file():
                raise DataError(f"{root / 'pairs.csv'}: file not found (layout = 'pairs-csv')")
            return _pair_csv(root)
        return {s: _pair_folders(root, s) for s in ("training", "testing")}

    def splits(self) -> dict[str, AugmentedDataset]:
        p = self.params
        pairs = self.pairs()
        if p.split == "seeded":
            every = pairs["training"] + pairs["testing"]
            tr, te = seeded_split(len(every), p.train_fraction, derive_seed(self.ctx.seed, "split"))
            pairs = {"training": [every[i] for i in tr], "testing": [every[i] for i in te]}
        aug = Augment(crop=p.crop, flip=p.flip, test_crops=p.test_crops)
        out = {}
        for split, key, train in (("train", "training", True), ("test", "testing", False)):
            chosen = pairs[key][: p.limit] if p.limit is not None else pairs[key]
            if not chosen:
                raise DataError(f"{self.ctx.resolve_path(p.root)}: no {key} pairs")
            loaders = [partial(_pair_item, a, b, p.channels, p.size) for a, b in chosen]
            if self.ctx.options.get("verify"):  # [data] verify = true: every pair decoded once, now
                verify_items(loaders, [a.name for a, _ in chosen], self.ctx.component or "cufs")
            out[split] = AugmentedDataset(
                loaders, aug, train=train, repeats=p.repeats, names=[a.name for a, _ in chosen]
            )
        return out


def _embedded_item(load: Callable[[], np.ndarray], channels: int, size: int | None, sigma: float) -> dict[str, Any]:
    from bd_plugin_sketch.ops import pencil_sketch

    img = load()
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1 and channels == 3:
        img = np.repeat(img, 3, axis=2)
    if size is not None:
        img = resize_short_side(img, size)
    sketch = pencil_sketch(to_tensor(img)[None], sigma=sigma)[0]
    target = to_uint8(sketch)
    if channels == 1 and img.shape[2] == 3:
        img = np.round(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[:, :, None]
    return {"input": img, "target": target}


class EmbeddedSketch:
    """Embedded photos → pencil-sketch targets (a stand-in for artist sketches; no download)."""

    def __init__(self, params: EmbeddedSketchParams, ctx: Context) -> None:
        self.params = params
        self.ctx = ctx

    def items(self) -> tuple[list[Loader], list[str]]:
        from bdcore.data import embedded

        p = self.params
        try:
            if p.set == "scenes":
                names = list(embedded.SCENES)
                loads = [partial(embedded.load_scene, n) for n in names]
            else:
                faces = embedded.lfw_faces()
                names = [f"lfw_{i:03d}" for i in range(len(faces))]
                loads = [partial(operator.getitem, faces, i) for i in range(len(faces))]
        except ImportError as exc:
            raise DataError(
                f"embedded-sketch needs {exc.name} (pip install scikit-image scikit-learn matplotlib)"
            ) from exc
        return [partial(_embedded_item, ld, p.channels, p.size, p.sigma) for ld in loads], names

    def splits(self) -> dict[str, AugmentedDataset]:
        p = self.params
        loaders, names = self.items()
        if p.limit is not None:
            loaders, names = loaders[: p.limit], names[: p.limit]
        if len(loaders) < 2:
            raise DataError(f"embedded-sketch: need at least 2 images, got {len(loaders)}")
        tr, te = seeded_split(len(loaders), p.train_fraction, derive_seed(self.ctx.seed, "split"))
        aug = Augment(crop=p.crop, flip=p.flip, test_crops=p.test_crops)

        def make(idx: list[int], train: bool) -> AugmentedDataset:
            return AugmentedDataset(
                [loaders[i] for i in idx], aug, train=train, repeats=p.repeats, names=[names[i] for i in idx]
            )

        return {"train": make(tr, True), "test": make(te, False)}
