"""Noise schedule and DDNM's sampling schedule (with time travel).

ᾱ comes from diffusers' :class:`DDPMScheduler` (linear β 1e-4 → 0.02, T = 1000: DDNM's setting).
``get_schedule_jump`` is code-exact with wyhuai/DDNM (`guided_diffusion/diffusion.py`); diffusers has
no time-travel schedule, hence hand-written.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor


def alphas_cumprod(
    num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, beta_schedule: str = "linear"
) -> Tensor:
    """ᾱ_t for t = 0..T−1 (float64, length T) from diffusers' DDPMScheduler."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(
        num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end, beta_schedule=beta_schedule
    )
    return sched.alphas_cumprod.to(torch.float64)


def alpha_at(acp: Tensor, t: int) -> float:
    """DDNM's ``compute_alpha``: ᾱ_t, with ᾱ_{−1} = 1 (the cumprod padded with a leading 1)."""
    return 1.0 if t < 0 else float(acp[t])


def get_schedule_jump(t_sampling: int, travel_length: int, travel_repeat: int) -> list[int]:
    """DDNM's time-travel schedule on the sampling grid 0..t_sampling−1, ending in −1.

    For j in 0, l, 2l, … < T−l mark ``r − 1`` jumps; walking t down from T−1, on reaching a marked t
    go back up ``l`` steps. (100, 1, 1) → 101 points (no travel); (100, 2, 2) → 297 points.
    """
    if t_sampling < 1 or travel_length < 1 or travel_repeat < 1:
        raise ValueError("t_sampling, travel_length and travel_repeat must be >= 1")
    jumps = {j: travel_repeat - 1 for j in range(0, t_sampling - travel_length, travel_length)}
    t = t_sampling
    ts: list[int] = []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(travel_length):
                t += 1
                ts.append(t)
    ts.append(-1)
    return ts


def sampling_pairs(
    num_train_timesteps: int,
    steps: int,
    travel_length: int = 1,
    travel_repeat: int = 1,
    t_start: int | None = None,
) -> list[tuple[int, int]]:
    """(i, j) pairs of training timesteps (skip = T // steps; j = −1 at the end).

    ``t_start`` (purification-style start, t* < T): drop the leading pairs until i ≤ t_start, so the
    sampler starts from a partly noised image instead of pure noise.
    """
    if steps < 1 or steps > num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}, got {steps}")
    skip = num_train_timesteps // steps
    times = [t * skip if t >= 0 else -1 for t in get_schedule_jump(steps, travel_length, travel_repeat)]
    pairs = list(itertools.pairwise(times))
    if t_start is not None:
        first = next((k for k, (i, _) in enumerate(pairs) if i <= t_start), len(pairs))
        pairs = pairs[first:]
    return pairs
