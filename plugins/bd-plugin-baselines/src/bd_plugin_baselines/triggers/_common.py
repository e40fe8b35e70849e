"""Shared helpers of the baseline triggers: colour transforms, block DCT, pattern loading.

All functions are batched torch on ``B×C×H×W`` tensors and keep device and dtype.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bdcore.errors import ComponentError


class TriggerError(ComponentError):
    """A baseline trigger was misconfigured (bad pattern path, incompatible image)."""


# --- per-shape pattern caches and the memory-floor application ------------------------------------

_V = TypeVar("_V")


class PatternCache(Generic[_V]):
    """A small LRU cache of what a trigger derives once per input shape (pattern, stamp, grid, DFT plan).

    Keys are built by the caller from ``(C, H, W, dtype, device, …)`` plus :func:`tensor_key` of
    the buffers the value is derived from, so a ``load_state_dict`` or ``.to()`` is never served a
    stale entry. Not a buffer: nothing here is saved with the artifact.
    """

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, _V] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], _V]) -> _V:
        """The cached value of ``key``, built with ``build()`` on a miss (least recently used evicted)."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = build()
        self._items[key] = value
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


@contextmanager
def single_threaded(enabled: bool = True) -> Iterator[None]:
    """Run a block of small elementwise ops (~10⁵ elements each) with one intra-op thread, then restore.

    Each such op otherwise opens a parallel region whose launch waits for the other workers; on a
    machine shared with other jobs that wait is a scheduler time slice (measured: a dozen ops on
    192×51×26 float64 take 13 ms on one thread and 380 ms on two). The previous count is restored on
    exit; only CPU work should run inside.
    """
    prev = torch.get_num_threads()
    if not enabled or prev == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def tensor_key(t: Tensor) -> tuple:
    """Identity of a buffer's current contents for cache keys: storage, in-place version, dtype, device."""
    return (t.data_ptr(), t._version, t.dtype, t.device)


def uniform_strength(strength: Tensor) -> float | None:
    """The common value of a ``B×1×1×1`` strength when every sample has the same one and no gradient
    flows to it (then a scalar ``alpha`` op replaces a broadcast multiply), else None."""
    if strength.requires_grad:
        return None
    flat = strength.reshape(-1)
    first = flat[:1]
    return float(first) if flat.numel() == 1 or bool((flat == first).all()) else None


def add_pattern_clamped(images: Tensor, pattern: Tensor, strength: Tensor) -> Tensor:
    """``(images + strength·pattern).clamp(0, 1)``: one fused add into a fresh tensor, clamped in place.

    ``pattern`` is ``1×C×H×W`` or ``1×1×H×W`` (broadcast) on the images' device and dtype; ``strength``
    a ``B×1×1×1`` tensor. The memory floor of an additive trigger: one read of the batch, one write.
    """
    s = uniform_strength(strength)
    if s is None:
        out = torch.addcmul(images, strength.to(images.dtype), pattern)
    elif s == 1.0:
        out = torch.add(images, pattern)
    else:
        out = torch.add(images, pattern, alpha=s)
    return out.clamp_(0.0, 1.0)


# JPEG / BT.601 full-range YCbCr, data range 255 (the same matrix cv2 uses for YCrCb, in float).
_RGB2YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=torch.float64
)
_YCBCR2RGB = torch.linalg.inv(_RGB2YCBCR)
_OFFSET = torch.tensor([0.0, 128.0, 128.0], dtype=torch.float64)


def rgb_to_ycbcr255(x: Tensor) -> Tensor:
    """``B×3×H×W`` RGB in [0, 255] → Y, Cb, Cr in [0, 255] (JPEG full range, float)."""
    m = _RGB2YCBCR.to(x)
    return torch.einsum("ij,bjhw->bihw", m, x) + _OFFSET.to(x).view(1, 3, 1, 1)


