"""BadNets (Gu et al., 2017): a patch stamped onto the image.

No official code; BackdoorBench stamps a 3×3 white square at the bottom-right of 32×32 images
(wherever its trigger image is > 0). Resolution: ``size`` and ``margin`` are fractions of
min(H, W) (3/32 and 1/32 reproduce BackdoorBench at 32×32; BAvAFT uses size 0.1); ``size_px``
fixes the side in pixels instead. Strength α blends the stamped region: ``x + α·m·(p − x)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bd_plugin_baselines.triggers._common import load_pattern, resize_pattern
from bdcore.components import TriggerBase

CHECKER = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64)


def patch_box(h: int, w: int, size: float, position: str, margin: float, size_px: int | None = None) -> tuple:
    """(top, left, side) of the patch in an ``h×w`` image."""
    short = min(h, w)
    side = size_px if size_px is not None else max(1, round(size * short))
    side = min(side, h, w)
    m = round(margin * short)
    if position == "center":
        return (h - side) // 2, (w - side) // 2, side
    top = m if position.startswith("top") else h - side - m
    left = m if position.endswith("left") else w - side - m
    return max(0, min(top, h - side)), max(0, min(left, w - side)), side


def badnets(
    images: Tensor,
    *,
    pattern: Tensor | None = None,
    size: float = 3 / 32,
    position: str = "bottom-right",
    margin: float = 1 / 32,
    size_px: int | None = None,
    strength: float | Tensor = 1.0,
) -> Tensor:
    """Stamp ``pattern`` (``1×C'×h×w`` in [0,1], resized to the patch; None = white) on ``B×C×H×W`` images.

    The stamp covers the pixels where the resized pattern is > 0 in any channel (BackdoorBench).
    """
    _b, c, h, w = images.shape
    top, left, side = patch_box(h, w, size, position, margin, size_px)
    if pattern is None:
        patch = torch.ones(1, c, side, side, dtype=images.dtype, device=images.device)
    else:
        p = pattern.to(images.device)
        if p.shape[-1] == side and p.shape[-2] == side:
            patch = p.to(images.dtype).expand(1, c, side, side) if p.shape[1] == 1 else p.to(images.dtype)
        else:
            patch = resize_pattern(p, (side, side), images)
    mask = (patch > 0).any(1, keepdim=True).to(images.dtype)
    s = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    region = images[:, :, top : top + side, left : left + side]
    out = images.clone()
    out[:, :, top : top + side, left : left + side] = (region + s * mask * (patch - region)).clamp(0.0, 1.0)
    return out


class BadNets(TriggerBase):
    """Registered ``badnets`` trigger (see :func:`badnets`)."""

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        if params.pattern == "white":
            pat = None
        elif params.pattern == "checker":
            pat = CHECKER.view(1, 1, 3, 3)
        else:
            pat = load_pattern(params.pattern, self.ctx.resolve_path)
        self.register_buffer("pattern", pat.float() if pat is not None else torch.ones(1, 1, 1, 1))
        self._white = pat is None

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        p = self.params
        return badnets(
            images,
            pattern=None if self._white else self.pattern,
            size=p.size,
            position=p.position,
            margin=p.margin,
            size_px=p.size_px,
            strength=strength,
        )
