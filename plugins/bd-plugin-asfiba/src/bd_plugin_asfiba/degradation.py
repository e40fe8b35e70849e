"""Degradations: AS-FIBA's attack target ``I_0.1`` and the blind-face-restoration LQ synthesis.

* :func:`degrade_01` — ``I_0.1``: the input downsampled to 1/10 scale (area averaging) and bilinearly
  upsampled back (half-pixel centres, ``align_corners=False``). Batched, differentiable.
* :func:`synthesize_lq` — the usual BFR degradation (GFP-GAN / GPEN style):
  ``y = ↑( JPEG_q( (k_σ ⊛ x)↓_r + n_δ ) )``: Gaussian blur (kornia), bilinear (antialiased) downsampling by r,
  Gaussian noise, a real JPEG round trip (Pillow — the actual codec, not a differentiable proxy), and
  bilinear upsampling back to the HQ size so LQ and HQ stay pixel-aligned. Per-sample parameters come from
  a seeded generator.
"""

from __future__ import annotations

import io

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def degrade_01(images: Tensor, factor: float = 0.1) -> Tensor:
    """``I_0.1`` of ``B×C×H×W`` images in [0,1]: area-downsample to ``max(1, round(H·factor))`` ×
    ``max(1, round(W·factor))`` then bilinear upsample to H×W. Returns the same shape."""
    if images.ndim != 4:
        raise ValueError(f"degrade_01: expected B×C×H×W, got {list(images.shape)}")
    h, w = images.shape[-2:]
    small = F.interpolate(images, size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


@attrs.frozen
class DegradationRanges:
    """Uniform ranges of the BFR degradation (defaults scaled for small crops; GFP-GAN uses σ∈[0.1,10],
    r∈[1,8], noise∈[0,20]/255, JPEG q∈[60,100] at 512 px)."""

    blur_sigma: tuple[float, float] = (0.2, 3.0)
    scale: tuple[float, float] = (1.0, 4.0)
    noise: tuple[float, float] = (0.0, 10.0 / 255.0)
    jpeg_quality: tuple[int, int] = (60, 95)


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=gen, dtype=torch.float64))


def _jpeg(img: Tensor, quality: int) -> Tensor:
    """Pillow JPEG round trip of one ``C×H×W`` image in [0,1] (real codec; one image at a time by nature)."""
    from PIL import Image

    arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
    if out.ndim == 2:
        out = out[:, :, None]
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def synthesize_lq(hq: Tensor, generator: torch.Generator, ranges: DegradationRanges | None = None) -> Tensor:
    """Degrade one HQ image ``C×H×W`` in [0,1] → LQ ``C×H×W`` in [0,1] (same size), seeded by ``generator``."""
    import kornia

    r = ranges or DegradationRanges()
    _c, h, w = hq.shape
    sigma = _uniform(generator, *r.blur_sigma)
    scale = _uniform(generator, *r.scale)
    noise = _uniform(generator, *r.noise)
    quality = round(_uniform(generator, *r.jpeg_quality))
    k = 2 * int(np.ceil(3 * sigma)) + 1
    x = kornia.filters.gaussian_blur2d(hq[None].float(), (k, k), (sigma, sigma), border_type="reflect")
    size = (max(2, round(h / scale)), max(2, round(w / scale)))
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = (x + noise * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    x = _jpeg(x[0], quality)[None]
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x[0].clamp(0, 1)
