"""SIG (Barni et al., ICIP 2019): an additive horizontal sinusoid ``v(i, j) = Δ·sin(2π·j·f/m)``.

Δ in 0–255 units (paper: 20 for training; BackdoorBench uses 40), f periods across the width m.
Resolution: f counts periods across the image, so the signal looks the same at every size.
Strength α scales Δ. BackdoorBench (``utils/bd_img_transform/sig.py: sigTriggerAttack``) builds the
same signal per image in a Python loop on uint8 images; here it is built once per (H, W, dtype,
device) and added to the batch in one fused op, clamped in place.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bd_plugin_baselines.triggers._common import PatternCache, add_pattern_clamped
from bdcore.components import TriggerBase


def sig_pattern(h: int, w: int, *, delta: float, frequency: float, orientation: str, like: Tensor) -> Tensor:
    """``1×1×H×W`` signal in [0,1] units: Δ/255·sin(2π·j·f/m) along j (columns, or rows if vertical)."""
    n = w if orientation == "horizontal" else h
    j = torch.arange(n, dtype=torch.float64, device=like.device)
    v = (delta / 255.0) * torch.sin(2 * math.pi * j * frequency / n)
    v = v.view(1, 1, 1, n).expand(1, 1, h, n) if orientation == "horizontal" else v.view(1, 1, n, 1).expand(1, 1, n, w)
    return v.to(like.dtype)


def sig(
    images: Tensor,
    *,
    delta: float = 20.0,
    frequency: float = 6.0,
    orientation: str = "horizontal",
    strength: float | Tensor = 1.0,
) -> Tensor:
    """Add the SIG signal to every channel of ``B×C×H×W`` images in [0, 1]; clamped."""
    s = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    v = sig_pattern(
        images.shape[-2], images.shape[-1], delta=delta, frequency=frequency, orientation=orientation, like=images
    )
    return add_pattern_clamped(images, v, s)


class SIG(TriggerBase):
    """Registered ``sig`` trigger (see :func:`sig`); the signal is cached per (H, W, dtype, device)."""

    output_in_range = True

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        self._patterns: PatternCache[Tensor] = PatternCache()

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        p = self.params
        h, w = images.shape[-2:]
        v = self._patterns.get(
            (h, w, images.dtype, images.device),
            lambda: sig_pattern(h, w, delta=p.delta, frequency=p.frequency, orientation=p.orientation, like=images),
        )
        return add_pattern_clamped(images, v, strength)
