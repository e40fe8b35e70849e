"""freq-distance (AS-FIBA Table IV), image-asr and stealth: golden tests against numpy / hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bd_plugin_baselines.metrics.components import FreqDistance, ImageAsr, Stealth
from bd_plugin_baselines.metrics.functional import attack_success, freq_distance
from bd_plugin_baselines.params_defenses import FreqDistanceParams, ImageAsrParams, StealthParams

from bdcore.context import Context
from bdcore.metrics.batch import EvalBatch
from bdcore.metrics.image import psnr, ssim


def _numpy_freq_distance(a: np.ndarray, b: np.ndarray, beta: float) -> tuple[float, float]:
    """Per-image reference in FIBA's own style: fftshift, slice the centred square."""
    h, w = a.shape[-2:]
    bnd = int(np.floor(min(h, w) * beta))
    cy, cx = h // 2, w // 2
    lows, highs = [], []
    for ca, cb in zip(a * 255.0, b * 255.0):
        fa, fb = np.fft.fftshift(np.fft.fft2(ca)), np.fft.fftshift(np.fft.fft2(cb))
        mask = np.zeros((h, w))
        mask[cy - bnd : cy + bnd + 1, cx - bnd : cx + bnd + 1] = 1
        la = np.real(np.fft.ifft2(np.fft.ifftshift(fa * mask)))
        lb = np.real(np.fft.ifft2(np.fft.ifftshift(fb * mask)))
        lows.append((la - lb) ** 2)
        highs.append(((ca - la) - (cb - lb)) ** 2)
    return float(np.mean(lows)), float(np.mean(highs))


@pytest.mark.parametrize(("shape", "beta"), [((3, 32, 32), 0.1), ((1, 24, 40), 0.2), ((3, 33, 31), 0.05)])
def test_freq_distance_equals_per_image_numpy(shape: tuple[int, int, int], beta: float) -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, *shape, generator=gen)
    b = (a + 0.05 * torch.randn(2, *shape, generator=gen)).clamp(0, 1)
    low, high = freq_distance(a, b, beta=beta)
    for i in range(2):
        ref_low, ref_high = _numpy_freq_distance(a[i].double().numpy(), b[i].double().numpy(), beta)
        assert math.isclose(float(low[i]), ref_low, rel_tol=1e-9)
        assert math.isclose(float(high[i]), ref_high, rel_tol=1e-9)
    total = ((a.double() - b.double()) * 255).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(low + high, total)  # Parseval


def test_freq_distance_puts_a_fiba_trigger_in_the_low_band() -> None:
    """A FIBA-style amplitude blend inside the low window moves only low frequencies."""
    gen = torch.Generator().manual_seed(1)
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=gen), size=64, mode="bilinear")
    t = torch.rand(2, 3, 64, 64, generator=gen)
    fx, ft = torch.fft.fft2(x.double()), torch.fft.fft2(t.double())
    from bd_plugin_baselines.metrics.functional import low_band_mask

    m = low_band_mask(64, 64, 0.1)
    amp = torch.where(m, 0.85 * fx.abs() + 0.15 * ft.abs(), fx.abs())
    xp = torch.fft.ifft2(torch.polar(amp, fx.angle())).real  # unclipped: exactly band-limited change
    low, high = freq_distance(xp, x)
    assert float(low.min()) > 1.0 and float(high.max()) < 1e-12


def _batch(**kw) -> EvalBatch:
    x = kw.pop("input", torch.zeros(2, 3, 8, 8))
    return EvalBatch(split=kw.pop("split", "poisoned"), input=x, output=kw.pop("output", x), **kw)


def test_attack_success_rules() -> None:
    to_t, to_r = torch.tensor([0.01, 0.2, 0.05]), torch.tensor([0.02, 0.1, 0.05])
    assert attack_success(to_t, to_r, distance="mse").tolist() == [1.0, 0.0, 0.0]  # ties fail
    assert attack_success(to_t, None, distance="mse", threshold=0.1).tolist() == [1.0, 0.0, 1.0]
    assert attack_success(torch.tensor([30.0, 15.0]), torch.tensor([20.0, 20.0]), distance="psnr").tolist() == [
        1.0,
        0.0,
    ]
    assert attack_success(torch.tensor([0.9, 0.3]), None, distance="ssim", threshold=0.5).tolist() == [1.0, 0.0]


def test_image_asr_metric_by_hand() -> None:
    gen = torch.Generator().manual_seed(2)
    ref = torch.rand(4, 3, 16, 16, generator=gen)
    target = torch.zeros(4, 3, 16, 16)
    w = torch.tensor([0.1, 0.4, 0.6, 0.95]).view(-1, 1, 1, 1)  # share of the way to the target
    out = (1 - w) * ref + w * target
    metric = ImageAsr(ImageAsrParams(), Context(component="metric:image-asr"))
    metric.update(_batch(output=out, attack_target=target, reference_output=ref))
    assert metric.compute() == {"image-asr": 0.5}  # the two outputs past the midpoint
    thr = ImageAsr(ImageAsrParams(distance="mse", threshold=0.01), Context(component="metric:image-asr"))
    thr.update(_batch(output=out, attack_target=target))
    expected = float((((out - target) ** 2).flatten(1).mean(1) < 0.01).double().mean())
    assert thr.compute()["image-asr"] == expected
    assert thr.needs == frozenset({"attack_target"})
    m = ImageAsr(ImageAsrParams(distance="psnr"), Context(component="metric:image-asr"))
    m.update(_batch(output=out, attack_target=target, reference_output=ref))
    assert m.compute()["image-asr"] == 0.5  # PSNR orders like MSE
    m = ImageAsr(ImageAsrParams(distance="ssim"), Context(component="metric:image-asr"))
    m.update(_batch(output=out, attack_target=target, reference_output=ref))
    assert m.compute()["image-asr"] == float((ssim(out, target) > ssim(out, ref)).double().mean())
    empty = ImageAsr(ImageAsrParams(), Context(component="metric:image-asr"))
    assert math.isnan(empty.compute()["image-asr"])


def test_stealth_and_freq_metrics_stream_over_batches() -> None:
    gen = torch.Generator().manual_seed(3)
    clean = torch.rand(6, 3, 24, 24, generator=gen)
    pois = (clean + 0.03 * torch.randn(6, 3, 24, 24, generator=gen)).clamp(0, 1)
    st = Stealth(StealthParams(), Context(component="metric:stealth"))
    fd = FreqDistance(FreqDistanceParams(), Context(component="metric:freq-distance"))
    assert st.splits == ("poisoned",) and fd.splits == ("poisoned",)
    for sl in (slice(0, 4), slice(4, 6)):
        b = _batch(input=pois[sl], clean_input=clean[sl])
        st.update(b)
        fd.update(b)
    got = st.compute()
    assert math.isclose(got["stealth.psnr"], float(psnr(pois, clean).mean()), rel_tol=1e-9)
    assert math.isclose(got["stealth.ssim"], float(ssim(pois, clean).mean()), rel_tol=1e-6)
    low, high = freq_distance(pois, clean)
    f = fd.compute()
    assert math.isclose(f["freq-distance.low"], float(low.mean()), rel_tol=1e-9)
    assert math.isclose(f["freq-distance.high"], float(high.mean()), rel_tol=1e-9)
