"""SF-I-Net visibility control (hinged image term + channel noise) and the shared-trigger fast path."""

from __future__ import annotations

import math

import torch
from bd_plugin_asfiba.data import DegradedFaces
from bd_plugin_asfiba.params import DegradedFacesParams, SFINetParams
from bd_plugin_asfiba.sfinet import build_sfinet
from bd_plugin_asfiba.trigger import SFINetTrigger, hinged_image_loss, visibility_floor

from bdcore.context import Context, derive_seed
from bdcore.data.loading import endless_batches
from bdcore.metrics.image import psnr


def test_visibility_floor_values() -> None:
    assert math.isclose(visibility_floor(40.0, "mse"), 1e-4)
    assert math.isclose(visibility_floor(40.0, "l1"), 1e-2)
    assert visibility_floor(None, "mse") == 0.0


def test_hinged_image_loss_closed_form_and_gradient() -> None:
    x = torch.zeros(2, 3, 4, 4)
    # image 0: constant offset 0.005 (MSE 2.5e-5, below the floor); image 1: 0.02 (MSE 4e-4, above)
    offs = torch.tensor([0.005, 0.02]).view(2, 1, 1, 1)
    p = (x + offs).requires_grad_()
    floor = 1e-4
    loss = hinged_image_loss(p, x, "mse", floor)
    assert math.isclose(float(loss), (1e-4 + 4e-4) / 2, rel_tol=1e-5)
    loss.backward()
    assert p.grad is not None
    assert float(p.grad[0].abs().max()) == 0.0  # below the floor: no pull towards I
    assert float(p.grad[1].abs().min()) > 0.0
    plain = hinged_image_loss(p.detach(), x, "mse", 0.0)
    assert math.isclose(float(plain), (2.5e-5 + 4e-4) / 2, rel_tol=1e-5)
    l1 = hinged_image_loss(p.detach(), x, "l1", 0.01)
    assert math.isclose(float(l1), (0.01 + 0.02) / 2, rel_tol=1e-5)


def _short_fit(params: SFINetParams) -> tuple[SFINetTrigger, torch.Tensor]:
    ctx = Context(seed=0, component="trigger:sf-i-net")
    splits = DegradedFaces(DegradedFacesParams(size=32, crop=32, limit=12), ctx).splits()

    class Fit:
        def __init__(self) -> None:
            self.ctx, self.steps, self.batch_size, self.train_set = ctx, params.steps, 4, splits["train"]

        def batches(self, *, generator_salt: object = "fit", shuffle: bool = True):  # noqa: ARG002
            return endless_batches(self.train_set, 4, seed=derive_seed(0, generator_salt))

    torch.manual_seed(0)
    trig = SFINetTrigger(params, ctx)
    trig.fit(Fit())  # type: ignore[arg-type]
    return trig, next(Fit().batches())["input"]


def test_short_fit_uses_the_budget() -> None:
    """With the defaults (40 dB target, channel noise ε) a 100-step fit gives a trigger well above the
    noise floor of the old behaviour (plain Eq. 3 image term: ≈ 44–47 dB here, ≈ 52 dB after 600 steps
    at 64 px) and inside the ℓ∞ budget (≥ 36.1 dB)."""
    trig, x = _short_fit(SFINetParams(pool_size=32, lr=3e-3, steps=100))
    with torch.no_grad():
        y = trig.inject_trigger(x)
    values = psnr(y, x)
    assert float(values.mean()) < 41.0, values
    assert float(values.min()) >= 20 * math.log10(255 / 4) - 1e-3
    assert float((y - x).abs().max()) <= 4 / 255 + 1e-6


def test_shared_trigger_runs_once_and_matches_expanded() -> None:
    torch.manual_seed(0)
    net, _ = build_sfinet("small", 4 / 255)
    with torch.no_grad():
        for prm in net.parameters():  # move off the zero/identity init so every path matters
            prm.add_(0.05 * torch.randn_like(prm))
    net.eval()
    x, t = torch.rand(5, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        shared = net.residual(x, t)
        expanded = net.residual(x, t.expand(5, -1, -1, -1))
    assert shared.shape == (5, 3, 32, 32)
    assert float(shared.abs().mean()) > 1e-3
    torch.testing.assert_close(shared, expanded, rtol=1e-5, atol=1e-6)
