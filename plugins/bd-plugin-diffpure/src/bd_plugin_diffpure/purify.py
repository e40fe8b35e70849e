"""Batched DDNM purification of [0, 1] images: super-resolution, colorization, two-stage.

``purify_sr(x)``: y = A_s(x) (s×s average pooling), restore with DDNM; ``purify_colorize(x)``: y = grey(x),
restore; ``purify_two_stage``: SR then colorization (Lim, Hong & Lee). Images are mapped to [−1, 1]
for the diffusion model and back, clamped to [0, 1]. Sizes not divisible by s are reflect-padded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_diffpure.ddnm import ddnm_sample
from bd_plugin_diffpure.errors import DiffpureError
from bd_plugin_diffpure.operators import Colorization, Operator, SuperResolution

EpsModel = Callable[[Tensor, Tensor], Tensor]


def _sampler_kwargs(p: Any) -> dict[str, Any]:
    return dict(
        steps=p.steps,
        eta=p.eta,
        sigma_y=p.sigma_y,
        travel_length=p.travel_length,
        travel_repeat=p.travel_repeat,
        t_start=p.t_start,
        path=p.path,
    )


def purify(
    images: Tensor,
    op: Operator,
    eps_model: EpsModel,
    acp: Tensor,
    *,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    add_noise: bool = False,
    **sampler: Any,
) -> Tensor:
    """DDNM-restore ``images`` (``B×C×H×W`` in [0, 1]) from ``y = A(2x − 1)`` (+ σ_y noise if ``add_noise``).

    Processed in chunks of ``batch_size`` (batched inside a chunk). Returns ``B×C×H×W`` in [0, 1].
    """
    outs = []
    sigma_y = float(sampler.get("sigma_y", 0.0))
    for chunk in images.split(batch_size):
        x = chunk * 2 - 1
        y = op.A(x)
        if add_noise and sigma_y > 0:
            y = y + 2 * sigma_y * torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
        out = ddnm_sample(eps_model, y, op, acp, generator=generator, **sampler)
        outs.append(((out + 1) / 2).clamp(0, 1))
    return torch.cat(outs) if outs else images.clone()


def purify_sr(images: Tensor, scale: int, eps_model: EpsModel, acp: Tensor, **kw: Any) -> Tensor:
    """Super-resolution purification at factor ``scale`` (reflect-pads H, W to multiples of ``scale``)."""
    h, w = images.shape[-2:]
    ph, pw = (-h) % scale, (-w) % scale
    x = F.pad(images, (0, pw, 0, ph), mode="reflect") if (ph or pw) else images
    out = purify(x, SuperResolution(scale), eps_model, acp, **kw)
    return out[..., :h, :w]


def purify_colorize(images: Tensor, eps_model: EpsModel, acp: Tensor, **kw: Any) -> Tensor:
    """Colorization purification: grey (channel mean) then DDNM re-colorization. Needs 3 channels."""
    if images.shape[1] != 3:
        raise DiffpureError(f"ddnm-colorize needs 3-channel images, got {images.shape[1]} (use channels = 3)")
    return purify(images, Colorization(), eps_model, acp, **kw)


def purify_two_stage(images: Tensor, scale: int, eps_model: EpsModel, acp: Tensor, **kw: Any) -> Tensor:
    """Stage 1 SR (``scale``) then stage 2 colorization."""
    return purify_colorize(purify_sr(images, scale, eps_model, acp, **kw), eps_model, acp, **kw)


def select_scale(
    classify: Callable[[Tensor], Tensor],
    clean: Tensor,
    labels: Tensor,
    adversarial: Tensor,
    purify_at: Callable[[Tensor, int], Tensor],
    scales: tuple[int, ...],
    max_clean_drop: float,
) -> tuple[int, dict[int, tuple[float, float]]]:
    """The paper's scale selection, step (1): for each scale, identification accuracy on purified clean and
    purified adversarial samples; pick the best adversarial accuracy among scales whose clean accuracy
    drops by ≤ ``max_clean_drop`` versus the unpurified clean accuracy (else the best clean accuracy).
    Step (2), the visual inspection, is left to the user (see README). Returns (scale, {s: (clean, adv)})."""
    with torch.no_grad():
        base = float((classify(clean).argmax(1) == labels).float().mean())
        table: dict[int, tuple[float, float]] = {}
        for s in scales:
            c = float((classify(purify_at(clean, s)).argmax(1) == labels).float().mean())
            a = float((classify(purify_at(adversarial, s)).argmax(1) == labels).float().mean())
            table[s] = (c, a)
    ok = [s for s in scales if base - table[s][0] <= max_clean_drop]
    best = max(ok, key=lambda s: (table[s][1], table[s][0])) if ok else max(scales, key=lambda s: table[s][0])
    return best, table
