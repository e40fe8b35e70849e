"""Golden tests: operators, null-space projection, schedule vs diffusers, one DDIM step vs diffusers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from bd_plugin_diffpure.ddnm import ddnm_sample
from bd_plugin_diffpure.operators import Colorization, SuperResolution, null_space_project
from bd_plugin_diffpure.schedule import alphas_cumprod, get_schedule_jump, sampling_pairs


def _x(b=3, c=3, h=16, w=16, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("op", [SuperResolution(2), SuperResolution(4), SuperResolution(8), Colorization()])
def test_a_apinv_a_equals_a(op):
    x = _x()
    assert torch.allclose(op.A(op.A_pinv(op.A(x))), op.A(x), atol=1e-12)
    # and A⁺ is the Moore–Penrose inverse: A⁺ A A⁺ = A⁺ and A A⁺ = I on the measurement space
    y = op.A(x)
    assert torch.allclose(op.A(op.A_pinv(y)), y, atol=1e-12)


def test_sr_operator_matches_numpy_block_mean():
    x = _x(2, 3, 8, 8)
    ref = x.numpy().reshape(2, 3, 4, 2, 4, 2).mean(axis=(3, 5))
    assert np.allclose(SuperResolution(2).A(x).numpy(), ref)
    up = np.kron(ref, np.ones((2, 2)))
    assert np.allclose(SuperResolution(2).A_pinv(torch.from_numpy(ref)).numpy(), up)


def test_sr_pinv_is_numpy_pinv_of_matrix():
    """A as an explicit matrix on a 4×4 single-channel image; numpy's pinv equals replicate."""
    s, n = 2, 4
    eye = torch.eye(n * n, dtype=torch.float64).view(n * n, 1, n, n)
    A = SuperResolution(s).A(eye).reshape(n * n, -1).T.numpy()  # (n/s)^2 × n^2
    Ap = SuperResolution(s).A_pinv(torch.eye((n // s) ** 2, dtype=torch.float64).view(-1, 1, n // s, n // s))
    Ap = Ap.reshape((n // s) ** 2, -1).T.numpy()
    assert np.allclose(Ap, np.linalg.pinv(A))


@pytest.mark.parametrize("op,shape", [(SuperResolution(2), (2, 3, 16, 16)), (Colorization(), (2, 3, 8, 8))])
def test_projection_makes_measurement_consistent(op, shape):
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    y = op.A(torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 2 - 1)
    xh = null_space_project(x0, y, op)
    assert torch.allclose(op.A(xh), y, atol=1e-6)
    # the null-space part of x0 is kept: (I − A⁺A) x̂0 = (I − A⁺A) x0
    assert torch.allclose(xh - op.A_pinv(op.A(xh)), x0 - op.A_pinv(op.A(x0)), atol=1e-6)


def test_alphas_cumprod_closed_form():
    acp = alphas_cumprod(1000).numpy()
    ref = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
    assert np.allclose(acp, ref, rtol=1e-6)


def test_schedule_lengths_and_ddim_timesteps_match_diffusers():
    assert len(get_schedule_jump(100, 1, 1)) == 101
    assert len(get_schedule_jump(100, 2, 2)) == 297
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", timestep_spacing="leading", steps_offset=0)
    sched.set_timesteps(100)
    ours = [i for i, _ in sampling_pairs(1000, 100)]
    assert ours == sched.timesteps.tolist()
    assert np.allclose(alphas_cumprod(1000).numpy(), sched.alphas_cumprod.double().numpy())


def test_time_travel_schedule_goes_back_up():
    ts = get_schedule_jump(10, 2, 3)
    ups = sum(1 for a, b in itertools.pairwise(ts) if b > a)
    # jumps at 0, 2, 4, 6 (< 10 − 2), each r − 1 = 2 times, each going up l = 2 steps
    assert ups == 4 * 2 * 2
    assert ts[0] == 9 and ts[-1] == -1


def test_ddim_step_matches_diffusers_with_eta_zero():
    """η = 0 and a measurement the prediction already satisfies: one DDNM step = diffusers' DDIM step."""
    from diffusers import DDIMScheduler

    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    eps_const = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    sched = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", timestep_spacing="leading", clip_sample=False
    )
    sched.set_timesteps(100)
    acp = alphas_cumprod(1000)
    t = 500
    at = float(acp[t])
    x0 = (x - math.sqrt(1 - at) * eps_const) / math.sqrt(at)

    class Zero:  # A = 0: the projection is a no-op, so DDNM reduces to DDIM
        def A(self, v):  # noqa: N802
            return v[:, :1, :1, :1] * 0

        def A_pinv(self, v):  # noqa: N802
            return v.expand(-1, 3, 8, 8) * 0

    # a single step through our sampler: restrict the pairs to (500, 490)
    from bd_plugin_diffpure import ddnm as mod

    orig = mod.sampling_pairs
    mod.sampling_pairs = lambda *a, **k: [(500, 490)]
    try:
        ours = mod.ddnm_sample(
            lambda xx, tt: eps_const,
            x0[:, :1, :1, :1] * 0,
            Zero(),
            acp,
            steps=100,
            eta=0.0,
            t_start=500,
            x_init=(x - math.sqrt(1 - at) * eps_const) / math.sqrt(at),
            generator=torch.Generator().manual_seed(0),
        )
    finally:
        mod.sampling_pairs = orig
    # our start was √ᾱ·x0 + √(1−ᾱ)·z (z random), so compare against diffusers from that same start
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    start = math.sqrt(at) * x0 + math.sqrt(1 - at) * z
    x0_s = (start - math.sqrt(1 - at) * eps_const) / math.sqrt(at)
    ref = sched.step(eps_const, 500, start, eta=0.0).prev_sample
    a_next = float(acp[490])
    assert torch.allclose(ours, math.sqrt(a_next) * x0_s + math.sqrt(1 - a_next) * eps_const, atol=1e-10)
    assert torch.allclose(ours, ref.double(), atol=1e-6)


def test_sampler_output_is_measurement_consistent_and_deterministic():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1).double()
    acp = alphas_cumprod(1000)
    x = _x(2, 3, 16, 16)
    for op in (SuperResolution(2), Colorization()):
        y = op.A(x)
        kw = dict(steps=20, eta=0.85, t_start=400)
        a = ddnm_sample(lambda v, t: net(v), y, op, acp, generator=torch.Generator().manual_seed(3), **kw)
        b = ddnm_sample(lambda v, t: net(v), y, op, acp, generator=torch.Generator().manual_seed(3), **kw)
        assert torch.equal(a, b)
        assert torch.allclose(op.A(a), y, atol=1e-10)
        c = ddnm_sample(lambda v, t: net(v), y, op, acp, generator=torch.Generator().manual_seed(4), **kw)
        assert not torch.allclose(a, c)
        # full DDNM from pure noise, simplified path and time travel, also consistent
        d = ddnm_sample(
            lambda v, t: net(v),
            y,
            op,
            acp,
            steps=10,
            travel_length=2,
            travel_repeat=2,
            path="simplified",
            generator=torch.Generator().manual_seed(3),
        )
        assert torch.allclose(op.A(d), y, atol=1e-10)


def test_noisy_y_lambda_gamma_closed_form():
    from bd_plugin_diffpure.ddnm import _lambda_gamma

    # σ_y = 0: λ = 1; simplified γ = √(1−ᾱ²) (the quirk), svd γ = 1
    assert _lambda_gamma(0.5, 0.0, "simplified") == (1.0, pytest.approx(math.sqrt(0.75)))
    assert _lambda_gamma(0.5, 0.0, "svd") == (1.0, pytest.approx(1.0))
    # large σ_y near the end: λ = σ_t/(ᾱ σ_y), γ = 0
    lam, gam = _lambda_gamma(0.999, 0.4, "simplified")
    assert gam == 0.0 and lam == pytest.approx(math.sqrt(1 - 0.999**2) / (0.999 * 0.4))
