"""FTrojan (Wang et al., ECCV 2022): a fixed trigger added to chosen block-DCT coefficients
of the chroma (or luma) channels.

Official code: SoftWiser-group/FTrojan ``data.py: poison_frequency`` with ``image.py: RGB2YUV, DCT,
IDCT, YUV2RGB`` (BackdoorBench ``utils/bd_img_transform/ftrojann.py: ftrojann_version`` is the same
pipeline), per image: ``x·255`` → ``astype(uint8)`` → ``cv2.cvtColor(RGB2YCrCb)`` → for **every**
channel and ``window×window`` block ``cv2.dct`` (orthonormal) → ``+magnitude`` at each position of
the channels in ``channel_list`` → ``cv2.idct`` of every channel → ``astype(uint8)`` of every
channel (truncation, wrap-around; Y too, whose DCT round trip lands a hair below the integer in a
few % of pixels) → ``cv2.cvtColor(YCrCb2RGB)`` → /255, clip.

Float path (default): the DCT is linear and the same coefficients are added in every block, so the
block-DCT round trip equals adding one spatial pattern ``IDCT(Δ)`` tiled over the image; YCbCr is
affine in RGB, so it is one RGB pattern, built once per (C, H, W, dtype, device) and added to the
batch in one fused op, clamped in place. Resolution: the pattern is per block, so it is
resolution-free; H and W that are not multiples of ``window`` get the pattern tiled and cropped
(the official code requires multiples).

``compat_uint8``: the official uint8 pipeline, bit-exact, batched: cv2's colour conversions on the
whole batch at once (they are per pixel); a channel without a trigger (Y) through cv2's own 1-D
DCTs (``DCT_ROWS``) over every block row, then every block column — the order ``cv2.dct``/``cv2.idct``
use for a 2-D block — so its rounding, hence its truncation, is the official one; a channel with a
trigger as ``value + IDCT(Δ)`` in float64, which truncates as cv2's round trip does wherever the
pattern keeps a margin from the integers (checked; else cv2's round trip too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from bd_plugin_baselines.triggers._common import (
    PatternCache,
    TriggerError,
    add_pattern_clamped,
    block_idct_pattern,
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
        compat_uint8: reproduce the official code bit-exactly (:func:`ftrojan_official_uint8`:
            8-bit input, cv2's YCrCb and DCT, ``astype(np.uint8)`` truncation with wrap-around of
            every channel; not differentiable; needs OpenCV). Default: float pipeline, clamped.
        rgb_pattern: the precomputed :func:`ftrojan_rgb_pattern` of these settings (a cache).

    Returns:
        ``B×C×H×W`` in [0, 1], same dtype and device.
    """
    b, c = images.shape[:2]
    if c not in (1, 3):
        raise TriggerError(f"ftrojan needs 1 or 3 channels, got {c}")
    s = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    if compat_uint8:
        return ftrojan_official_uint8(
            images, magnitude=magnitude, positions=positions, window=window, channels=channels, strength=s
        )
    if rgb_pattern is None:
        rgb_pattern = ftrojan_rgb_pattern(
            images, magnitude=magnitude, positions=positions, window=window, channels=channels
        )
    return add_pattern_clamped(images, rgb_pattern, s.expand(b, 1, 1, 1))


#: cv2's YCrCb channel index of each of our channel names (the official ``channel_list`` indexes it).
_CV2_INDEX = {"y": 0, "cr": 1, "cb": 2}


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - opencv is in the base env
        raise TriggerError(
            "ftrojan compat_uint8 runs OpenCV's own DCT to reproduce the official rounding: "
            "pip install 'bd-plugin-baselines[compat]' (opencv-python-headless)"
        ) from e
    return cv2


def cv2_block_dct(planes: np.ndarray, window: int, *, inverse: bool = False) -> np.ndarray:
    """``cv2.dct`` (``cv2.idct``) of every ``window×window`` block of ``N×H×W`` float64 planes, batched.

    A 2-D ``cv2.dct`` of a block transforms its rows, then its columns, with the same 1-D routine
    that ``flags=DCT_ROWS`` applies to each row of a matrix; so the block rows of all planes
    (contiguous ``window``-long runs) go through one ``DCT_ROWS`` call, then the block columns (rows
    of the transposed planes) through another, rounding exactly as the per-block calls do (tested
    bit-exact). H and W must be multiples of ``window``.
    """
    cv2 = _cv2()
    fn = cv2.idct if inverse else cv2.dct
    n, h, w = planes.shape
    rows = fn(np.ascontiguousarray(planes).reshape(-1, window), flags=cv2.DCT_ROWS).reshape(n, h, w)
    cols = fn(np.ascontiguousarray(rows.transpose(0, 2, 1)).reshape(-1, window), flags=cv2.DCT_ROWS)
    return np.ascontiguousarray(cols.reshape(n, w, h).transpose(0, 2, 1))


#: pixels per chunk of the compat pipeline (bounds its float64 work arrays to ~25 MB)
_COMPAT_CHUNK_PIXELS = 1 << 20

#: cv2's block-DCT round trip of 0..255 values is within ~1e-12 of the exact result; where the added
#: pattern stays this far from every integer, the exact sum truncates exactly as cv2's does
_TRUNCATION_MARGIN = 1e-7


