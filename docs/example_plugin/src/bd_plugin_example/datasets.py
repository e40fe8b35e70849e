"""The ``shapes`` data source: seeded synthetic images, no files needed."""

from __future__ import annotations

from typing import Any

import torch
from bdcore.context import Context
from bdcore.data.dataset import TensorDataset
from torch import Tensor

from bd_plugin_example.params import ShapesParams


# --8<-- [start:dataset]
def shapes(count: int, size: int, rectangles: int, generator: torch.Generator) -> Tensor:
    """``count×3×size×size`` images in [0, 1]: a smooth colour ramp plus ``rectangles`` flat
    rectangles each, all drawn from ``generator`` (batched: no per-pixel Python loop)."""
    ramp = torch.linspace(0, 1, size)
    corners = torch.rand(count, 3, 2, generator=generator)
    # a vertical ramp from one colour plus a horizontal one from another: count×3×size×size
    images = 0.5 * (corners[..., :1, None] * (1 - ramp)[:, None] + corners[..., 1:, None] * ramp)
    rows, cols = torch.arange(size)[:, None], torch.arange(size)[None, :]
    for _ in range(rectangles):
        lo = torch.randint(0, size // 2, (count, 2), generator=generator)
        hi = lo + torch.randint(size // 8 + 1, size // 2 + 1, (count, 2), generator=generator)
        inside = (
            (rows >= lo[:, :1, None]) & (rows < hi[:, :1, None]) & (cols >= lo[:, 1:, None]) & (cols < hi[:, 1:, None])
        )
        colour = torch.rand(count, 3, 1, 1, generator=generator)
        images = torch.where(inside[:, None], colour, images)
    return images.clamp(0.0, 1.0)


class Shapes:
    """Input = target = a synthetic image: an image-to-image task a victim learns in seconds.

    ``splits()`` returns ``{"train": Dataset, "test": Dataset}``; a sample is a dict with
    ``"input"`` (``C×H×W`` float in [0, 1]), ``"target"`` and ``"index"``.
    """

    def __init__(self, params: ShapesParams, ctx: Context | None = None) -> None:
        ctx = ctx or Context()
        images = shapes(params.count, params.size, params.rectangles, ctx.generator("shapes"))
        n_train = min(max(1, round(params.count * params.train_fraction)), params.count - 1)
        self._splits = {
            "train": TensorDataset(images[:n_train], images[:n_train]),
            "test": TensorDataset(images[n_train:], images[n_train:]),
        }

    def splits(self) -> dict[str, Any]:
        return self._splits


# --8<-- [end:dataset]
