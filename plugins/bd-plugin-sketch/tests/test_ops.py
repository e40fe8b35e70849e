"""Golden tests of the pure functions: closed forms and independent numpy/scipy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bd_plugin_sketch.ops import lighten_strokes, pencil_sketch, stroke_intensity, stroke_mask, stroke_reduction


def test_lighten_closed_form() -> None:
    y = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 2, 2)
    out = lighten_strokes(y, 0.6)
    # y' = 1 - (1 - y)(1 - s), by hand: 1 - [1, .75, .5, 0]*0.4
    assert torch.allclose(out, torch.tensor([0.6, 0.7, 0.8, 1.0]).view(1, 1, 2, 2))
    assert torch.equal(lighten_strokes(y, 0.0), y)
    assert torch.equal(lighten_strokes(y, 1.0), torch.ones_like(y))
    # darkness is scaled by exactly (1 - s) everywhere
    g = torch.Generator().manual_seed(0)
    z = torch.rand(3, 1, 5, 5, generator=g)
    assert torch.allclose(1 - lighten_strokes(z, 0.3), 0.7 * (1 - z))


def test_lighten_per_sample() -> None:
    y = torch.zeros(2, 1, 2, 2)
    out = lighten_strokes(y, torch.tensor([0.0, 0.5]))
    assert torch.equal(out[0], y[0]) and torch.allclose(out[1], torch.full((1, 2, 2), 0.5))


def test_stroke_intensity_hand_made() -> None:
    ref = torch.tensor([[0.0, 1.0], [0.4, 0.9]]).view(1, 1, 2, 2)
    img = torch.tensor([[0.2, 0.5], [0.6, 0.0]]).view(1, 1, 2, 2)
    # stroke pixels (ref <= 0.5): (0,0) and (1,0); darkness 0.8 and 0.4 -> 0.6
    assert stroke_mask(ref).view(-1).tolist() == [True, False, True, False]
    assert stroke_intensity(img, ref, 0.5).item() == pytest.approx(0.6)
    # threshold 0.3 keeps only (0,0)
    assert stroke_intensity(img, ref, 0.3).item() == pytest.approx(0.8)
    # a blank reference has no strokes -> NaN
    assert math.isnan(stroke_intensity(img, torch.ones_like(ref), 0.5).item())


def test_stroke_intensity_rgb_uses_luma() -> None:
    ref = torch.zeros(1, 1, 1, 1)
    img = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)  # pure red: luma 0.299
    assert stroke_intensity(img, ref).item() == pytest.approx(1 - 0.299)


def test_stroke_reduction_equals_lightening() -> None:
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(4, 1, 16, 16, generator=g)
    clean = torch.rand(4, 1, 16, 16, generator=g) * 0.8
    red = stroke_reduction(lighten_strokes(clean, 0.55), clean, ref)
    assert torch.allclose(red, torch.full((4,), 0.55), atol=1e-6)


def _pencil_numpy(rgb: np.ndarray, sigma: float, eps: float = 1e-3) -> np.ndarray:
    """Per-image numpy/scipy reference: BT.601 luma, scipy Gaussian, colour dodge."""
    from scipy.ndimage import gaussian_filter

    g = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    half = max(1, math.ceil(3 * sigma))
    # kornia 'reflect' (edge not repeated) == scipy 'mirror'
    b = gaussian_filter(1.0 - g, sigma, mode="mirror", truncate=half / sigma)
    return np.clip(g / np.maximum(1.0 - b, eps), 0.0, 1.0)


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_pencil_sketch_vs_numpy(sigma: float) -> None:
    g = torch.Generator().manual_seed(2)
    base = torch.rand(3, 3, 12, 12, generator=g)
    imgs = torch.nn.functional.interpolate(base, size=40, mode="bilinear", align_corners=False)
    out = pencil_sketch(imgs, sigma=sigma)
    assert out.shape == (3, 1, 40, 40)
    for i in range(3):
        ref = _pencil_numpy(imgs[i].permute(1, 2, 0).double().numpy(), sigma)
        np.testing.assert_allclose(out[i, 0].double().numpy(), ref, atol=2e-5)


def test_pencil_sketch_flat_image_is_white() -> None:
    # dodge of a flat grey by its (flat) blurred inverse: g / (1 - (1 - g)) = 1
    assert torch.allclose(pencil_sketch(torch.full((1, 3, 20, 20), 0.4)), torch.ones(1, 1, 20, 20), atol=1e-5)
