"""Input-preprocessing defenses: golden tests (scipy, PIL, numpy), determinism, effect, clean cost."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from bd_plugin_baselines.defenses.input import (
    BitSqueeze,
    GaussianBlur,
    GaussianNoise,
    InputDefenseError,
    Jpeg,
    bit_squeeze,
    gaussian_blur,
    gaussian_noise,
    jpeg,
)
from bd_plugin_baselines.params_defenses import BitSqueezeParams, GaussianBlurParams, GaussianNoiseParams, JpegParams
from PIL import Image
from scipy.fft import dctn, idctn
from scipy.ndimage import gaussian_filter

from bdcore.context import Context
from bdcore.metrics.image import psnr


def _photos(n: int = 4, size: int = 64) -> torch.Tensor:
    """Real photographs (scikit-image), ``n×3×size×size`` in [0, 1]."""
    from skimage import data

    crops = []
    for img in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket()):
        h, w = img.shape[:2]
        y, x = (h - 4 * size) // 2, (w - 4 * size) // 2
        patch = img[y : y + 4 * size : 4, x : x + 4 * size : 4]  # decimate a central region
        crops.append(torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).float() / 255.0)
    return torch.stack(crops[:n])


@pytest.mark.parametrize(("sigma", "kernel_size"), [(0.5, None), (1.0, None), (2.0, None), (0.8, 5)])
def test_blur_equals_scipy_gaussian_filter(sigma: float, kernel_size: int | None) -> None:
    x = _photos(2, 40)
    out = gaussian_blur(x, sigma, kernel_size=kernel_size)
    radius = None if kernel_size is None else kernel_size // 2
    ref = np.stack(
        [
            np.stack(
                [gaussian_filter(ch.numpy().astype(np.float64), sigma, mode="mirror", radius=radius) for ch in img]
            )
            for img in x
        ]
    )
    np.testing.assert_allclose(out.numpy(), ref, atol=2e-6)


def test_blur_sigma_zero_is_identity_and_shapes_kept() -> None:
    x = torch.rand(2, 1, 7, 9, dtype=torch.float64)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    y = gaussian_blur(x, 3.0)  # kernel larger than the image: shrunk, still valid
    assert y.shape == x.shape and y.dtype == x.dtype


def test_jpeg_is_byte_identical_to_pil_per_image() -> None:
    x = _photos(4, 48)
    for q in (10, 50, 90):
        out = jpeg(x, q)
        for img, got in zip(x, out):
            u8 = (img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            buf = io.BytesIO()
            Image.fromarray(u8).save(buf, format="JPEG", quality=q)
            ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            np.testing.assert_array_equal((got * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), ref)


def test_jpeg_grey_and_dtype_and_bad_channels() -> None:
    x = _photos(2, 32).mean(1, keepdim=True).double()
    out = jpeg(x, 75)
    assert out.shape == x.shape and out.dtype == torch.float64
    with pytest.raises(InputDefenseError, match="1 or 3 channels"):
        jpeg(torch.rand(1, 4, 16, 16), 50)


def test_bit_squeeze_golden_and_levels() -> None:
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for bits in (1, 3, 5, 7):
        out = bit_squeeze(x, bits)
        levels = 2**bits - 1
        np.testing.assert_allclose(out.numpy(), np.round(x.numpy() * levels) / levels, atol=1e-7)
        assert out.unique().numel() <= 2**bits
    u8 = (x * 255).round() / 255
    assert torch.allclose(bit_squeeze(u8, 8), u8, atol=1e-7)


def test_noise_seeded_and_has_sigma() -> None:
    x = torch.full((4, 3, 64, 64), 0.5)
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a = gaussian_noise(x, 0.05, generator=g(0))
    b = gaussian_noise(x, 0.05, generator=g(0))
    c = gaussian_noise(x, 0.05, generator=g(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float((a - x).std()) - 0.05) < 0.002
    # the defense class is deterministic under the run seed and restarts its stream per defend()
    d1 = GaussianNoise(GaussianNoiseParams(sigma=0.05), Context(seed=3))
    d2 = GaussianNoise(GaussianNoiseParams(sigma=0.05), Context(seed=3))
    assert torch.equal(d1.transform(x), d2.transform(x))


def _block_dct_trigger(h: int, w: int, magnitude: float = 30 / 255) -> torch.Tensor:
    """An FTrojan-like trigger: +magnitude (FTrojan's 30 on a 0–255 scale) at orthonormal DCT
    coefficient (7, 6) of every 8×8 block, equal in all channels (so luma only)."""
    coef = np.zeros((8, 8))
    coef[7, 6] = magnitude
    block = idctn(coef, norm="ortho")
    pattern = np.tile(block, (h // 8, w // 8))
    return torch.from_numpy(pattern).float().expand(3, h, w)


def _surviving_fraction(defense, clean: torch.Tensor, trigger: torch.Tensor) -> float:
    """Share of the trigger's projection that survives the defense (1 = untouched)."""
    poisoned = (clean + trigger).clamp(0, 1)
    residual = defense(poisoned) - defense(clean)
    t = poisoned - clean
    return float((residual * t).sum() / (t * t).sum())


def test_preprocessing_weakens_a_dct_trigger() -> None:
    clean = _photos(4, 64) * 0.8 + 0.1  # keep the trigger away from the clip bounds
    trig = _block_dct_trigger(64, 64)
    # the block-DCT trigger lands on one high-frequency coefficient: JPEG q10 quantises it away, blur low-passes it
    kept = {
        "jpeg90": _surviving_fraction(lambda z: jpeg(z, 90), clean, trig),
        "jpeg10": _surviving_fraction(lambda z: jpeg(z, 10), clean, trig),
        "blur1": _surviving_fraction(lambda z: gaussian_blur(z, 1.0), clean, trig),
        "blur02": _surviving_fraction(lambda z: gaussian_blur(z, 0.2), clean, trig),
    }
    assert kept["jpeg90"] > 0.4, kept
    assert kept["jpeg10"] < 0.15, kept
    assert kept["blur1"] < 0.15, kept
    assert kept["blur02"] > 0.9, kept  # σ = 0.2 barely touches it

    # bit squeezing erases a low-amplitude additive trigger smaller than half a quantisation step
    grid = bit_squeeze(clean, 3)
    faint = (grid + 0.5 * trig.abs().clamp(max=0.06)).clamp(0, 1)
    assert torch.equal(bit_squeeze(faint, 3), grid)
    assert not torch.equal(bit_squeeze(faint, 6), bit_squeeze(grid, 6))
    # sanity: check the trigger really is a single block-DCT coefficient
    blk = dctn(trig[0, :8, :8].numpy().astype(np.float64), norm="ortho")
    assert np.count_nonzero(np.abs(blk) > 1e-6) == 1


def test_clean_utility_cost_is_bounded_at_mild_settings() -> None:
    """Identity 'model' (output = input): PSNR of the defended input to the clean one."""
    x = _photos(4, 64)
    assert float(psnr(jpeg(x, 90), x).mean()) > 30.0
    assert float(psnr(gaussian_blur(x, 0.5), x).mean()) > 30.0
    assert float(psnr(bit_squeeze(x, 6), x).mean()) > 40.0
    noisy = gaussian_noise(x, 0.02, generator=torch.Generator().manual_seed(0))
    assert float(psnr(noisy, x).mean()) > 33.0
    # and severe settings cost clearly more
    assert float(psnr(jpeg(x, 10), x).mean()) < float(psnr(jpeg(x, 90), x).mean()) - 5


def test_defense_classes_return_a_transform() -> None:
    x = _photos(2, 32)
    for cls, params, fn in [
        (GaussianBlur, GaussianBlurParams(sigma=0.6), lambda z: gaussian_blur(z, 0.6)),
        (Jpeg, JpegParams(quality=30), lambda z: jpeg(z, 30)),
        (BitSqueeze, BitSqueezeParams(bits=4), lambda z: bit_squeeze(z, 4)),
    ]:
        outcome = cls(params, Context()).defend(None, None)
        assert outcome.victim is None and outcome.detector is None
        assert torch.equal(outcome.transform(x), fn(x))