def ycbcr255_to_rgb(y: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr255` (float, unclamped)."""
    m = _YCBCR2RGB.to(y)
    return torch.einsum("ij,bjhw->bihw", m, y - _OFFSET.to(y).view(1, 3, 1, 1))


def ycbcr_delta_to_rgb(d: Tensor) -> Tensor:
    """An additive change ``d`` of (Y, Cb, Cr) mapped to the equal change of RGB (``B×3×H×W``)."""
    return torch.einsum("ij,bjhw->bihw", _YCBCR2RGB.to(d), d)


# --- DCT -------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _dct_matrix_cpu(n: int) -> Tensor:
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * k * (2 * i + 1) / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def dct_matrix(n: int, like: Tensor) -> Tensor:
    """Orthonormal DCT-II matrix ``D`` (``n×n``): ``dct(x) = D @ x`` (= scipy ``dct(norm='ortho')``)."""
    return _dct_matrix_cpu(n).to(device=like.device, dtype=like.dtype)


def block_idct_pattern(coeffs: Tensor) -> Tensor:
    """Spatial pattern of one ``N×N`` block whose orthonormal 2-D DCT is ``coeffs`` (``...×N×N``)."""
    d = dct_matrix(coeffs.shape[-1], coeffs)
    return d.T @ coeffs @ d


def block_dct2(x: Tensor, n: int) -> Tensor:
    """Orthonormal 2-D DCT of each non-overlapping ``n×n`` block (H, W multiples of n), same layout."""
    b, c, h, w = x.shape
    d = dct_matrix(n, x)
    blocks = x.reshape(b, c, h // n, n, w // n, n)
    out = torch.einsum("ki,bcyixj,lj->bcykxl", d, blocks, d)
    return out.reshape(b, c, h, w)


def block_idct2(x: Tensor, n: int) -> Tensor:
    """Inverse of :func:`block_dct2`."""
    b, c, h, w = x.shape
    d = dct_matrix(n, x)
    blocks = x.reshape(b, c, h // n, n, w // n, n)
    out = torch.einsum("ik,bcykxl,jl->bcyixj", d, blocks, d)
    return out.reshape(b, c, h, w)


# --- patterns --------------------------------------------------------------------------------------

#: bdcore's embedded photographs without a face (astronaut and grace_hopper are faces): the default
#: pseudo-trigger ("cross") images of FIBA, the same set AS-FIBA's SF-I-Net draws trigger images from
NON_FACE_SCENES = ("coffee", "chelsea", "rocket", "motorcycle_left", "china", "flower", "immunohistochemistry")


def load_pattern(spec: str | Path, ctx_resolve=None, channels: int = 3) -> Tensor:  # noqa: ANN001
    """A pattern image as ``1×C×h×w`` float64 in [0, 1].

    ``spec`` is ``"embedded:<name>"`` (a bdcore embedded scene, e.g. ``embedded:coffee``)
    or a path to an image file (relative paths resolve with ``ctx_resolve``).
    """
    text = str(spec)
    if text.startswith("embedded:"):
        from bdcore.data.embedded import SCENES, load_scene

        name = text.split(":", 1)[1]
        if name not in SCENES:
            raise TriggerError(f"unknown embedded pattern {name!r} (choose from {', '.join(SCENES)})")
        arr = load_scene(name)
    else:
        path = Path(ctx_resolve(text) if ctx_resolve else text)
        if not path.is_file():
            raise TriggerError(f"pattern image not found: {path} (give a readable image file or 'embedded:<scene>')")
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    t = torch.from_numpy(arr.astype(np.float64) / 255.0).permute(2, 0, 1).unsqueeze(0)
    if channels == 1:
        t = (t * torch.tensor([0.299, 0.587, 0.114], dtype=t.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return t


def fit_channels(pattern: Tensor, channels: int) -> Tensor:
    """Match a ``1×C'×h×w`` pattern to ``channels`` (grey ↔ RGB)."""
    if pattern.shape[1] == channels:
        return pattern
    if channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=pattern.dtype, device=pattern.device).view(1, 3, 1, 1)
        return (pattern * w).sum(1, keepdim=True)
    if pattern.shape[1] == 1:
        return pattern.expand(-1, channels, -1, -1)
    raise TriggerError(f"cannot map a {pattern.shape[1]}-channel pattern to {channels} channels")


def resize_pattern(pattern: Tensor, size: tuple[int, int], like: Tensor) -> Tensor:
    """Bilinear resize (antialiased when shrinking) of ``1×C×h×w`` to ``size``, on ``like``'s device/dtype."""
    p = fit_channels(pattern.to(device=like.device, dtype=like.dtype), like.shape[1])
    if tuple(p.shape[-2:]) == tuple(size):
        return p
    return F.interpolate(p, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
