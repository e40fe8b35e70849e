"""Batching: deterministic epochs, resumable at any step.

The order of epoch ``e`` is a permutation seeded by ``(seed, e)`` and each sample's
augmentation seed is ``(seed, e, index)``, so step ``s`` of a run is the same batch
whether or not the run was interrupted before it, and whichever process decodes it.

:func:`batch_at` is the definition of that order (one process, one batch).
:class:`StepBatchSampler` yields the same batches as ``(index, seed)`` lists for a
``torch.utils.data.DataLoader`` with worker processes (:mod:`bdcore.data.loader`);
a test holds the two to bit-identical batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from bdcore.context import derive_seed


def collate(samples: list[dict[str, Any]], device: str | torch.device = "cpu") -> dict[str, Any]:
    """Stack sample dicts into a batch dict (tensors stacked, numbers to tensors)."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values).to(device)
        elif isinstance(first, bool | int | np.integer):
            batch[key] = torch.tensor(values, dtype=torch.int64, device=device)
        elif isinstance(first, float | np.floating):
            batch[key] = torch.tensor(values, dtype=torch.float32, device=device)
        else:
            batch[key] = values
    return batch


def _get(dataset: Any, index: int, seed: int | None) -> dict[str, Any]:
    getter = getattr(dataset, "get", None)
    sample = getter(index, seed) if getter is not None else dict(dataset[index])
    sample.setdefault("index", index)
    return sample  # type: ignore[no-any-return]


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng(derive_seed(seed, "epoch", epoch)).permutation(n)


def batch_at(
    dataset: Any, step: int, batch_size: int, *, seed: int, device: str = "cpu", shuffle: bool = True
) -> dict[str, Any]:
    """The batch of training step ``step`` (0-based): epochs of ``len(dataset)//batch_size``
    full batches (the last partial batch of an epoch is dropped)."""
    n = len(dataset)
    bs = min(batch_size, n)
    per_epoch = max(1, n // bs)
    epoch, pos = divmod(step, per_epoch)
    order = epoch_order(n, seed, epoch, shuffle)
    idx = order[pos * bs : (pos + 1) * bs]
    samples = [_get(dataset, int(i), derive_seed(seed, "aug", epoch, int(i))) for i in idx]
    return collate(samples, device)


def endless_batches(
    dataset: Any, batch_size: int, *, seed: int, device: str = "cpu", shuffle: bool = True, start: int = 0
) -> Iterator[dict[str, Any]]:
    step = start
    while True:
        yield batch_at(dataset, step, batch_size, seed=seed, device=device, shuffle=shuffle)
        step += 1


def eval_batches(
    dataset: Any, batch_size: int, *, device: str = "cpu", limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Every sample once, in order, deterministic (no random augmentation)."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for start in range(0, n, batch_size):
        samples = [_get(dataset, i, None) for i in range(start, min(start + batch_size, n))]
        yield collate(samples, device)


#: One sample request of a batch: (index in the dataset, per-sample augmentation seed or None).
SampleKey = tuple[int, int | None]


class StepBatchSampler(Sampler[list[SampleKey]]):
    """The batches of training steps ``start, start + 1, …`` (up to ``stop``, or endless).

    Step ``s`` is exactly :func:`batch_at`'s: epochs of ``len(dataset) // batch_size`` full
    batches (the last partial batch is dropped), epoch ``e`` ordered by a permutation seeded by
    ``(seed, e)``, sample ``i`` of epoch ``e`` augmented with seed ``(seed, "aug", e, i)``.
    ``start`` may be changed between iterations (a loader that restarts at a checkpoint's step).
    """

    def __init__(
        self, size: int, batch_size: int, *, seed: int, shuffle: bool = True, start: int = 0, stop: int | None = None
    ) -> None:
        if size <= 0:
            raise ValueError("cannot draw batches from an empty dataset")
        self.size = size
        self.batch_size = min(batch_size, size)
        self.per_epoch = max(1, size // self.batch_size)
        self.seed = seed
        self.shuffle = shuffle
        self.start = start
        self.stop = stop

    def __iter__(self) -> Iterator[list[SampleKey]]:
        step, epoch, order = self.start, -1, np.arange(0)
        bs = self.batch_size
        while self.stop is None or step < self.stop:
            e, pos = divmod(step, self.per_epoch)
            if e != epoch:  # one permutation per epoch, not per step
                epoch, order = e, epoch_order(self.size, self.seed, e, self.shuffle)
            yield [(int(i), derive_seed(self.seed, "aug", epoch, int(i))) for i in order[pos * bs : (pos + 1) * bs]]
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an endless StepBatchSampler has no length")
        return max(0, self.stop - self.start)


class EvalBatchSampler(Sampler[list[SampleKey]]):
    """Every sample once, in order, in batches of ``batch_size`` (the last one may be short); no augmentation
    seed (test samples use their fixed crops), as :func:`eval_batches`."""

    def __init__(self, size: int, batch_size: int) -> None:
        self.size = size
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for start in range(0, self.size, self.batch_size):
            yield [(i, None) for i in range(start, min(start + self.batch_size, self.size))]

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)


class SeededSamples(Dataset[dict[str, Any]]):
    """A dataset addressed by :data:`SampleKey`: ``view[(i, seed)]`` is sample ``i`` augmented with ``seed``
    (through the dataset's ``get(index, seed)`` when it has one), as :func:`batch_at` draws it."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:  # type: ignore[override]
        index, seed = key
        return _get(self.dataset, index, seed)