def _exact_sum_truncates_like_cv2(unit: np.ndarray, mags: np.ndarray) -> bool:
    """True when, for every magnitude, ``mag·unit`` (the block pattern) keeps a margin from the integers."""
    for m in np.unique(mags):
        p = m * unit
        if np.abs(p - np.round(p)).min() <= _TRUNCATION_MARGIN:
            return False
    return True


def ftrojan_official_uint8(
    images: Tensor,
    *,
    magnitude: float,
    positions: Sequence[tuple[int, int]],
    window: int,
    channels: Sequence[Channel],
    strength: Tensor,
) -> Tensor:
    """The official FTrojan pipeline on ``B×C×H×W`` images in [0, 1] (C = 3, or 1 = the grey path).

    Per sample the added coefficient is ``magnitude·strength``. RGB: ``astype(uint8)`` of ``x·255``,
    cv2 YCrCb, DCT/+Δ/IDCT of every channel, ``astype(uint8)`` (truncate, wrap), cv2 RGB, /255 —
    bit-exact with the per-image official code. A channel without a trigger (Y by default) goes
    through cv2's own block DCT round trip (:func:`cv2_block_dct`), whose rounding decides its
    truncation; a channel with one gets ``value + mag·IDCT(Δ)`` exactly, which truncates as cv2's
    round trip does wherever that pattern keeps a margin from the integers (checked per magnitude,
    else it too takes the cv2 round trip). Grey (the official MNIST path, ``YUV = False``): no colour
    conversion and no uint8 cast: ``clip((255x + mag·IDCT(Δ))/255)``. H, W: multiples of ``window``.
    """
    cv2 = _cv2()
    b, c, h, w = images.shape
    if h % window or w % window:
        raise TriggerError(
            f"ftrojan compat_uint8 reproduces the official code, which needs H and W multiples of "
            f"window = {window}; got {h}×{w} (use the float path for other sizes)"
        )
    cpu64 = torch.empty(0, dtype=torch.float64)
    unit = ftrojan_block_pattern(positions, window, cpu64).numpy()  # IDCT of 1 at every position
    tiled = np.tile(unit, (h // window, w // window))
    targets = sorted({_CV2_INDEX[ch] for ch in channels if c == 3 or ch == "y"})
    mags = (magnitude * strength.detach().reshape(-1).to(torch.float64).expand(b)).cpu().numpy()
    nhwc = images.detach().to(device="cpu", dtype=torch.float64).permute(0, 2, 3, 1)
    if c == 1:  # no colour conversion, no uint8 cast after the IDCT
        grey = nhwc[..., 0].numpy() * 255.0
        if targets:
            grey = grey + mags[:, None, None] * tiled
        out = torch.from_numpy(np.clip(grey / 255.0, 0.0, 1.0)).unsqueeze(1)
        return out.to(device=images.device, dtype=images.dtype)
    exact_sum = _exact_sum_truncates_like_cv2(unit, mags)
    out8 = np.empty((b, h, w, 3), dtype=np.uint8)
    step = max(1, _COMPAT_CHUNK_PIXELS // (h * w))
    for i in range(0, b, step):
        j = min(b, i + step)
        n = j - i
        rgb8 = (nhwc[i:j].numpy() * 255.0).astype(np.uint8)  # RGB2YUV: (x·255).astype(np.uint8)
        ycc = cv2.cvtColor(rgb8.reshape(n * h, w, 3), cv2.COLOR_RGB2YCrCb).reshape(n, h, w, 3)  # per pixel
        rec8 = np.empty_like(ycc)
        for ch in range(3):
            plane = ycc[..., ch].astype(np.float64)
            if ch in targets and exact_sum:
                rec = plane + mags[i:j, None, None] * tiled
            else:
                coeffs = cv2_block_dct(plane, window)
                if ch in targets:
                    for u, v in positions:  # in the official order: one `+= magnitude` per position
                        coeffs[:, u::window, v::window] += mags[i:j, None, None]
                rec = cv2_block_dct(coeffs, window, inverse=True)
            rec8[..., ch] = rec.astype(np.uint8)  # YUV2RGB: x.astype(np.uint8) (truncate, wrap), every channel
        out8[i:j] = cv2.cvtColor(rec8.reshape(n * h, w, 3), cv2.COLOR_YCrCb2RGB).reshape(n, h, w, 3)
    out = torch.from_numpy(out8).to(device=images.device).permute(0, 3, 1, 2)
    return out.to(images.dtype).div_(255.0)


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
    """Registered ``ftrojan`` trigger (see :func:`ftrojan`); the float pattern is cached per shape."""

    differentiable = True
    output_in_range = True

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
        self._patterns: PatternCache[Tensor] = PatternCache()

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        p = self.params
        pattern = None
        if not p.compat_uint8:  # the additive pattern depends only on shape, dtype and device: cache it
            pattern = self._patterns.get(
                (*images.shape[1:], images.dtype, images.device),
                lambda: ftrojan_rgb_pattern(
                    images, magnitude=p.magnitude, positions=self.positions, window=p.window, channels=p.channels
                ),
            )
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
