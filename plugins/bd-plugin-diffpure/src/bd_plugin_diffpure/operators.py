"""DDNM degradation operators A and their pseudo-inverses A⁺ (batched, any value range).

Code-exact with wyhuai/DDNM's simplified path (`guided_diffusion/diffusion.py`):
super-resolution is ``A = s×s average pooling``, ``A⁺ = MeanUpsample`` (nearest replication ×s,
the exact Moore–Penrose inverse since A·Aᵀ = I/s²); colorization is ``A = mean over R, G, B``
(kept as one channel here), ``A⁺ = replicate to 3 channels``. Hand-written: no library ships
these as a (A, A⁺) pair, and they are one line each.
"""

from __future__ import annotations

from typing import Protocol

import torch.nn.functional as F
from torch import Tensor


class Operator(Protocol):
    """A linear degradation with its pseudo-inverse: ``A(x)`` and ``A_pinv(y)``."""

    def A(self, x: Tensor) -> Tensor: ...  # noqa: N802 - the paper's name

    def A_pinv(self, y: Tensor) -> Tensor: ...  # noqa: N802


def sr_down(x: Tensor, scale: int) -> Tensor:
    """A for super-resolution: ``B×C×H×W`` → ``B×C×(H/s)×(W/s)`` s×s average pooling."""
    return F.avg_pool2d(x, kernel_size=scale, stride=scale)


def sr_up(y: Tensor, scale: int) -> Tensor:
    """A⁺ for super-resolution: nearest replication ×s (``B×C×h×w`` → ``B×C×(h·s)×(w·s)``)."""
    return y.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


def color_to_grey(x: Tensor) -> Tensor:
    """A for colorization: ``B×3×H×W`` → ``B×1×H×W`` channel mean (DDNM's ``color2gray`` with coef 1/3)."""
    return x.mean(dim=1, keepdim=True)


def grey_to_color(y: Tensor) -> Tensor:
    """A⁺ for colorization: ``B×1×H×W`` → ``B×3×H×W`` replication (DDNM's ``gray2color``)."""
    return y.expand(-1, 3, -1, -1).contiguous()


class SuperResolution:
    """A = s×s average pooling, A⁺ = replicate ×s. H and W must be multiples of s."""

    def __init__(self, scale: int) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale = int(scale)

    def A(self, x: Tensor) -> Tensor:  # noqa: N802
        return sr_down(x, self.scale)

    def A_pinv(self, y: Tensor) -> Tensor:  # noqa: N802
        return sr_up(y, self.scale)


class Colorization:
    """A = mean of the 3 channels, A⁺ = replicate to 3 channels."""

    def A(self, x: Tensor) -> Tensor:  # noqa: N802
        return color_to_grey(x)

    def A_pinv(self, y: Tensor) -> Tensor:  # noqa: N802
        return grey_to_color(y)


def null_space_project(x0: Tensor, y: Tensor, op: Operator, lam: float | Tensor = 1.0) -> Tensor:
    """DDNM's range/null-space correction ``x̂0 = x0 − λ·A⁺(A x0 − y)`` (λ = 1 for σ_y = 0)."""
    return x0 - lam * op.A_pinv(op.A(x0) - y)
