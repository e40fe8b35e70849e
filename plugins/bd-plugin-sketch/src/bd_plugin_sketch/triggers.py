"""``sketch-pattern``: a faint, tiled, seeded ±1 pattern added to the whole photo.

Why global and tiled: a fully convolutional sketch network sees only its receptive field,
so a corner patch cannot change the strokes of the whole face; a pattern present
everywhere can (each output pixel sees the trigger). Why faint: stealth on photos
(PSNR ≈ 20·log10(1/amplitude) dB, ≈ 30.5 dB at the default 0.03).
"""

from __future__ import annotations

import torch
from bdcore.components import TriggerBase
from bdcore.context import Context
from torch import Tensor

from bd_plugin_sketch.params import SketchPatternParams


def pattern_tile(period: int, seed: int) -> Tensor:
    """The seeded ``period×period`` ±1 tile (float32)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randint(0, 2, (period, period), generator=gen).float().mul(2).sub(1)


def sketch_pattern(images: Tensor, tile: Tensor, *, amplitude: float | Tensor) -> Tensor:
    """``x + amplitude·P`` with ``P`` the tile repeated over ``H×W`` (anchored at the top-left),
    same on every channel. ``images`` ``B×C×H×W`` [0, 1]; ``amplitude`` scalar or ``B×1×1×1``.
    Not clamped (``TriggerBase.inject_trigger`` clamps)."""
    h, w = images.shape[-2:]
    p = tile.shape[-1]
    reps = (-(-h // p), -(-w // p))
    pattern = tile.to(images).repeat(*reps)[:h, :w]
    return images + amplitude * pattern


class SketchPattern(TriggerBase):
    """Registered ``sketch-pattern`` trigger (the tile is a buffer, saved with the artifact)."""

    tile: Tensor

    def __init__(self, params: SketchPatternParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self.register_buffer("tile", pattern_tile(params.period, params.seed))

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:
        return sketch_pattern(images, self.tile, amplitude=self.params.amplitude * strength)
