"""IQA data sources: ``livec`` (official .mat or CSV), ``koniq`` (CSV) and ``iqa-embedded`` (a stand-in).

Samples are ``{"input": 3×H×W in [0,1], "target": MOS (float), "index", "baiqa_train": 1|0}``; the last
field marks training samples so ``c-baiqa`` refines only training images (the engine's ``poison`` is
called the same way for training and test batches).
"""

from __future__ import annotations

import csv
import io
import json
import pickle
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from bd_plugin_baiqa.params import EmbeddedIqaParams, KoniqParams, LivecParams
from bdcore.context import derive_seed
from bdcore.data.dataset import seeded_split
from bdcore.data.images import read_image
from bdcore.data.sources import SplitSource, resize_short_side
from bdcore.errors import DataError

Loader = Callable[[], dict[str, Any]]


def _marked(loader: Loader, train: int) -> dict[str, Any]:
    out = dict(loader())
    out["baiqa_train"] = train
    return out


class IqaSource(SplitSource):
    """A :class:`SplitSource` whose samples carry ``baiqa_train`` (1 in the train split)."""

    def split_item(self, load: Loader, train: bool) -> Loader:
        return partial(_marked, load, int(train))


def _scored(path: Path, score: float, resize: tuple[int, int] | None = None) -> dict[str, Any]:
    img = read_image(path, 3)
    if resize is not None and (img.shape[1], img.shape[0]) != tuple(resize):
        from PIL import Image

        img = np.asarray(Image.fromarray(img).resize(tuple(resize), Image.Resampling.BICUBIC), dtype=np.uint8)
    return {"input": img, "target": float(score)}


class _SafeListUnpickler(pickle.Unpickler):
    """Unpickles plain lists/ints only (CLIVE_traintest_index.pkl); anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise DataError(f"refusing to unpickle {module}.{name}: the split index must be a plain list")


def load_split_order(path: Path) -> tuple[list[int], int | None]:
    """BAIQA's LIVEC order (a permutation of 0..1161) from ``.pkl`` (plain list only) or ``.json``."""
    if not path.is_file():
        raise DataError(f"{path}: split index not found")
    if path.suffix == ".json":
        obj = json.loads(path.read_text())
    else:
        obj = _SafeListUnpickler(io.BytesIO(path.read_bytes())).load()
    n_train = None
    if isinstance(obj, dict):
        n_train = obj.get("n_train")
        obj = obj.get("order")
    if not isinstance(obj, list) or not all(isinstance(i, int) for i in obj):
        raise DataError(f"{path}: expected a list of integers (or {{'order': [...]}})")
    return obj, n_train


class Livec(IqaSource):
    """LIVE In the Wild Challenge: ``root/Data/All{Images,MOS}_release.mat`` (rows 7.. are the 1162 test
    images; BAIQA drops t1..t7) and ``root/Images``; or ``csv`` (filename,mos)."""

    params: LivecParams

    def _table(self) -> list[tuple[str, float]]:
        p = self.params
        root = self.ctx.resolve_path(p.root)
        mat_dir = root / "Data"
        if p.csv is None and (mat_dir / "AllImages_release.mat").is_file():
            import scipy.io

            names = scipy.io.loadmat(mat_dir / "AllImages_release.mat")["AllImages_release"]
            mos = scipy.io.loadmat(mat_dir / "AllMOS_release.mat")["AllMOS_release"].reshape(-1)
            return [(str(names[i][0][0]), float(mos[i])) for i in range(7, len(mos))]
        table = self.ctx.resolve_path(p.csv) if p.csv is not None else root / "mos.csv"
        if not table.is_file():
            raise DataError(f"livec: neither {mat_dir / 'AllImages_release.mat'} nor {table} found")
        with table.open(newline="") as fh:
            return [(r["filename"], float(r["mos"])) for r in csv.DictReader(fh)]

    def items(self) -> tuple[list[Loader], list[str]]:
        root = self.ctx.resolve_path(self.params.root)
        self._all = self._table()
        loaders, names = [], []
        for name, mos in self._all:
            path = root / "Images" / name
            if not path.is_file():
                if self.params.strict:
                    raise DataError(f"livec: image {path} not found")
                continue
            loaders.append(partial(_scored, path, mos))
            names.append(name)
        if not loaders:
            raise DataError(f"livec: no images found under {root / 'Images'}")
        return loaders, names

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        p = self.params
        if p.split_index is None:
            return super().split_indices(names)
        if len(self._all) != 1162:
            raise DataError("livec: split_index needs the .mat release table (1162 rows after t1..t7)")
        order, n_file = load_split_order(self.ctx.resolve_path(p.split_index))
        n_train = n_file or p.n_train
        pos = {n: i for i, n in enumerate(names)}
        train_names = {self._all[i][0] for i in order[:n_train]}
        train = sorted(pos[n] for n in train_names if n in pos)
        test = sorted(i for n, i in pos.items() if n not in train_names)
        if not train or not test:
            raise DataError("livec: the official split leaves an empty train or test set for these images")
        return train, test


