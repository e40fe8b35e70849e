"""FTrojan (Wang et al., ECCV 2022): a fixed trigger added to chosen block-DCT coefficients
of the chroma (or luma) channels.

Official code: SoftWiser-group/FTrojan ``data.py: poison_frequency`` (and BackdoorBench
``ftrojann.py``): RGB → YCrCb (cv2, uint8), per channel and per ``window×window`` block an
orthonormal DCT (``cv2.dct``), ``+magnitude`` at each position, inverse DCT, back to RGB.

Implementation: the DCT is linear and the same coefficients are added in every block, so the
block-DCT round trip equals adding one spatial pattern ``IDCT(Δ)`` tiled over the image; we add
that tiled pattern in one batched op (the golden test checks it against a per-block scipy
reference). Resolution: the pattern is per block, so it is resolution-free; H and W that are not
multiples of ``window`` get the pattern tiled and cropped (the official code requires multiples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from bd_plugin_baselines.triggers._common import (
    TriggerError,
    block_idct_pattern,
    cv2_rgb_to_ycrcb_u8,
    cv2_ycrcb_to_rgb_u8,
    numpy_uint8_cast,
    ycbcr_delta_to_rgb,
)
from bdcore.components import TriggerBase

#: BAIQA's "mid 64" set for 16×16 blocks: raster indices u·16+v, verbatim from the official
#: code's ``zigzag_indices[96:160]`` (see methods.md §1.2; the values are used as raster indices).
BAIQA_MID64 = (
    21, 34, 38, 51, 59, 72, 84, 97, 113, 126, 145, 155, 174, 180, 199, 201,
    35, 37, 52, 58, 73, 83, 98, 112, 127, 144, 156, 173, 181, 198, 202, 219,
    36, 53, 57, 74, 82, 99, 111, 128, 143, 157, 172, 182, 197, 203, 218, 220,
    54, 56, 75, 81, 100, 110, 129, 142, 158, 171, 183, 196, 204, 217, 221, 234,
)  # fmt: skip

Channel = Literal["y", "cb", "cr"]


def zigzag_order(n: int) -> list[tuple[int, int]]:
    """The JPEG zig-zag scan of an ``n×n`` block as (u, v) pairs (u = row/vertical frequency)."""
    out: list[tuple[int, int]] = []
    for s in range(2 * n - 1):
        diag = [(u, s - u) for u in range(max(0, s - n + 1), min(s, n - 1) + 1)]
        out.extend(diag if s % 2 else diag[::-1])
    return out


def ftrojan_positions(variant: str, window: int) -> tuple[tuple[int, int], ...]:
    """Coefficient positions of a named variant.

    ``original``: (window/2−1, window/2−1) and (window−1, window−1) — (15,15), (31,31) at 32.
    ``mid50-high50``: BAvAFT++'s "50 mid + 50 high" (the paper gives no list; we take the 50
    zig-zag entries centred on the middle of the scan and the 50 last entries).
    ``baiqa-mid64``: the BAIQA set (16×16 blocks only).
    """
    if variant == "original":
        return ((window // 2 - 1, window // 2 - 1), (window - 1, window - 1))
    if variant == "mid50-high50":
        zz = zigzag_order(window)
        if len(zz) < 150:
            raise TriggerError(f"ftrojan variant mid50-high50 needs window >= 13, got {window}")
        mid = len(zz) // 2
        return tuple(zz[mid - 25 : mid + 25] + zz[-50:])
    if variant == "baiqa-mid64":
        if window != 16:
            raise TriggerError(f"ftrojan variant baiqa-mid64 is defined for window = 16, got {window}")
        return tuple((i // 16, i % 16) for i in BAIQA_MID64)
    raise TriggerError(f"unknown ftrojan variant {variant!r} (original, mid50-high50, baiqa-mid64, custom)")


def ftrojan_block_pattern(
    positions: Sequence[tuple[int, int]], window: int, like: Tensor, magnitudes: Tensor | None = None
) -> Tensor:
    """``window×window`` spatial pattern (float64) whose orthonormal DCT is ``magnitude`` at ``positions``.

    ``magnitudes``: per-position values (default 1 each).
    """
    coeffs = torch.zeros(window, window, dtype=torch.float64, device=like.device)
    for k, (u, v) in enumerate(positions):
        if not (0 <= u < window and 0 <= v < window):
            raise TriggerError(f"ftrojan position {(u, v)} lies outside a {window}×{window} block")
        coeffs[u, v] += 1.0 if magnitudes is None else float(magnitudes[k])
    return block_idct_pattern(coeffs)


def _tile(pattern: Tensor, h: int, w: int) -> Tensor:
    n = pattern.shape[-1]
    reps = (-(-h // n), -(-w // n))
    return pattern.repeat(*reps)[:h, :w]


_CH_INDEX = {"y": 0, "cb": 1, "cr": 2}


def ftrojan(
    images: Tensor,
    *,
    magnitude: float = 30.0,
    positions: Sequence[tuple[int, int]] = ((15, 15), (31, 31)),
    window: int = 32,
    channels: Sequence[Channel] = ("cb", "cr"),
    strength: float | Tensor = 1.0,
    compat_uint8: bool = False,
    rgb_pattern: Tensor | None = None,
) -> Tensor:
    """Add ``strength·magnitude`` (0–255 units) at ``positions`` of every ``window`` block's DCT.

    Args:
        images: ``B×3×H×W`` RGB (or ``B×1×H×W`` grey: only channel ``y`` applies) in [0, 1].
        magnitude: DCT coefficient offset in 0–255 pixel units (orthonormal DCT).
        positions: (u, v) inside a block, u = vertical frequency.
        window: block size.
        channels: which of Y, Cb, Cr receive the trigger ("UV" in the paper = cb + cr).
        strength: scalar or ``B`` (or ``B×1×1×1``) multiplier of ``magnitude``.
        compat_uint8: reproduce the official code bit-exactly: round the input to 8 bits,
            cv2's fixed-point YCrCb, and ``astype(np.uint8)`` truncation with wrap-around before
            converting back (not differentiable). Default: float pipeline, clamped to [0, 1].
        rgb_pattern: the precomputed :func:`ftrojan_rgb_pattern` of these settings (a cache).

    Returns:
        ``B×C×H×W`` in [0, 1], same dtype and device.
    """
    b, c, h, w = images.shape
    if c not in (1, 3):
        raise TriggerError(f"ftrojan needs 1 or 3 channels, got {c}")
    s = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    if compat_uint8:
        work = torch.float64
        pat = _tile(ftrojan_block_pattern(positions, window, images).to(work), h, w)  # H×W
        mask = torch.zeros(3, dtype=work, device=images.device)
        for ch in channels:
            if c == 1 and ch != "y":
                continue
            mask[_CH_INDEX[ch]] = 1.0
        delta = (magnitude * s.to(work)) * mask.view(1, 3, 1, 1)[:, :c] * pat  # B×c×H×W (0–255 units)
        x8 = torch.round(images.detach().to(torch.float64) * 255.0).clamp(0, 255)
        if c == 1:
            out = numpy_uint8_cast(x8 + delta)
            return (out.to(torch.float64) / 255.0).to(images.dtype)
        ycc = cv2_rgb_to_ycrcb_u8(x8)  # channel order Y, Cr, Cb (cv2)
        delta_ycc = delta[:, [0, 2, 1]]  # our delta is Y, Cb, Cr
        ycc2 = numpy_uint8_cast(ycc.to(torch.float64) + delta_ycc)
        return (cv2_ycrcb_to_rgb_u8(ycc2).to(torch.float64) / 255.0).to(images.dtype)
    if rgb_pattern is None:
        rgb_pattern = ftrojan_rgb_pattern(
            images, magnitude=magnitude, positions=positions, window=window, channels=channels
        )
    return torch.addcmul(images, s.expand(b, 1, 1, 1), rgb_pattern).clamp_(0.0, 1.0)


def ftrojan_rgb_pattern(
    images: Tensor,
    *,
    magnitude: float,
    positions: Sequence[tuple[int, int]],
    window: int,
    channels: Sequence[Channel],
) -> Tensor:
    """The float pipeline's additive ``1×C×H×W`` RGB pattern (α = 1) for images shaped like ``images``.

    YCbCr is affine in RGB, so RGB→YCbCr, +delta, →RGB equals adding the delta mapped by the
    inverse matrix: one batch-independent pattern, added with one fused op (exact at α = 0).
    """
    _, c, h, w = images.shape
    pat = _tile(ftrojan_block_pattern(positions, window, images).to(images.dtype), h, w)
    mask = torch.zeros(3, dtype=images.dtype, device=images.device)
    for ch in channels:
        if c == 1 and ch != "y":
            continue
        mask[_CH_INDEX[ch]] = 1.0
    unit = mask.view(1, 3, 1, 1)[:, :c] * pat * (magnitude / 255.0)
    return unit if c == 1 else ycbcr_delta_to_rgb(unit)


class FTrojan(TriggerBase):
    """Registered ``ftrojan`` trigger (see :func:`ftrojan`)."""

    differentiable = True

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        p = params
        if p.variant == "custom":
            if not p.positions:
                raise TriggerError("ftrojan variant 'custom' needs a non-empty 'positions' list")
            self.positions = tuple((int(u), int(v)) for u, v in p.positions)
        else:
            self.positions = ftrojan_positions(p.variant, p.window)
        if p.compat_uint8:
            self.differentiable = False
        # the trigger's definition, saved with the stage artifact
        self.register_buffer("positions_table", torch.tensor(self.positions, dtype=torch.int64))
        self._patterns: dict[tuple, Tensor] = {}

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        p = self.params
        pattern = None
        if not p.compat_uint8:  # the additive pattern depends only on shape, dtype and device: cache it
            key = (*images.shape[1:], images.dtype, images.device)
            pattern = self._patterns.get(key)
            if pattern is None:
                pattern = ftrojan_rgb_pattern(
                    images, magnitude=p.magnitude, positions=self.positions, window=p.window, channels=p.channels
                )
                self._patterns = {key: pattern}  # one entry: a run uses one shape at a time
        return ftrojan(
            images,
            rgb_pattern=pattern,
            magnitude=p.magnitude,
            positions=self.positions,
            window=p.window,
            channels=tuple(p.channels),
            strength=strength,
            compat_uint8=p.compat_uint8,
        )
