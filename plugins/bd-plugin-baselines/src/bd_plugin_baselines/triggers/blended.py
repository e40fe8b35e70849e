"""Blended (Chen et al., 2017): ``x_p = (1 − a)·x + a·k`` with a pattern image or seeded noise.

Defaults follow BackdoorBench (a = 0.2) and BAIQA's BackdoorBox setting (uniform noise). Strength α
scales the blend weight: a = α·alpha. Resolution: image patterns are resized (bilinear) to H×W;
``noise`` is drawn once at ``noise_size``² from the trigger's seed and resized, so it is the same
pattern at every resolution, or — with ``noise_size`` unset — drawn at H×W itself from a generator
seeded by (seed, H, W) (BackdoorBox behaviour: per-pixel i.i.d. noise). BackdoorBench
(``utils/bd_img_transform/blended.py: blendedImageAttack.add_trigger``) computes the same
``(1 − a)·x + a·k`` per image; here the pattern is resized once per (C, H, W, dtype, device) and
blended into the batch with one fused ``lerp``, clamped in place.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bd_plugin_baselines.triggers._common import (
    PatternCache,
    load_pattern,
    resize_pattern,
    tensor_key,
    uniform_strength,
)
from bdcore.components import TriggerBase


def blended(images: Tensor, pattern: Tensor, *, alpha: float = 0.2, strength: float | Tensor = 1.0) -> Tensor:
    """Blend ``B×C×H×W`` images with ``pattern`` (``1×C×H×W`` or ``B×C×H×W``, same size) in [0, 1]."""
    s = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    pattern = pattern.to(dtype=images.dtype, device=images.device).expand_as(images)
    s0 = uniform_strength(s)
    weight: float | Tensor = alpha * s0 if s0 is not None else (alpha * s).expand(images.shape[0], 1, 1, 1)
    return torch.lerp(images, pattern, weight).clamp_(0.0, 1.0)  # one fused pass, clamped in place


def seeded_noise(seed: int, channels: int, h: int, w: int) -> Tensor:
    """Uniform [0, 1) noise ``1×C×H×W`` (float64, CPU) from ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand(1, channels, h, w, generator=g, dtype=torch.float64)


class Blended(TriggerBase):
    """Registered ``blended`` trigger (see :func:`blended`)."""

    output_in_range = True

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        seed = params.seed if params.seed is not None else int(self.ctx.generator("blended").initial_seed()) % 2**62
        self.register_buffer("seed", torch.tensor(seed, dtype=torch.int64))
        if params.pattern == "noise":
            pat = seeded_noise(seed, 3, params.noise_size, params.noise_size) if params.noise_size else None
        else:
            pat = load_pattern(params.pattern, self.ctx.resolve_path)
        self.register_buffer("pattern", (pat if pat is not None else torch.zeros(1, 3, 1, 1)).float())
        self._per_size_noise = pat is None
        self._cache: PatternCache[Tensor] = PatternCache()

    def pattern_for(self, images: Tensor) -> Tensor:
        """The ``1×C×H×W`` pattern at the images' size, device and dtype (built once per shape)."""
        _, c, h, w = images.shape

        def build() -> Tensor:
            if self._per_size_noise:
                g_seed = (int(self.seed) * 1_000_003 + h * 65_537 + w) % 2**62
                return seeded_noise(g_seed, c, h, w).to(device=images.device, dtype=images.dtype)
            return resize_pattern(self.pattern, (h, w), images)

        key = (c, h, w, images.device, images.dtype, tensor_key(self.seed), tensor_key(self.pattern))
        return self._cache.get(key, build)

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        return blended(images, self.pattern_for(images), alpha=self.params.alpha, strength=strength)
