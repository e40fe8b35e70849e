"""The dataset every source builds on: items → seeded crops and flips → sample dicts.

A *sample* is a dict with ``"input"`` (``C×H×W`` float in [0, 1]), ``"target"``
(an image, a float score or an int class) and ``"index"``. Image-valued fields
are co-cropped and co-flipped, so paired data stay aligned; triggers are applied
later by the engine, on batches, *after* these augmentations.

Randomness is a pure function of (seed, index): :meth:`AugmentedDataset.get` takes
the per-sample seed, so a resumed run sees exactly the same crops.

Items are decoded lazily (in loader workers when there are some) and kept in a cache
bounded in bytes (:meth:`AugmentedDataset.set_cache_budget`), so a 70k-image folder
streams while a small set is decoded once. An item that cannot be read when it is met
is reported by name and replaced by the next readable item (deterministically), so one
bad file does not end a long run.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch.utils.data import Dataset

from bdcore.data.images import to_tensor
from bdcore.errors import DataError

log = logging.getLogger("bdcore")

#: An item loads its raw fields: image fields are ``H×W×C`` uint8 arrays,
#: others are numbers.
Loader = Callable[[], dict[str, Any]]


@attrs.frozen
class Augment:
    """Crop and flip settings. ``crop`` is the side of a square crop (None: whole image).

    ``test_crop`` overrides ``crop`` for test items: None keeps ``crop``, 0 = whole images
    (train on crops, evaluate on full Kodak frames)."""

    crop: int | None = None
    flip: bool = False
    test_crops: int = 1
    test_crop: int | None = None


class AugmentedDataset(Dataset[dict[str, Any]]):
    """Items with seeded random crops (training) or fixed crops (testing).

    Args:
        loaders: one callable per item returning its raw fields.
        augment: crop/flip settings.
        train: random crops and flips when True; ``test_crops`` fixed crops
            per item (evenly spaced along the diagonal) when False.
        repeats: a training epoch visits every item this many times.
        cache: keep decoded items in memory, up to ``cache_bytes`` (None: no bound).
        names: a display name per item (file name), for reports and errors.
        cache_bytes: the cache's budget in bytes of decoded arrays; once full, further items are
            decoded every time they are met (the engine sets it from ``[data] cache_mb``).
    """

    def __init__(
        self,
        loaders: Sequence[Loader],
        augment: Augment,
        *,
        train: bool,
        repeats: int = 1,
        cache: bool = True,
        names: Sequence[str] | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        self.loaders = list(loaders)
        self.augment = augment
        self.train = train
        self.repeats = max(1, repeats) if train else 1
        self.per_item = 1 if train else max(1, augment.test_crops)
        self.cache: dict[int, dict[str, Any]] | None = {} if cache else None
        self.cache_bytes = cache_bytes
        self.cached_bytes = 0
        self.names = list(names) if names is not None else [str(i) for i in range(len(self.loaders))]
        #: items found unreadable in this process: item -> the error message.
        self.unreadable: dict[int, str] = {}
        #: a text file that gets one line per unreadable item (set by the engine: the run folder's).
        self.unreadable_log: Path | None = None
        #: inputs that replace some items' own (:meth:`with_inputs`): item -> H×W×C float32 in [0, 1].
        self.inputs: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.loaders) * self.repeats * self.per_item

    def set_cache_budget(self, nbytes: int | None) -> None:
        """Bound the decoded-item cache to ``nbytes`` (None: unbounded; 0: no cache). Items already
        cached beyond a smaller budget are dropped."""
        self.cache_bytes = nbytes
        if self.cache is not None and nbytes is not None and self.cached_bytes > nbytes:
            self.cache.clear()
            self.cached_bytes = 0

    def with_inputs(self, inputs: Mapping[int, np.ndarray]) -> AugmentedDataset:
        """A view of this dataset whose items in ``inputs`` (item → ``H×W×C`` float32 in [0, 1], the
        item's own size) load that array as their ``"input"``; crops, flips and every other field are
        unchanged. The decoded-item cache is shared (it holds the items' own fields)."""
        view = copy.copy(self)
        view.inputs = {**self.inputs, **inputs}
        return view

    def raw(self, item: int) -> dict[str, Any]:
        """Item ``item``'s decoded fields (cached while the budget allows), with its input replaced
        when :meth:`with_inputs` gave one.

        Raises:
            DataError: the item cannot be read (the message names its file).
        """
        fields = self._decoded(item)
        replaced = self.inputs.get(item)
        return fields if replaced is None else {**fields, "input": replaced}

    def _decoded(self, item: int) -> dict[str, Any]:
        if self.cache is not None and item in self.cache:
            return self.cache[item]
        fields = self.loaders[item]()
        if self.cache is not None:
            arrays = {id(v): v for v in fields.values() if isinstance(v, np.ndarray)}  # input may be target
            size = sum(v.nbytes for v in arrays.values())
            if self.cache_bytes is None or self.cached_bytes + size <= self.cache_bytes:
                self.cache[item] = fields
                self.cached_bytes += size
        return fields

    def readable(self, item: int) -> tuple[int, dict[str, Any]]:
        """``(item, fields)``, or, when ``item`` cannot be read, the next item (cyclically) that can:
        the bad one is logged by name once per process and appended to :attr:`unreadable_log`.

        Raises:
            DataError: no item of this dataset can be read.
        """
        n = len(self.loaders)
        for k in range(n):
            candidate = (item + k) % n
            if candidate in self.unreadable:
                continue
            try:
                return candidate, self.raw(candidate)
            except DataError as exc:
                self._report_unreadable(candidate, str(exc))
        raise DataError(f"none of the {n} items of this dataset can be read (first: {self.unreadable.get(item)})")

    def _report_unreadable(self, item: int, message: str) -> None:
        self.unreadable[item] = message
        log.warning("unreadable item %s, replaced by the next readable one: %s", self.names[item], message)
        if self.unreadable_log is not None:
            from bdcore.io.atomic import append_line

            append_line(self.unreadable_log, f"{self.names[item]}\t{message}")

    def get(self, index: int, seed: int | None = None) -> dict[str, Any]:
        """Sample ``index``; ``seed`` drives the random crop/flip (training only)."""
        item = (index // self.per_item) % len(self.loaders)
        sub = index % self.per_item
        item, fields = self.readable(item)
        images = {k: v for k, v in fields.items() if isinstance(v, np.ndarray) and v.ndim == 3}
        h, w = next(iter(images.values())).shape[:2] if images else (0, 0)
        crop = self.augment.crop
        if not self.train and self.augment.test_crop is not None:
            crop = self.augment.test_crop or None
        rng = np.random.default_rng(seed) if (self.train and seed is not None) else None
        y0 = x0 = 0
        ch, cw = h, w
        if crop is not None and images:
            ch, cw = min(crop, h), min(crop, w)
            if rng is not None:
                y0 = int(rng.integers(0, h - ch + 1))
                x0 = int(rng.integers(0, w - cw + 1))
            else:
                frac = 0.5 if self.per_item == 1 else sub / (self.per_item - 1)
                y0 = round((h - ch) * frac)
                x0 = round((w - cw) * frac)
        flip = bool(rng is not None and self.augment.flip and rng.random() < 0.5)
        out: dict[str, Any] = {"index": index}
        for key, value in fields.items():
            if key in images:
                if value.shape[:2] != (h, w):
                    raise ValueError(f"{self.names[item]}: field {key!r} is {value.shape[:2]}, expected {(h, w)}")
                arr = value[y0 : y0 + ch, x0 : x0 + cw]
                if flip:
                    arr = arr[:, ::-1]
                out[key] = to_tensor(arr)
            else:
                out[key] = value
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.get(index, None)

    def name_of(self, index: int) -> str:
        return self.names[(index // self.per_item) % len(self.loaders)]


class TensorDataset(Dataset[dict[str, Any]]):
    """Samples held as tensors (``inputs`` ``N×C×H×W``, ``targets`` ``N…``): for tests and toys."""

    def __init__(self, inputs: torch.Tensor, targets: Any) -> None:
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def get(self, index: int, seed: int | None = None) -> dict[str, Any]:  # noqa: ARG002
        return {"input": self.inputs[index], "target": self.targets[index], "index": index}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.get(index)


def seeded_split(n: int, train_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded permutation of ``range(n)`` cut into train and test indices (each non-empty)."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_train = min(max(1, round(n * train_fraction)), n - 1) if n > 1 else n
    return sorted(order[:n_train]), sorted(order[n_train:])