class Koniq(IqaSource):
    """KonIQ-10k from its CSV (``image_name``, ``MOS_zscore``; optional ``set`` split column)."""

    params: KoniqParams

    def items(self) -> tuple[list[Loader], list[str]]:
        p = self.params
        table, folder = self.ctx.resolve_path(p.csv), self.ctx.resolve_path(p.images)
        if not table.is_file():
            raise DataError(f"koniq: {table} not found")
        loaders, names, self._sets = [], [], []
        with table.open(newline="") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            for col in [p.name_column, p.score_column] + ([p.split_column] if p.split_column else []):
                if col not in cols:
                    raise DataError(f"koniq: {table} has no column {col!r} (columns: {', '.join(cols)})")
            for row in reader:
                path = folder / row[p.name_column]
                if not path.is_file():
                    raise DataError(f"koniq: image {path} not found")
                loaders.append(partial(_scored, path, float(row[p.score_column]), p.resize))
                names.append(row[p.name_column])
                self._sets.append(row[p.split_column].strip().lower() if p.split_column else "")
        return loaders, names

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        if not self.params.split_column:
            return super().split_indices(names)
        train = [i for i, s in enumerate(self._sets[: len(names)]) if s in ("training", "train")]
        test = [i for i, s in enumerate(self._sets[: len(names)]) if s in ("test", "testing")]
        return train, test


# -- the embedded stand-in ---------------------------------------------------------------------------------

#: The distortion ladder (level 1..5; level 0 = pristine). Gaussian blur σ (px), Gaussian noise σ (/255), JPEG quality.
BLUR_SIGMA = (0.8, 1.5, 2.5, 4.0, 6.0)
NOISE_SIGMA = (4.0, 8.0, 14.0, 22.0, 32.0)
JPEG_QUALITY = (60, 35, 20, 10, 5)
KINDS = ("blur", "noise", "jpeg")


def distort(img: np.ndarray, kind: str, level: int, seed: int) -> np.ndarray:
    """One rung of the ladder on an ``H×W×3`` uint8 image (level 0 = unchanged)."""
    if level == 0:
        return img
    from PIL import Image, ImageFilter

    if kind == "blur":
        return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(BLUR_SIGMA[level - 1])), dtype=np.uint8)
    if kind == "noise":
        noise = np.random.default_rng(seed).normal(0.0, NOISE_SIGMA[level - 1], img.shape)
        return np.clip(np.round(img + noise), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY[level - 1])
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)
    raise ValueError(f"unknown distortion {kind!r}")


@lru_cache(maxsize=32)
def _scene(name: str, size: int) -> np.ndarray:
    from bdcore.data.embedded import load_scene

    return resize_short_side(load_scene(name), size)


def _embedded_item(scene: str, kind: str, level: int, size: int, mos: float, seed: int) -> dict[str, Any]:
    return {"input": distort(_scene(scene, size), kind, level, seed), "target": float(mos)}


class EmbeddedIqa(IqaSource):
    """STAND-IN for an IQA set: embedded photos × {pristine, blur, noise, JPEG at ``levels`` levels};
    synthetic MOS = ``mos_top − level·mos_step`` (not human scores). Split by scene."""

    params: EmbeddedIqaParams

    def items(self) -> tuple[list[Loader], list[str]]:
        from bdcore.data.embedded import SCENES

        p = self.params
        loaders, names, self._scene = [], [], []
        for s, scene in enumerate(SCENES):
            rungs = [("pristine", 0)] + [(k, lv) for k in KINDS for lv in range(1, p.levels + 1)]
            for kind, level in rungs:
                mos = p.mos_top - level * p.mos_step
                loaders.append(partial(_embedded_item, scene, kind, level, p.size, mos, s * 100 + level))
                names.append(f"{scene}/{kind}{level}")
                self._scene.append(s)
        return loaders, names

    def split_indices(self, names: Sequence[str]) -> tuple[list[int], list[int]]:
        scenes = sorted(set(self._scene[: len(names)]))
        tr, _ = seeded_split(len(scenes), self.params.train_fraction, derive_seed(self.ctx.seed, "split"))
        train_scenes = {scenes[i] for i in tr}
        train = [i for i in range(len(names)) if self._scene[i] in train_scenes]
        test = [i for i in range(len(names)) if self._scene[i] not in train_scenes]
        return train, test
