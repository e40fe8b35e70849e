"""DDNM sampler (Wang, Yu & Zhang, ICLR 2023): DDIM steps with a null-space projection.

Per step i → j: ε = model(x_i, i); x0 = (x_i − √(1−ᾱ_i)·ε)/√ᾱ_i; x̂0 = x0 − λ·A⁺(A x0 − y); then
``x_j = √ᾱ_j·x̂0 + γ·√(1−ᾱ_j)·(η·z + √(1−η²)·ε)``. Images are in [−1, 1] here (σ_y is doubled
internally, as DDNM does). Two paths:

* ``"svd"`` (default, = DDNM's ``ddnm_diffusion`` and the paper's equation): γ = 1 when σ_y = 0.
* ``"simplified"`` (code-exact with ``simplified_ddnm_plus``): σ_t = √(1 − ᾱ_j²) (sic) and
  γ = √(σ_t² − (ᾱ_j σ_y)²), so for σ_y = 0 the noise carries an extra factor √(1−ᾱ_j²).

With σ_y > 0 (the noisy-y variant, DDNM+ Eq. 17): λ = 1, γ as above if σ_t ≥ ᾱ_j σ_y, else
λ = σ_t/(ᾱ_j σ_y), γ = 0. On the ``"svd"`` path γ is divided by σ_t so σ_y = 0 gives γ = 1.

Time travel (``travel_length`` l, ``travel_repeat`` r) re-noises from the last x0 prediction:
``x_j = √ᾱ_j·x0 + √(1−ᾱ_j)·z``. The loop is batched; the model is any ``eps_model(x, t) → ε``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from bd_plugin_diffpure.operators import Operator
from bd_plugin_diffpure.schedule import alpha_at, sampling_pairs

EpsModel = Callable[[Tensor, Tensor], Tensor]


def _lambda_gamma(at_next: float, sigma_y: float, path: str) -> tuple[float, float]:
    sigma_t = math.sqrt(max(1.0 - at_next**2, 0.0))
    if sigma_t >= at_next * sigma_y:
        lam, gamma = 1.0, math.sqrt(max(sigma_t**2 - (at_next * sigma_y) ** 2, 0.0))
    else:
        lam, gamma = sigma_t / (at_next * sigma_y), 0.0
    if path == "svd":
        gamma = gamma / sigma_t if sigma_t > 0 else 1.0
    return lam, gamma


@torch.no_grad()
def ddnm_sample(
    eps_model: EpsModel,
    y: Tensor,
    op: Operator,
    acp: Tensor,
    *,
    steps: int = 100,
    eta: float = 0.85,
    sigma_y: float = 0.0,
    travel_length: int = 1,
    travel_repeat: int = 1,
    t_start: int | None = None,
    path: Literal["svd", "simplified"] = "svd",
    generator: torch.Generator | None = None,
    x_init: Tensor | None = None,
) -> Tensor:
    """Restore ``x`` with ``A x = y`` (σ_y = 0) from a diffusion prior.

    Args:
        eps_model: ``(x B×C×H×W in [−1,1]-scale, t B long) → ε`` of the same shape.
        y: the measurement, in the [−1, 1] image scale (``A`` applied to a [−1, 1] image).
        op: the operator (A, A⁺).
        acp: ᾱ_t, t = 0..T−1.
        steps: sampling-grid size (skip = T // steps); DDNM uses 100.
        eta: DDNM's η (0.85).
        sigma_y: measurement noise std in [0, 1] units (doubled internally, as DDNM does).
        t_start: start from a partly noised ``A⁺y`` at this timestep (purification-style) instead
            of pure noise at T; None = DDNM's full sampling.
        path: ``"svd"`` or ``"simplified"`` (see module doc).
        generator: for the initial noise and every z (CPU generator; noise is moved to y's device).
        x_init: the image to noise at ``t_start`` (default ``A⁺y``).

    Returns:
        ``B×C×H×W`` restored image in [−1, 1] scale (unclamped).
    """
    sy = 2.0 * sigma_y
    T = acp.shape[0]
    pairs = sampling_pairs(T, steps, travel_length, travel_repeat, t_start)
    base = op.A_pinv(y) if x_init is None else x_init
    shape, dev, dt = base.shape, y.device, y.dtype

    def randn() -> Tensor:
        return torch.randn(shape, generator=generator, dtype=dt).to(dev)

    if not pairs:
        return base.clone()
    t0 = pairs[0][0]
    if t_start is None:
        x = randn()
    else:
        a0 = alpha_at(acp, t0)
        x = math.sqrt(a0) * base + math.sqrt(1.0 - a0) * randn()
    x0_last = base
    for i, j in pairs:
        at, at_next = alpha_at(acp, i), alpha_at(acp, j)
        if j < i:
            t = torch.full((shape[0],), i, device=dev, dtype=torch.long)
            eps = eps_model(x, t)
            x0 = (x - math.sqrt(1.0 - at) * eps) / math.sqrt(at)
            lam, gamma = _lambda_gamma(at_next, sy, path)
            x0_hat = x0 - lam * op.A_pinv(op.A(x0) - y)
            c1 = math.sqrt(1.0 - at_next) * eta
            c2 = math.sqrt(1.0 - at_next) * math.sqrt(1.0 - eta**2)
            x = math.sqrt(at_next) * x0_hat + gamma * (c1 * randn() + c2 * eps)
            x0_last = x0_hat
        else:  # time travel back up: re-noise the latest x0 prediction
            x = math.sqrt(at_next) * x0_last + math.sqrt(1.0 - at_next) * randn()
    return x
