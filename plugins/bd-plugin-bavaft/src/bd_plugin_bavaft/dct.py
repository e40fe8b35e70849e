"""16×16 block DCT in full-range YCbCr, as batched matrix products (BAIQA/BAvAFT convention).

Convention (methods.md §1.1): images ×255, full-range JPEG YCbCr, −128, per-block 2-D DCT-II
**unnormalised** (each 1-D pass ``X_k = 2·Σ x_n cos(πk(2n+1)/2N)``), i.e. ``scipy.fft.dctn(type=2,
norm=None)``. The transforms are bdcore's shared :mod:`bdcore.ops.blockdct`; this module adds the
trigger's frequency tables and the image ↔ coefficient pipeline of the trigger network.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bdcore.ops.blockdct import (
    BLOCK,
    YCBCR_OFFSET,
    blocks_dct,
    blocks_idct,
    dct_matrix,
    from_blocks,
    idct_matrix,
    to_blocks,
    zigzag_order,
)
from bdcore.ops.blockdct import rgb_to_ycbcr255 as rgb_to_ycbcr
from bdcore.ops.blockdct import ycbcr255_to_rgb as ycbcr_to_rgb

__all__ = [
    "BAIQA_MID64",
    "BLOCK",
    "block_dct",
    "block_idct",
    "dct_delta_to_image",
    "dct_matrix",
    "dct_to_image",
    "frequency_indices",
    "from_blocks",
    "idct_matrix",
    "image_to_dct",
    "rgb_to_ycbcr",
    "to_blocks",
    "ycbcr_to_rgb",
    "zigzag_order",
]

#: The 64 raster indices (u·16+v) used by BAIQA ``Add_trigger_net_v2`` "mid" mode, verbatim (methods.md §1.2).
BAIQA_MID64: tuple[int, ...] = (
    21, 34, 38, 51, 59, 72, 84, 97, 113, 126, 145, 155, 174, 180, 199, 201,
    35, 37, 52, 58, 73, 83, 98, 112, 127, 144, 156, 173, 181, 198, 202, 219,
    36, 53, 57, 74, 82, 99, 111, 128, 143, 157, 172, 182, 197, 203, 218, 220,
    54, 56, 75, 81, 100, 110, 129, 142, 158, 171, 183, 196, 204, 217, 221, 234,
)  # fmt: skip


def frequency_indices(table: str = "baiqa", n: int = 64) -> list[int]:
    """The N raster positions that carry the trigger: ``"baiqa"`` (verbatim, N = 64), a clean
    zig-zag mid band ``"zigzag-mid"`` (positions 128 − N/2 … 128 + N/2 of the zig-zag order) or the
    low band ``"zigzag-low"`` (zig-zag positions 1 … N, DC excluded; our addition: the band that
    survives JPEG 50, whose 8×8 quantisation zeroes the mid and high 16×16 frequencies)."""
    if table == "baiqa":
        if n != 64:
            raise ValueError("the BAIQA table has exactly 64 positions")
        return list(BAIQA_MID64)
    if table == "zigzag-mid":
        start = 128 - n // 2
        return zigzag_order()[start : start + n]
    if table == "zigzag-low":
        return zigzag_order()[1 : n + 1]
    raise ValueError(f"unknown frequency table {table!r}; choose 'baiqa', 'zigzag-mid' or 'zigzag-low'")


def block_dct(x: Tensor, n: int = BLOCK) -> Tensor:
    """Per-block unnormalised 2-D DCT-II: ``B×C×H×W`` → ``B×C×gh×gw×n×n`` (= scipy ``dctn`` per block)."""
    return blocks_dct(to_blocks(x, n))


def block_idct(coeffs: Tensor) -> Tensor:
    """Inverse of :func:`block_dct`: ``B×C×gh×gw×n×n`` → ``B×C×H×W``."""
    return from_blocks(blocks_idct(coeffs))


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
    # a change maps through the inverse matrix alone: add back the offsets ycbcr_to_rgb removes
    offset = torch.tensor(YCBCR_OFFSET, dtype=coeffs.dtype, device=coeffs.device).view(1, 3, 1, 1)
    return ycbcr_to_rgb(block_idct(coeffs) + offset) / 255.0
