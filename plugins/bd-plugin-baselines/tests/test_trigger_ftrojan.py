"""FTrojan: golden tests against per-image/per-block scipy and OpenCV references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
from bd_plugin_baselines.params_triggers import FTrojanParams
from bd_plugin_baselines.triggers.ftrojan import BAIQA_MID64, FTrojan, ftrojan, ftrojan_positions, zigzag_order

cv2 = pytest.importorskip("cv2")


def _ref_float(img: np.ndarray, magnitude: float, positions, window: int, channels=(1, 2)) -> np.ndarray:
    """Per image, per block, float YCbCr (JPEG full range) + scipy orthonormal DCT; H×W×3 in [0,1]."""
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    x = img.astype(np.float64) * 255.0
    ycc = x @ m.T + np.array([0.0, 128.0, 128.0])
    h, w, _ = ycc.shape
    for ch in channels:
        for i in range(0, h, window):
            for j in range(0, w, window):
                blk = scipy.fft.dctn(ycc[i : i + window, j : j + window, ch], type=2, norm="ortho")
                for u, v in positions:
                    blk[u, v] += magnitude
                ycc[i : i + window, j : j + window, ch] = scipy.fft.idctn(blk, type=2, norm="ortho")
    rgb = (ycc - np.array([0.0, 128.0, 128.0])) @ np.linalg.inv(m).T
    return np.clip(rgb / 255.0, 0.0, 1.0)


def _ref_official(img_u8: np.ndarray, magnitude: float, positions, window: int) -> np.ndarray:
    """BackdoorBench ``ftrojann.py`` / official ``poison_frequency`` for one uint8 H×W×3 image."""
    x = cv2.cvtColor(img_u8.astype(np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.float64)
    x = x.transpose(2, 0, 1)
    h, w = x.shape[1:]
    for ch in (1, 2):
        for i in range(0, h, window):
            for j in range(0, w, window):
                blk = cv2.dct(x[ch][i : i + window, j : j + window].astype(np.float64))
                for u, v in positions:
                    blk[u, v] += magnitude
                x[ch][i : i + window, j : j + window] = cv2.idct(blk)
    x = x.transpose(1, 2, 0)
    return cv2.cvtColor(x.astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def _images(b=3, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("variant,window", [("original", 32), ("mid50-high50", 32), ("baiqa-mid64", 16)])
def test_float_matches_scipy_per_block(variant, window):
    x = _images()
    pos = ftrojan_positions(variant, window)
    out = ftrojan(x, magnitude=30.0, positions=pos, window=window)
    for i in range(x.shape[0]):
        ref = _ref_float(x[i].permute(1, 2, 0).numpy(), 30.0, pos, window)
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), ref, atol=1e-10)


def test_float32_close_to_reference():
    x = _images(2).float()
    pos = ftrojan_positions("original", 32)
    out = ftrojan(x, positions=pos)
    assert out.dtype == torch.float32
    ref = _ref_float(x[0].double().permute(1, 2, 0).numpy(), 30.0, pos, 32)
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), ref, atol=2e-5)


@pytest.mark.parametrize("magnitude", [30.0, 200.0])
def test_compat_uint8_bit_exact_with_official(magnitude):
    # magnitude 200 forces out-of-range YCrCb values, exercising the uint8 wrap-around
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    x = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255.0
    pos = ftrojan_positions("original", 32)
    out = ftrojan(x, magnitude=magnitude, positions=pos, window=32, compat_uint8=True)
    got = torch.round(out * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i in range(3):
        ref = _ref_official(u8[i], magnitude, pos, 32)
        assert np.array_equal(got[i], ref), f"image {i}: {np.sum(got[i] != ref)} pixels differ"
    # and the wrap really happened for the big magnitude (clamping would differ)
    if magnitude == 200.0:
        clamped = ftrojan(x, magnitude=magnitude, positions=pos, window=32)
        assert (torch.round(clamped * 255) != torch.round(out * 255)).any()


def test_baiqa_table_and_zigzag():
    pos = ftrojan_positions("baiqa-mid64", 16)
    assert len(pos) == 64 and pos[0] == (1, 5) and pos[-1] == (14, 10)
    assert sorted(set(BAIQA_MID64)) == sorted(BAIQA_MID64)
    zz = zigzag_order(8)
    assert zz[:6] == [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2)] and len(set(zz)) == 64
    mh = ftrojan_positions("mid50-high50", 32)
    assert len(set(mh)) == 100 and (31, 31) in mh


def test_non_multiple_size_tiles_pattern():
    x = _images(2, 40, 50)
    out = ftrojan(x, positions=((15, 15), (31, 31)), window=32)
    big = ftrojan(torch.nn.functional.pad(x, (0, 14, 0, 24)), positions=((15, 15), (31, 31)), window=32)
    torch.testing.assert_close(out, big[..., :40, :50])


def test_class_strength_and_artifact():
    t = FTrojan(FTrojanParams(variant="baiqa-mid64", window=16, magnitude=66.0))
    x = _images(4).float()
    assert torch.equal(t.inject_trigger(x, strength=0.0), x.clamp(0, 1))
    s = torch.tensor([0.0, 0.5, 1.0, 0.25])
    out = t.inject_trigger(x, strength=s)
    for i in range(4):
        ref = ftrojan(x[i : i + 1], magnitude=66.0 * float(s[i]), positions=t.positions, window=16)
        torch.testing.assert_close(out[i : i + 1], ref)
    assert "positions_table" in t.state_dict()
