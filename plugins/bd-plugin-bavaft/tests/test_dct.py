"""Golden tests of the block DCT / YCbCr convention against scipy and the JPEG formulas."""

import numpy as np
import pytest
import scipy.fft
import torch
from bd_plugin_bavaft import dct


def _np_block_dct(x: np.ndarray, n: int = 16) -> np.ndarray:
    b, c, h, w = x.shape
    out = np.zeros((b, c, h // n, w // n, n, n))
    for i in range(h // n):
        for j in range(w // n):
            out[:, :, i, j] = scipy.fft.dctn(
                x[:, :, i * n : (i + 1) * n, j * n : (j + 1) * n], type=2, norm=None, axes=(-2, -1)
            )
    return out


def test_block_dct_matches_scipy_dctn():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 48, generator=g, dtype=torch.float64) * 255 - 128
    ours = dct.block_dct(x).numpy()
    np.testing.assert_allclose(ours, _np_block_dct(x.numpy()), rtol=1e-10, atol=1e-8)


def test_block_idct_matches_scipy_idctn_and_inverts():
    g = torch.Generator().manual_seed(1)
    c = torch.randn(1, 3, 2, 2, 16, 16, generator=g, dtype=torch.float64) * 50
    x = dct.block_idct(c)
    ref = scipy.fft.idctn(c.numpy(), type=2, norm=None, axes=(-2, -1))
    np.testing.assert_allclose(dct.to_blocks(x).numpy(), ref, atol=1e-9)
    torch.testing.assert_close(dct.block_dct(x), c, atol=1e-8, rtol=0)


def test_ycbcr_matches_jpeg_formula_and_inverts():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64) * 255
    r, gg, b = x[:, 0], x[:, 1], x[:, 2]
    y = dct.rgb_to_ycbcr(x)
    torch.testing.assert_close(y[:, 0], 0.299 * r + 0.587 * gg + 0.114 * b)
    torch.testing.assert_close(y[:, 1], 128 - 0.168736 * r - 0.331264 * gg + 0.5 * b)
    torch.testing.assert_close(y[:, 2], 128 + 0.5 * r - 0.418688 * gg - 0.081312 * b)
    torch.testing.assert_close(dct.ycbcr_to_rgb(y), x)


def test_image_roundtrip_is_the_quantised_image():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    back = dct.dct_to_image(dct.image_to_dct(x))
    torch.testing.assert_close(back, torch.round(x * 255) / 255, atol=1e-10, rtol=0)


def test_frequency_tables():
    idx = dct.frequency_indices("baiqa")
    assert len(idx) == 64 and len(set(idx)) == 64 and idx[0] == 21 and idx[-1] == 234
    zz = dct.zigzag_order(4)
    assert zz[:6] == [0, 1, 4, 8, 5, 2]  # JPEG zig-zag on 4×4: (0,0),(0,1),(1,0),(2,0),(1,1),(0,2)
    mid = dct.frequency_indices("zigzag-mid")
    sums = {i // 16 + i % 16 for i in mid}
    assert min(sums) >= 13 and max(sums) <= 17
    low = dct.frequency_indices("zigzag-low")
    assert len(set(low)) == 64 and 0 not in low and low[:3] == [1, 16, 32]  # (0,1), (1,0), (2,0)
    assert max(i // 16 + i % 16 for i in low) <= 10  # the 64 after DC fill the anti-diagonals u + v ≤ 10
    with pytest.raises(ValueError):
        dct.frequency_indices("nope")
