"""Batching: deterministic epochs, resumable at any step, no worker processes.

The order of epoch ``e`` is a permutation seeded by ``(seed, e)`` and each sample's
augmentation seed is ``(seed, e, index)``, so step ``s`` of a run is the same batch
whether or not the run was interrupted before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

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
