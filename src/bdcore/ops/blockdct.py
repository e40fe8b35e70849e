"""Block DCT in full-range YCbCr: the frequency domain of the DCT-trigger papers (BAIQA, BAvAFT).

Hand-written because their convention — an *unnormalised* 2-D DCT-II per ``n×n`` block
(``scipy.fft.dctn(type=2, norm=None)``) of JPEG full-range YCbCr on 0..255 values — is not
offered by kornia or torch; every transform here is a batched matrix product ``D X Dᵀ``,
computed in float32 even under mixed precision (:func:`bdcore.precision.fp32`): coefficients
reach ±4000 on 0..255 values, beyond what bfloat16's 8-bit mantissa resolves.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from bdcore.precision import fp32

#: The block size of the DCT-trigger papers (the default of every function here).
BLOCK = 16

#: JPEG full-range RGB → YCbCr matrix (data range 255; chroma offsets +128).
RGB2YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
YCBCR_OFFSET = (0.0, 128.0, 128.0)


def zigzag_order(n: int = BLOCK) -> list[int]:
    """Raster indices ``u·n+v`` of an ``n×n`` block in JPEG zig-zag order (``order[rank] = raster``)."""
    cells = [(u, v) for u in range(n) for v in range(n)]
    cells.sort(key=lambda uv: (uv[0] + uv[1], -uv[0] if (uv[0] + uv[1]) % 2 == 0 else uv[0]))
    return [u * n + v for u, v in cells]


@lru_cache(maxsize=16)
def _dct_matrices(n: int, dtype: torch.dtype, device: str) -> tuple[Tensor, Tensor]:
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    j = torch.arange(n, dtype=torch.float64).view(1, -1)
    cos = torch.cos(math.pi * k * (2 * j + 1) / (2 * n))  # [k, n]
    fwd = 2.0 * cos  # X_k = 2 Σ x_n cos(πk(2n+1)/2N): scipy type-2, norm=None
    w = torch.ones(n, dtype=torch.float64)
    w[0] = 0.5
    inv = (cos * w.view(-1, 1)).T / n  # x_n = (1/N)[X_0/2 + Σ_{k≥1} X_k cos(...)]
    return fwd.to(dtype=dtype, device=device), inv.to(dtype=dtype, device=device)


def dct_matrix(n: int = BLOCK, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """``n×n`` unnormalised DCT-II matrix ``D`` (``D @ x`` = ``scipy.fft.dct(x, type=2, norm=None)``)."""
    return _dct_matrices(n, dtype, str(device))[0]


def idct_matrix(n: int = BLOCK, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """The exact inverse of :func:`dct_matrix` (``scipy.fft.idct(type=2, norm=None)``)."""
    return _dct_matrices(n, dtype, str(device))[1]


@fp32
def blocks_dct(blocks: Tensor) -> Tensor:
    """2-D unnormalised DCT-II over the last two dims (``…×n×n``): ``D X Dᵀ``."""
    d, _ = _dct_matrices(blocks.shape[-1], blocks.dtype, str(blocks.device))
    return d @ blocks @ d.T


@fp32
def blocks_idct(coeffs: Tensor) -> Tensor:
    """Inverse of :func:`blocks_dct` (= ``scipy.fft.idctn(type=2, norm=None)``)."""
    _, di = _dct_matrices(coeffs.shape[-1], coeffs.dtype, str(coeffs.device))
    return di @ coeffs @ di.T


def to_blocks(x: Tensor, n: int = BLOCK) -> Tensor:
    """``B×C×H×W`` (H, W multiples of n) → ``B×C×(H/n)×(W/n)×n×n``."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // n, n, w // n, n).permute(0, 1, 2, 4, 3, 5)


def from_blocks(blocks: Tensor) -> Tensor:
    """Inverse of :func:`to_blocks`."""
    b, c, hb, wb, n, _ = blocks.shape
    return blocks.permute(0, 1, 2, 4, 3, 5).reshape(b, c, hb * n, wb * n)


@fp32
def rgb_to_ycbcr255(x: Tensor) -> Tensor:
    """``B×3×H×W`` RGB in 0..255 → full-range YCbCr (JPEG) in 0..255."""
    m = torch.tensor(RGB2YCBCR, dtype=x.dtype, device=x.device)
    off = torch.tensor(YCBCR_OFFSET, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, x) + off


@fp32
def ycbcr255_to_rgb(y: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr255` (exact matrix inverse)."""
    m = torch.linalg.inv(torch.tensor(RGB2YCBCR, dtype=torch.float64)).to(dtype=y.dtype, device=y.device)
    off = torch.tensor(YCBCR_OFFSET, dtype=y.dtype, device=y.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, y - off)
