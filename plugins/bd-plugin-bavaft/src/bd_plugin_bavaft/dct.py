"""16×16 block DCT in full-range YCbCr, as batched matrix products (BAIQA/BAvAFT convention).

Convention (methods.md §1.1): images ×255, full-range JPEG YCbCr, −128, per-block 2-D DCT-II
**unnormalised** (each 1-D pass ``X_k = 2·Σ x_n cos(πk(2n+1)/2N)``), i.e. ``scipy.fft.dctn(type=2,
norm=None)``. Hand-written because torch has no DCT; a block DCT is ``D @ X @ Dᵀ`` per block.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BLOCK = 16

#: The 64 raster indices (u·16+v) used by BAIQA ``Add_trigger_net_v2`` "mid" mode, verbatim (methods.md §1.2).
BAIQA_MID64: tuple[int, ...] = (
    21, 34, 38, 51, 59, 72, 84, 97, 113, 126, 145, 155, 174, 180, 199, 201,
    35, 37, 52, 58, 73, 83, 98, 112, 127, 144, 156, 173, 181, 198, 202, 219,
    36, 53, 57, 74, 82, 99, 111, 128, 143, 157, 172, 182, 197, 203, 218, 220,
    54, 56, 75, 81, 100, 110, 129, 142, 158, 171, 183, 196, 204, 217, 221, 234,
)  # fmt: skip

_RGB2YCC = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=torch.float64
)


def zigzag_order(n: int = BLOCK) -> list[int]:
    """Raster indices of an n×n block in JPEG zig-zag order."""
    cells = sorted(
        ((u, v) for u in range(n) for v in range(n)),
        key=lambda p: (p[0] + p[1], p[1] if (p[0] + p[1]) % 2 == 0 else p[0]),
    )
    return [u * n + v for u, v in cells]


def frequency_indices(table: str = "baiqa", n: int = 64) -> list[int]:
    """The N raster positions that carry the trigger: ``"baiqa"`` (verbatim, N = 64) or a clean
    zig-zag mid band ``"zigzag-mid"`` (positions 128 − N/2 … 128 + N/2 of the zig-zag order)."""
    if table == "baiqa":
        if n != 64:
            raise ValueError("the BAIQA table has exactly 64 positions")
        return list(BAIQA_MID64)
    if table == "zigzag-mid":
        zz = zigzag_order()
        return zz[128 - n // 2 : 128 + n // 2]
    raise ValueError(f"unknown frequency table {table!r}; choose 'baiqa' or 'zigzag-mid'")


def dct_matrix(
    n: int = BLOCK, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Unnormalised DCT-II matrix ``D[k, m] = 2·cos(πk(2m+1)/2n)`` (scipy ``norm=None``)."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    m = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = 2.0 * torch.cos(math.pi * k * (2 * m + 1) / (2 * n))
    return d.to(dtype=dtype, device=device)


def idct_matrix(
    n: int = BLOCK, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Exact inverse of :func:`dct_matrix` (scipy ``idct(type=2, norm=None)``)."""
    return torch.linalg.inv(dct_matrix(n, dtype=torch.float64)).to(dtype=dtype, device=device)


def rgb_to_ycbcr(x255: Tensor) -> Tensor:
    """Full-range JPEG YCbCr. ``B×3×H×W`` RGB in [0, 255] → YCbCr in [0, 255]."""
    m = _RGB2YCC.to(x255)
    y = torch.einsum("ij,bjhw->bihw", m, x255)
    return y + torch.tensor([0.0, 128.0, 128.0], dtype=x255.dtype, device=x255.device).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycc: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (matrix inverse, ``B×3×H×W`` 0–255)."""
    m = torch.linalg.inv(_RGB2YCC).to(ycc)
    off = torch.tensor([0.0, 128.0, 128.0], dtype=ycc.dtype, device=ycc.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, ycc - off)


def to_blocks(x: Tensor, n: int = BLOCK) -> Tensor:
    """``B×C×H×W`` (H, W multiples of n) → ``B×C×(H/n)×(W/n)×n×n``."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // n, n, w // n, n).permute(0, 1, 2, 4, 3, 5)


def from_blocks(blocks: Tensor) -> Tensor:
    """Inverse of :func:`to_blocks`."""
    b, c, gh, gw, n, _ = blocks.shape
    return blocks.permute(0, 1, 2, 4, 3, 5).reshape(b, c, gh * n, gw * n)


def block_dct(x: Tensor, n: int = BLOCK) -> Tensor:
    """Per-block unnormalised 2-D DCT-II: ``B×C×H×W`` → ``B×C×gh×gw×n×n`` (= scipy ``dctn`` per block)."""
    d = dct_matrix(n, dtype=x.dtype, device=x.device)
    return d @ to_blocks(x, n) @ d.T


def block_idct(coeffs: Tensor) -> Tensor:
    """Inverse of :func:`block_dct`: ``B×C×gh×gw×n×n`` → ``B×C×H×W``."""
    n = coeffs.shape[-1]
    di = idct_matrix(n, dtype=coeffs.dtype, device=coeffs.device)
    return from_blocks(di @ coeffs @ di.T)


def image_to_dct(images: Tensor, *, quantize: bool = True) -> Tensor:
    """``B×3×H×W`` RGB in [0, 1] (H, W multiples of 16) → block DCT of YCbCr−128 (``B×3×gh×gw×16×16``).
    ``quantize`` rounds ×255 to integers first (the reference pipeline)."""
    x = images * 255.0
    if quantize:
        x = torch.round(x)
    return block_dct(rgb_to_ycbcr(x) - 128.0)


def dct_to_image(coeffs: Tensor) -> Tensor:
    """Inverse of :func:`image_to_dct` without clamping: RGB in about [0, 1]."""
    return ycbcr_to_rgb(block_idct(coeffs) + 128.0) / 255.0


def dct_delta_to_image(coeffs: Tensor) -> Tensor:
    """A change of the YCbCr block DCT → the RGB change in [0, 1] units (the pipeline is linear, so
    ``dct_to_image(image_to_dct(x) + c) = quantised x + dct_delta_to_image(c)``)."""
    m = torch.linalg.inv(_RGB2YCC).to(coeffs)
    return torch.einsum("ij,bjhw->bihw", m, block_idct(coeffs)) / 255.0
