"""16×16 block DCT in full-range YCbCr: the injection domain of BAIQA (code-exact, methods.md §1.1).

The transforms (unnormalised DCT-II, ``norm=None``; JPEG full-range YCbCr on 0..255 values) are
bdcore's shared :mod:`bdcore.ops.blockdct`; this module adds BAIQA's band tables, the centred
zero padding to a multiple of the block and the injection itself.

The injection (``Add_trigger_net_v2``) is affine: the block DCT round trip is the identity, the
same ``α·t`` is added to every block, and YCbCr is affine in RGB; so ``inject(x) = clamp(q(x) +
α·P)`` with ``q(x) = round(255x)/255`` and ``P`` one fixed RGB pattern per (trigger, H, W) — the
inverse block DCT of ``t`` tiled on the padded grid, mapped through the inverse colour matrix,
cropped. :func:`dct_pattern` builds ``P``; :func:`inject_dct` applies it at the memory floor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bdcore.ops.blockdct import (
    BLOCK,
    RGB2YCBCR,
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
    "dct_pattern",
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


def _delta_blocks(trigger: Tensor, positions: tuple[int, ...], block: int, like: Tensor) -> Tensor:
    """``3×n×n`` DCT change of one block: ``trigger[c, k]`` at raster ``positions[k]`` (repeats add up)."""
    idx = torch.as_tensor(positions, device=like.device)
    delta = torch.zeros(3, block * block, dtype=like.dtype, device=like.device)
    return delta.index_add(1, idx, trigger.to(device=like.device, dtype=like.dtype)).view(3, block, block)


def dct_pattern(
    trigger: Tensor, h: int, w: int, *, positions: tuple[int, ...] = MID_64_CODE, block: int = BLOCK, like: Tensor
) -> Tensor:
    """``1×3×H×W``: the RGB change (in [0, 1] units) that :func:`inject_dct` adds at α = 1, before the clamp.

    The inverse block DCT of the ``3×K`` trigger (Y, Cb, Cr), tiled over the zero-padded grid, mapped
    through the inverse YCbCr matrix (the chroma offsets cancel in a change), /255, un-padded.
    Differentiable in ``trigger``; in ``like``'s dtype and device.
    """
    spatial = blocks_idct(_delta_blocks(trigger, positions, block, like))  # 3×n×n (Y, Cb, Cr; 0..255 units)
    left, right, top, bottom = centred_pad(h, w, block)
    reps = ((h + top + bottom) // block, (w + left + right) // block)
    tiled = spatial.repeat(1, *reps)[:, top : top + h, left : left + w]
    m = torch.linalg.inv(torch.tensor(RGB2YCBCR, dtype=torch.float64)).to(dtype=like.dtype, device=like.device)
    return (torch.einsum("ij,jhw->ihw", m, tiled) / 255.0).unsqueeze(0)


def inject_dct(
    images: Tensor,
    trigger: Tensor,
    alpha: Tensor | float = 1.0,
    *,
    positions: tuple[int, ...] = MID_64_CODE,
    block: int = BLOCK,
    quantize: bool = True,
    pattern: Tensor | None = None,
) -> Tensor:
    """BAIQA's DCT injection (``Add_trigger_net_v2``), batched.

    Args:
        images: ``B×3×H×W`` float RGB in [0, 1].
        trigger: ``3×K`` DCT amplitudes (Y, Cb, Cr) for the K ``positions`` (raster u·block+v).
        alpha: scale, a float or ``B`` / ``B×1×1×1`` tensor; the added amount is ``α·t``.
        quantize: round ``255·x`` to integers before the transform, as the authors' code
            (straight-through gradient so the map stays differentiable in the images).
        pattern: the cached :func:`dct_pattern` of ``trigger`` at this size (else built here).

    Returns:
        ``B×3×H×W`` in [0, 1]: what centred zero pad → YCbCr − 128 → block DCT-II (unnormalised) →
        add α·t to every block → inverse → +128 → RGB → /255 → un-pad → clamp gives (the pipeline
        is affine, so it is computed as ``clamp(round(255x)/255 + α·P)``; tested against a per-block
        scipy reference). No rounding after injection.
    """
    b, c, h, w = images.shape
    if c != 3:
        raise ValueError(f"inject_dct needs RGB images (B×3×H×W), got {c} channels")
    if trigger.shape != (3, len(positions)):
        raise ValueError(f"trigger must be 3×{len(positions)}, got {list(trigger.shape)}")
    if pattern is None:
        pattern = dct_pattern(trigger, h, w, positions=positions, block=block, like=images)
    a = torch.as_tensor(alpha, dtype=images.dtype, device=images.device).reshape(-1)
    a = (a.expand(b) if a.numel() == 1 else a).view(b, 1, 1, 1)
    grad = torch.is_grad_enabled() and (images.requires_grad or a.requires_grad or pattern.requires_grad)
    if grad:
        x = images * 255.0
        if quantize:
            x = x + (torch.round(x) - x).detach()
        return (x / 255.0 + a * pattern).clamp(0.0, 1.0)
    a0 = float(a[0]) if a.numel() == 1 or bool((a == a[0]).all()) else None
    if quantize:  # round(255x)/255 in three in-place passes over one fresh tensor, then the pattern
        out = torch.mul(images, 255.0).round_().div_(255.0)
        out = out.add_(pattern, alpha=a0) if a0 is not None else out.addcmul_(a, pattern)
    else:
        out = torch.add(images, pattern, alpha=a0) if a0 is not None else torch.addcmul(images, a, pattern)
    return out.clamp_(0.0, 1.0)
