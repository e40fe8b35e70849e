"""The defender's clean data: a seeded subset of the clean training set, as endless batches."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import Subset

from bdcore.context import DefenseContext, derive_seed


class _GetSubset(Subset):  # type: ignore[type-arg]
    """A ``Subset`` that keeps the parent's seeded ``get(index, seed)`` augmentation."""

    def get(self, index: int, seed: int | None) -> dict[str, Any]:
        parent = self.dataset
        i = int(self.indices[index])
        getter = getattr(parent, "get", None)
        sample = dict(getter(i, seed)) if getter is not None else dict(parent[i])
        sample["index"] = i
        return sample


def clean_subset(ctx: DefenseContext, fraction: float, salt: str) -> _GetSubset:
    """A seeded ``fraction`` of the defender's clean training set (at least one sample)."""
    n = len(ctx.clean_train)
    if n == 0:
        raise ValueError("the defender's clean training set is empty")
    k = max(1, min(n, math.ceil(fraction * n)))
    rng = np.random.default_rng(derive_seed(ctx.ctx.seed, "defense-subset", salt))
    idx = np.sort(rng.permutation(n)[:k])
    return _GetSubset(ctx.clean_train, idx.tolist())


def subset_batches(ctx: DefenseContext, subset: Any, salt: str) -> Iterator[dict[str, Any]]:
    """Endless seeded batches of ``subset`` on the run's device, through the run's loader workers."""
    return ctx.batches(salt=salt, dataset=subset)
