"""16×16 block DCT in full-range YCbCr: the injection domain of BAIQA (code-exact, methods.md §1.1).

The transforms (unnormalised DCT-II, ``norm=None``; JPEG full-range YCbCr on 0..255 values) are
bdcore's shared :mod:`bdcore.ops.blockdct`; this module adds BAIQA's band tables, the centred
zero padding to a multiple of the block and the injection itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bdcore.ops.blockdct import (
    BLOCK,
    blocks_dct,
    blocks_idct,
    dct_matrix,
    from_blocks,
    rgb_to_ycbcr255,
    to_blocks,
    ycbcr255_to_rgb,
    zigzag_order,
)

__all__ = [
    "BLOCK",
    "MID_64_CODE",
    "band_positions",
    "block_dct2d",
    "blocks_dct",
    "blocks_idct",
    "centred_pad",
    "dct_matrix",
    "from_blocks",
    "inject_dct",
    "rgb_to_ycbcr255",
    "to_blocks",
    "ycbcr255_to_rgb",
    "zigzag_order",
    "zigzag_rank_table",
]


#: BAIQA's "mid 64" band, verbatim from the authors' code (``zigzag_indices[96:160]`` of their table,
#: which holds zig-zag *ranks*, read as raster indices u·16+v). Strength column k goes to raster MID_64_CODE[k].
MID_64_CODE: tuple[int, ...] = (
    21, 34, 38, 51, 59, 72, 84, 97, 113, 126, 145, 155, 174, 180, 199, 201,
    35, 37, 52, 58, 73, 83, 98, 112, 127, 144, 156, 173, 181, 198, 202, 219,
    36, 53, 57, 74, 82, 99, 111, 128, 143, 157, 172, 182, 197, 203, 218, 220,
    54, 56, 75, 81, 100, 110, 129, 142, 158, 171, 183, 196, 204, 217, 221, 234,
)  # fmt: skip


def zigzag_rank_table(n: int = BLOCK) -> list[int]:
    """``table[raster] = zig-zag rank`` — the table BAIQA's code indexes (its "zigzag_indices")."""
    table = [0] * (n * n)
    for rank, raster in enumerate(zigzag_order(n)):
        table[raster] = rank
    return table


def band_positions(band: str, n: int = BLOCK, count: int = 64) -> tuple[int, ...]:
    """Raster positions of the trigger band.

    ``"code"``: BAIQA's positions verbatim (:data:`MID_64_CODE`, loads the published trigger);
    ``"zigzag"``: a clean zig-zag mid band, ranks ``n²/2 − count/2 … n²/2 + count/2 − 1``;
    ``"high"``: the last ``count`` zig-zag ranks.
    """
    if band == "code":
        return MID_64_CODE
    order = zigzag_order(n)
    if band == "zigzag":
        mid = n * n // 2
        return tuple(order[mid - count // 2 : mid + count // 2])
    if band == "high":
        return tuple(order[-count:])
    raise ValueError(f"unknown band {band!r}; choose code, zigzag or high")


def block_dct2d(x: Tensor, n: int = BLOCK) -> Tensor:
    """Blockwise DCT of ``B×C×H×W`` (H, W multiples of n), same layout out."""
    return from_blocks(blocks_dct(to_blocks(x, n)))


def centred_pad(h: int, w: int, n: int = BLOCK) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that centres H×W in the next multiple of n."""
    ph, pw = (-h) % n, (-w) % n
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def inject_dct(
    images: Tensor,
    trigger: Tensor,
    alpha: Tensor | float = 1.0,
    *,
    positions: tuple[int, ...] = MID_64_CODE,
    block: int = BLOCK,
    quantize: bool = True,
) -> Tensor:
    """BAIQA's DCT injection (``Add_trigger_net_v2``), batched.

    Args:
        images: ``B×3×H×W`` float RGB in [0, 1].
        trigger: ``3×K`` DCT amplitudes (Y, Cb, Cr) for the K ``positions`` (raster u·block+v).
        alpha: scale, a float or ``B`` / ``B×1×1×1`` tensor; the added amount is ``α·t``.
        quantize: round ``255·x`` to integers before the transform, as the authors' code
            (straight-through gradient so the map stays differentiable in the images).

    Returns:
        ``B×3×H×W`` in [0, 1]: centred zero pad → YCbCr − 128 → block DCT-II (unnormalised) → add α·t
        to every block → inverse → +128 → RGB → /255 → un-pad → clamp. No rounding after injection.
    """
    b, c, h, w = images.shape
    if c != 3:
        raise ValueError(f"inject_dct needs RGB images (B×3×H×W), got {c} channels")
    if trigger.shape != (3, len(positions)):
        raise ValueError(f"trigger must be 3×{len(positions)}, got {list(trigger.shape)}")
    a = torch.as_tensor(alpha, dtype=images.dtype, device=images.device).reshape(-1)
    a = a.expand(b) if a.numel() == 1 else a
    left, right, top, bottom = centred_pad(h, w, block)
    x = F.pad(images, (left, right, top, bottom)) * 255.0
    if quantize:
        x = x + (torch.round(x) - x).detach()
    ycc = rgb_to_ycbcr255(x) - 128.0
    coeffs = blocks_dct(to_blocks(ycc, block))  # B×3×hb×wb×n×n
    delta = torch.zeros(3, block * block, dtype=images.dtype, device=images.device)
    idx = torch.as_tensor(positions, device=images.device)
    delta = delta.index_add(1, idx, trigger.to(images.dtype))
    delta = delta.view(1, 3, 1, 1, block, block) * a.view(b, 1, 1, 1, 1, 1)
    out = from_blocks(blocks_idct(coeffs + delta)) + 128.0
    rgb = ycbcr255_to_rgb(out) / 255.0
    rgb = rgb[:, :, top : top + h, left : left + w]
    return rgb.clamp(0.0, 1.0)
