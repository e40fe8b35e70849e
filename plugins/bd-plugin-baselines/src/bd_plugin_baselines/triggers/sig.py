"""SIG (Barni et al., ICIP 2019): an additive horizontal sinusoid ``v(i, j) = Δ·sin(2π·j·f/m)``.

Δ in 0–255 units (paper: 20 for training; BackdoorBench uses 40), f periods across the width m.
Resolution: f counts periods across the image, so the signal looks the same at every size.
Strength α scales Δ.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

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
    return torch.addcmul(images, s.expand(images.shape[0], 1, 1, 1), v).clamp_(0.0, 1.0)


class SIG(TriggerBase):
    """Registered ``sig`` trigger (see :func:`sig`)."""

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        p = self.params
        return sig(images, delta=p.delta, frequency=p.frequency, orientation=p.orientation, strength=strength)
