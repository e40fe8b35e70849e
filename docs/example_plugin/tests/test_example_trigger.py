"""Unit and golden tests of the checkerboard trigger."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bd_plugin_example.params import CheckerboardParams
from bd_plugin_example.triggers import Checkerboard, checkerboard


# --8<-- [start:golden]
def numpy_checkerboard(images: np.ndarray, period: int, amplitude: float) -> np.ndarray:
    """Independent reference: loop over pixels, one cell at a time."""
    out = images.astype(np.float64).copy()
    _, _, h, w = images.shape
    for i in range(h):
        for j in range(w):
            sign = 1.0 if ((i // period) + (j // period)) % 2 == 0 else -1.0
            out[:, :, i, j] += sign * amplitude
    return np.clip(out, 0.0, 1.0)


@pytest.mark.parametrize(("period", "amplitude", "size"), [(1, 0.1, (5, 7)), (4, 0.05, (16, 16)), (3, 0.5, (10, 9))])
def test_checkerboard_matches_numpy_reference(period: int, amplitude: float, size: tuple[int, int]) -> None:
    images = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = checkerboard(images, period=period, amplitude=amplitude)
    want = numpy_checkerboard(images.numpy(), period, amplitude)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


# --8<-- [end:golden]


# --8<-- [start:contract]
def test_wrapper_keeps_shape_dtype_range(tiny_images: torch.Tensor) -> None:
    trigger = Checkerboard(CheckerboardParams(period=2, amplitude=0.3))
    out = trigger.inject_trigger(tiny_images)
    assert out.shape == tiny_images.shape and out.dtype == tiny_images.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, tiny_images)


def test_strength_scales_the_amplitude(tiny_images: torch.Tensor) -> None:
    trigger = Checkerboard(CheckerboardParams(period=4, amplitude=0.1))
    assert torch.equal(trigger.inject_trigger(tiny_images, strength=0.0), tiny_images)
    half = trigger.inject_trigger(tiny_images, strength=0.5)
    torch.testing.assert_close(half, checkerboard(tiny_images, period=4, amplitude=0.05))
    per_image = torch.linspace(0, 1, tiny_images.shape[0])
    mixed = trigger.inject_trigger(tiny_images, strength=per_image)
    torch.testing.assert_close(mixed[0], tiny_images[0])


def test_gradients_flow_to_the_images() -> None:
    images = (0.25 + 0.5 * torch.rand(1, 3, 8, 8, dtype=torch.float64)).requires_grad_()
    trigger = Checkerboard(CheckerboardParams(period=2, amplitude=0.1))
    assert torch.autograd.gradcheck(lambda x: trigger.inject_trigger(x), (images,))


# --8<-- [end:contract]


def test_deterministic(tiny_images: torch.Tensor) -> None:
    trigger = Checkerboard(CheckerboardParams())
    assert torch.equal(trigger.inject_trigger(tiny_images), trigger.inject_trigger(tiny_images))
