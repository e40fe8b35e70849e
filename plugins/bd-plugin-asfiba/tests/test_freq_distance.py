"""Table IV frequency distance: golden test against an independent numpy computation (shifted spectrum,
FIBA-style centred slicing), plus the metric wrapper and its registration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bd_plugin_asfiba.metrics import FreqDistance, amplitude_band_distance
from bd_plugin_asfiba.params import FreqDistanceParams

from bdcore.ops.frequency import low_band_mask as low_frequency_mask


def numpy_band_distance(
    poisoned: np.ndarray, benign: np.ndarray, beta: float, window: str, reduction: str, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per image: ``fftshift(fft2)`` amplitudes (orthonormal) of each channel; low band = the centred
    ``(2b+1)²`` square (FIBA's ``Fourier_pattern`` slicing) or the disk of radius ``beta·min(H, W)`` around
    the shifted DC bin ``(H//2, W//2)``."""
    b_, _c, h, w = poisoned.shape
    amp = [np.abs(np.fft.fftshift(np.fft.fft2(x * scale, norm="ortho"), axes=(-2, -1))) for x in (poisoned, benign)]
    d = amp[0] - amp[1]
    d = d**2 if reduction == "mse" else np.abs(d)
    mask = np.zeros((h, w), bool)
    ch, cw = h // 2, w // 2
    if window == "square":
        b = int(np.floor(min(h, w) * beta))
        mask[ch - b : ch + b + 1, cw - b : cw + b + 1] = True
    else:
        r = min(h, w) * beta
        for y in range(h):
            for x in range(w):
                mask[y, x] = (y - ch) ** 2 + (x - cw) ** 2 <= r * r
    low = np.array([d[i][:, mask].mean() for i in range(b_)])
    high = np.array([d[i][:, ~mask].mean() for i in range(b_)])
    return low, high


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 24, 40), (2, 1, 33, 31)])
@pytest.mark.parametrize("window", ["square", "disk"])
@pytest.mark.parametrize("reduction", ["mse", "mae"])
def test_amplitude_band_distance_matches_numpy(shape: tuple[int, ...], window: str, reduction: str) -> None:
    rng = np.random.default_rng(0)
    benign = rng.random(shape)
    poisoned = np.clip(benign + rng.normal(0, 0.02, shape) + 0.05 * np.sin(np.arange(shape[-1]) / 3.0), 0, 1)
    got_low, got_high = amplitude_band_distance(
        torch.from_numpy(poisoned), torch.from_numpy(benign), beta=0.15, window=window, reduction=reduction
    )
    ref_low, ref_high = numpy_band_distance(poisoned, benign, 0.15, window, reduction, 255.0)
    np.testing.assert_allclose(got_low.numpy(), ref_low, rtol=1e-10)
    np.testing.assert_allclose(got_high.numpy(), ref_high, rtol=1e-10)


def test_band_distance_separates_low_and_high_perturbations() -> None:
    torch.manual_seed(0)
    benign = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    low_wave = 0.05 * torch.cos(2 * math.pi * xx / 32)  # k_x = 1: inside the window
    high_wave = 0.05 * torch.cos(2 * math.pi * 12 * (xx + yy) / 32)  # k = (12, 12): outside
    lo_l, lo_h = amplitude_band_distance(benign + low_wave, benign)
    hi_l, hi_h = amplitude_band_distance(benign + high_wave, benign)
    assert float(lo_l) > 100 * float(lo_h)
    assert float(hi_h) > 100 * float(hi_l)
    same_l, same_h = amplitude_band_distance(benign, benign)
    assert float(same_l) == 0.0 and float(same_h) == 0.0


def test_low_frequency_mask_counts() -> None:
    assert int(low_frequency_mask(64, 64, 0.1).sum()) == 13 * 13  # b = 6: (2b+1)²
    assert int(low_frequency_mask(64, 64, 0.1, "disk").sum()) == sum(
        1 for y in range(-32, 32) for x in range(-32, 32) if y * y + x * x <= 6.4**2
    )
    with pytest.raises(ValueError):
        low_frequency_mask(8, 8, 0.1, "ring")


class _Batch:
    def __init__(self, inp: torch.Tensor, clean: torch.Tensor) -> None:
        self.input, self.clean_input, self.split = inp, clean, "poisoned"


def test_metric_averages_over_images_and_is_registered() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    y = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    m = FreqDistance(FreqDistanceParams(beta=0.2))
    m.update(_Batch(y[:3], x[:3]))
    m.update(_Batch(y[3:], x[3:]))
    out = m.compute()
    low, high = amplitude_band_distance(y, x, beta=0.2)
    assert math.isclose(out["freqdistance.low"], float(low.mean()), rel_tol=1e-12)
    assert math.isclose(out["freqdistance.high"], float(high.mean()), rel_tol=1e-12)


def test_registered_next_to_the_baselines_freq_distance() -> None:
    """``asfiba-freq-distance`` is registered and does not clash with bd-plugin-baselines' ``freq-distance``."""
    from bd_plugin_asfiba import plugin

    from bdcore.testing.runner import make_host

    mods: list[object] = [plugin]
    try:
        from bd_plugin_baselines import plugin as baselines

        mods.append(baselines)
    except ImportError:
        pass
    host = make_host(mods, toy=False)
    metrics = {c.name for c in host.registry if c.kind == "metric"}
    assert "asfiba-freq-distance" in metrics
    comp = host.registry.get("metric", "asfiba-freq-distance")
    m = comp.build(FreqDistanceParams(window="disk"), None)
    assert isinstance(m, FreqDistance)
