"""bdcore.ops.blockdct against scipy and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bdcore.ops import blockdct as bd

scipy_fft = pytest.importorskip("scipy.fft")


def test_block_dct_equals_scipy_dctn_per_block() -> None:
    x = torch.rand(2, 3, 32, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 255
    coeffs = bd.blocks_dct(bd.to_blocks(x))
    blocks = bd.to_blocks(x).numpy()
    ref = scipy_fft.dctn(blocks, type=2, norm=None, axes=(-2, -1))
    np.testing.assert_allclose(coeffs.numpy(), ref, rtol=1e-12, atol=1e-9)
    back = bd.from_blocks(bd.blocks_idct(coeffs))
    np.testing.assert_allclose(back.numpy(), x.numpy(), atol=1e-9)
    np.testing.assert_allclose(
        bd.idct_matrix(8, dtype=torch.float64) @ bd.dct_matrix(8, dtype=torch.float64), np.eye(8), atol=1e-12
    )


def test_ycbcr_is_jpeg_full_range_and_invertible() -> None:
    white = torch.full((1, 3, 1, 1), 255.0, dtype=torch.float64)
    np.testing.assert_allclose(bd.rgb_to_ycbcr255(white).flatten().numpy(), [255.0, 128.0, 128.0], atol=1e-9)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 255
    np.testing.assert_allclose(bd.ycbcr255_to_rgb(bd.rgb_to_ycbcr255(x)).numpy(), x.numpy(), atol=1e-9)


def test_zigzag_order_starts_like_jpeg() -> None:
    assert bd.zigzag_order(8)[:10] == [0, 1, 8, 16, 9, 2, 3, 10, 17, 24]
    assert sorted(bd.zigzag_order(16)) == list(range(256))
