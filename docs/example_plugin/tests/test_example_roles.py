"""Golden and behaviour tests of the example victim, attacks, defenses and data source."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bdcore.context import Context

from bd_plugin_example.attacks import GreyTarget, GreyTargetControlled
from bd_plugin_example.datasets import Shapes, shapes
from bd_plugin_example.defenses import BlurSensitivity, MedianFilter, blur_sensitivity
from bd_plugin_example.params import (
    BlurSensitivityParams,
    CheckerboardParams,
    GreyTargetParams,
    MedianFilterParams,
    ShapesParams,
)
from bd_plugin_example.triggers import Checkerboard


# --8<-- [start:median-golden]
def numpy_median(images: np.ndarray, k: int) -> np.ndarray:
    """Independent reference: mirror padding (numpy "reflect" = kornia/torch "reflect"), then a
    median over each k×k window, one pixel at a time."""
    r = k // 2
    padded = np.pad(images, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    out = np.empty_like(images)
    _, _, h, w = images.shape
    for i in range(h):
        for j in range(w):
            out[:, :, i, j] = np.median(padded[:, :, i : i + k, j : j + k].reshape(*images.shape[:2], -1), axis=-1)
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_median_filter_matches_numpy(k: int) -> None:
    x = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = MedianFilter(MedianFilterParams(kernel=k)).transform(x)
    np.testing.assert_allclose(got.numpy(), numpy_median(x.numpy(), k), rtol=0, atol=1e-12)


# --8<-- [end:median-golden]


def test_median_filter_kernel_must_be_odd() -> None:
    with pytest.raises(ValueError, match="must be odd"):
        MedianFilterParams(kernel=4)


class _Identity(torch.nn.Module):
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_blur_sensitivity_by_hand() -> None:
    """With an identity model the score is the mean |x - blur(x)|: 0 for a flat image."""
    flat = torch.full((1, 3, 12, 12), 0.3)
    detector = BlurSensitivity(BlurSensitivityParams(sigma=1.0)).detector
    assert float(detector(_Identity(), flat)) == pytest.approx(0.0, abs=1e-7)
    a, b = torch.zeros(2, 1, 2, 2), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    assert blur_sensitivity(a, b).tolist() == [0.25, 1.0]


def test_blur_sensitivity_scores_a_checkerboard_higher() -> None:
    x = Shapes(ShapesParams(count=8, size=24), Context(seed=1)).splits()["test"].inputs
    triggered = Checkerboard(CheckerboardParams(period=1, amplitude=0.2)).inject_trigger(x)
    detector = BlurSensitivity(BlurSensitivityParams()).detector
    assert float(detector(_Identity(), triggered).min()) > float(detector(_Identity(), x).max())


def test_grey_target_and_controlled_loss_by_hand() -> None:
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    batch = {"input": x, "target": x, "index": torch.arange(2)}
    trigger = Checkerboard(CheckerboardParams())
    p = GreyTarget(GreyTargetParams(level=0.25)).poison(batch, trigger)
    assert torch.equal(p["attack_target"], torch.full_like(x, 0.25)) and torch.equal(p["clean_input"], x)
    atk = GreyTargetControlled(GreyTargetParams(level=0.25, clean_weight=0.75))
    p = atk.poison(batch, trigger)
    terms = atk.attack_loss(_IdentityModule(), batch, p)
    want_backdoor = (p["input"] - 0.25).abs().mean()
    assert float(terms["clean"]) == 0.0
    assert float(terms["loss"]) == pytest.approx(0.25 * float(want_backdoor), rel=1e-6)


class _IdentityModule(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_shapes_are_seeded_and_flat_inside_rectangles() -> None:
    a = shapes(4, 16, 2, torch.Generator().manual_seed(0))
    b = shapes(4, 16, 2, torch.Generator().manual_seed(0))
    c = shapes(4, 16, 2, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 3, 16, 16) and float(a.min()) >= 0 and float(a.max()) <= 1
    background = shapes(1, 16, 0, torch.Generator().manual_seed(0))[0]
    # no rectangle: a smooth ramp, every step between neighbours small
    assert float(background.diff(dim=-1).abs().max()) < 0.1 and float(background.diff(dim=-2).abs().max()) < 0.1
