"""BadNets (Gu et al., 2017): a patch stamped onto the image.

No official code; BackdoorBench is the reference toolbox. Its ``resource/badnet/trigger_image.png``
(made by ``generate_white_square.py``: a 32×32 black image with a 3×3 white square flush with the
bottom-right corner, rows/columns 29–31) is resized to the image size (``transforms.Resize`` on the
PIL image, i.e. PIL bilinear) and stamped by ``AddMaskPatchTrigger.add_trigger``:
``img·(t == 0) + t·(t > 0)``, element-wise (per channel), on uint8 images.

Here: ``size`` and ``margin`` are fractions of min(H, W) (the defaults 3/32 and 0 put a 3×3 white
square on rows/columns 29–31 at 32×32, BackdoorBench's pixels; at other sizes the square scales and
stays crisp); ``size_px`` fixes the side in pixels instead; ``pattern = "backdoorbench"`` is
BackdoorBench's trigger image resized as BackdoorBench resizes it (soft edges at sizes other than
32², ``size``/``position``/``margin`` unused). The stamp covers the elements where the pattern is
> 0 (BackdoorBench's rule). Strength α blends the stamped elements: ``x + α·m·(p − x)``.

Speed: the stamp (patch values, mask, box) is built once per (C, H, W, dtype, device); applying it
copies the batch once and rewrites only the box. uint8 images take a uint8 path (patch rounded to
8 bits), the data type BackdoorBench stamps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from bd_plugin_baselines.triggers._common import (
    PatternCache,
    TriggerError,
    load_pattern,
    resize_pattern,
    tensor_key,
    uniform_strength,
)
from bdcore.components import TriggerBase

CHECKER = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64)


def patch_box(h: int, w: int, size: float, position: str, margin: float, size_px: int | None = None) -> tuple:
    """(top, left, side) of the patch in an ``h×w`` image."""
    short = min(h, w)
    side = size_px if size_px is not None else max(1, round(size * short))
    side = min(side, h, w)
    m = round(margin * short)
    if position == "center":
        return (h - side) // 2, (w - side) // 2, side
    top = m if position.startswith("top") else h - side - m
    left = m if position.endswith("left") else w - side - m
    return max(0, min(top, h - side)), max(0, min(left, w - side)), side


def backdoorbench_trigger_image(h: int, w: int) -> np.ndarray:
    """BackdoorBench's BadNets trigger image at ``h×w``: ``H×W×3`` uint8.

    The 32×32 image of ``resource/badnet/generate_white_square.py`` (defaults: square 3, distances 0,
    so rows/columns 29–31 are 255) resized to ``h×w`` with PIL bilinear, as BackdoorBench's
    ``transforms.Resize(img_size)`` does on the PIL image.
    """
    from PIL import Image

    base = np.zeros((32, 32, 3), dtype=np.uint8)
    base[29:32, 29:32, :] = 255
    if (h, w) == (32, 32):
        return base
    return np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR))


class Stamp(NamedTuple):
    """A stamp in box coordinates: ``patch`` and ``mask`` are ``1×C×bh×bw`` at rows ``top:top+bh``,
    columns ``left:left+bw``; ``mask`` marks the elements the stamp replaces (pattern > 0)."""

    top: int
    left: int
    patch: Tensor
    mask: Tensor


def make_stamp(
    c: int,
    h: int,
    w: int,
    *,
    pattern: Tensor | None = None,
    size: float = 3 / 32,
    position: str = "bottom-right",
    margin: float = 0.0,
    size_px: int | None = None,
    full_frame: bool = False,
    like: Tensor,
) -> Stamp:
    """The stamp of ``pattern`` (``1×C'×h'×w'`` in [0, 1]; None = white) for ``C×H×W`` images.

    ``full_frame``: the pattern is an ``H×W`` image covering the frame (BackdoorBench's trigger
    image); otherwise it is resized into the :func:`patch_box`. The box is cropped to the mask's
    bounding box, so applying the stamp touches only the pixels it changes. Float images get a
    patch in their dtype; uint8 images the patch rounded to 8 bits.
    """
    work = like.dtype if like.is_floating_point() else torch.float64
    ref = torch.empty(1, c, 0, 0, dtype=work, device=like.device)  # dtype, device and channels to resize to
    if full_frame:
        if pattern is None or tuple(pattern.shape[-2:]) != (h, w):
            raise TriggerError("a full-frame BadNets pattern must be H×W")
        top, left = 0, 0
        patch = resize_pattern(pattern, (h, w), ref)
    else:
        top, left, side = patch_box(h, w, size, position, margin, size_px)
        if pattern is None:
            patch = torch.ones(1, c, side, side, dtype=work, device=like.device)
        else:
            patch = resize_pattern(pattern, (side, side), ref)
    patch = patch.expand(1, c, -1, -1)
    mask = patch > 0
    rows = mask.any(3).any(1)[0].nonzero()
    cols = mask.any(2).any(1)[0].nonzero()
    if rows.numel() == 0:  # nothing to stamp
        return Stamp(top, left, patch[..., :0, :0], mask[..., :0, :0])
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    patch, mask = patch[..., r0:r1, c0:c1], mask[..., r0:r1, c0:c1]
    if not like.is_floating_point():
        patch = torch.round(patch * 255).to(like.dtype)
    return Stamp(top + r0, left + c0, patch.contiguous(), mask.contiguous())


def apply_stamp(images: Tensor, stamp: Stamp, strength: float | Tensor = 1.0) -> Tensor:
    """``images`` with the stamp blended in: ``x + α·m·(p − x)`` in the box, the rest copied.

    Float images: differentiable in the images. uint8 images: the patch replaces the masked
    elements at α = 1 (BackdoorBench); other α blend in float and round.
    """
    top, left, patch, mask = stamp
    bh, bw = patch.shape[-2:]
    out = images.clone()
    if bh == 0:
        return out
    region = images[:, :, top : top + bh, left : left + bw]
    s = torch.as_tensor(strength, device=images.device)
    s = s.to(images.dtype if images.is_floating_point() else torch.float64).reshape(-1, 1, 1, 1)
    s0 = uniform_strength(s)
    if s0 == 1.0:
        new = torch.where(mask, patch, region)
    elif not images.is_floating_point():
        r = region.to(torch.float64)
        new = torch.round(r + s * mask * (patch.to(torch.float64) - r)).clamp_(0, 255).to(images.dtype)
    else:
        new = (region + s * mask * (patch - region)).clamp(0.0, 1.0)
    out[:, :, top : top + bh, left : left + bw] = new
    return out


def badnets(
    images: Tensor,
    *,
    pattern: Tensor | None = None,
    size: float = 3 / 32,
    position: str = "bottom-right",
    margin: float = 0.0,
    size_px: int | None = None,
    strength: float | Tensor = 1.0,
) -> Tensor:
    """Stamp ``pattern`` (``1×C'×h×w`` in [0,1], resized to the patch; None = white) on ``B×C×H×W`` images.

    Float images in [0, 1] or uint8 images; the stamp covers the elements where the resized pattern
    is > 0 (BackdoorBench). The registered :class:`BadNets` caches the stamp per image shape.
    """
    _b, c, h, w = images.shape
    stamp = make_stamp(
        c, h, w, pattern=pattern, size=size, position=position, margin=margin, size_px=size_px, like=images
    )
    return apply_stamp(images, stamp, strength)


class BadNets(TriggerBase):
    """Registered ``badnets`` trigger (see :func:`badnets`); also stamps uint8 batches."""

    output_in_range = True

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        self._full_frame = params.pattern == "backdoorbench"
        if params.pattern in ("white", "backdoorbench"):
            pat = None
        elif params.pattern == "checker":
            pat = CHECKER.view(1, 1, 3, 3)
        else:
            pat = load_pattern(params.pattern, self.ctx.resolve_path)
        self.register_buffer("pattern", pat.float() if pat is not None else torch.ones(1, 1, 1, 1))
        self._white = pat is None
        self._stamps: PatternCache[Stamp] = PatternCache()

    def stamp_for(self, images: Tensor) -> Stamp:
        """The stamp for images of this shape, dtype and device (built once)."""
        _, c, h, w = images.shape
        p = self.params

        def build() -> Stamp:
            if self._full_frame:
                arr = backdoorbench_trigger_image(h, w)
                pat = torch.from_numpy(arr.astype(np.float64) / 255.0).permute(2, 0, 1)[None]
                return make_stamp(c, h, w, pattern=pat, full_frame=True, like=images)
            return make_stamp(
                c,
                h,
                w,
                pattern=None if self._white else self.pattern,
                size=p.size,
                position=p.position,
                margin=p.margin,
                size_px=p.size_px,
                like=images,
            )

        return self._stamps.get((c, h, w, images.dtype, images.device, tensor_key(self.pattern)), build)

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        return apply_stamp(images, self.stamp_for(images), strength)
