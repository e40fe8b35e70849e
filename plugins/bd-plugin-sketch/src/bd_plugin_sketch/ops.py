"""Pure, batched tensor functions of the sketch task.

All images are ``B×C×H×W`` float in [0, 1], white = 1 (paper), black = 0 (stroke).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: ITU-R BT.601 luma weights (the same as PIL's ``convert("L")``).
LUMA = (0.299, 0.587, 0.114)


def to_grey(images: Tensor) -> Tensor:
    """``B×3×H×W`` or ``B×1×H×W`` → ``B×1×H×W`` luma (BT.601); grey input passes unchanged."""
    if images.shape[1] == 1:
        return images
    if images.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {images.shape[1]}")
    w = images.new_tensor(LUMA).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def pencil_sketch(images: Tensor, *, sigma: float = 4.0, eps: float = 1e-3) -> Tensor:
    """Classical pencil sketch: colour dodge of the grey image by its blurred inverse.

    ``s = min(1, g / max(1 − blur_σ(1 − g), eps))`` with ``g`` the luma (BT.601) and a
    Gaussian blur of std ``sigma`` px (kernel side ``2·ceil(3σ)+1``, reflect border).
    ``B×C×H×W`` [0, 1] → ``B×1×H×W`` [0, 1].
    """
    import kornia

    g = to_grey(images)
    half = max(1, int(torch.tensor(3.0 * sigma).ceil()))
    k = 2 * half + 1
    blurred = kornia.filters.gaussian_blur2d(1.0 - g, (k, k), (sigma, sigma), border_type="reflect")
    return (g / (1.0 - blurred).clamp_min(eps)).clamp(0.0, 1.0)


def lighten_strokes(sketch: Tensor, lightening: float | Tensor) -> Tensor:
    """Light strokes: every pixel's darkness ``1 − y`` is scaled by ``1 − s``.

    ``y' = 1 − (1 − y)·(1 − s)``; ``s = 0`` leaves the sketch unchanged, ``s = 1`` gives a
    blank page. ``s`` is a float or a ``B`` tensor (per sample). Shape and range preserved.
    """
    s = torch.as_tensor(lightening, dtype=sketch.dtype, device=sketch.device)
    if s.ndim == 1:
        s = s.view(-1, *([1] * (sketch.ndim - 1)))
    return 1.0 - (1.0 - sketch) * (1.0 - s)


def stroke_mask(reference: Tensor, threshold: float = 0.5) -> Tensor:
    """Stroke pixels of a reference sketch: grey value ``≤ threshold`` (``B×1×H×W`` bool)."""
    return to_grey(reference) <= threshold


def stroke_intensity(images: Tensor, reference: Tensor, threshold: float = 0.5) -> Tensor:
    """Mean darkness ``1 − y`` of ``images`` over the stroke pixels of ``reference`` → ``B``.

    The mask is ``reference ≤ threshold`` (grey). Images without a stroke pixel give NaN.
    """
    if images.shape[0] != reference.shape[0] or images.shape[-2:] != reference.shape[-2:]:
        raise ValueError(f"images {list(images.shape)} and reference {list(reference.shape)} do not match")
    mask = stroke_mask(reference, threshold).to(images.dtype)
    dark = 1.0 - to_grey(images)
    n = mask.flatten(1).sum(1)
    total = (dark * mask).flatten(1).sum(1)
    return torch.where(n > 0, total / n.clamp_min(1), torch.full_like(n, float("nan")))


def stroke_reduction(triggered: Tensor, clean: Tensor, reference: Tensor, threshold: float = 0.5) -> Tensor:
    """Relative loss of stroke darkness, ``1 − SI(triggered)/SI(clean)`` per image → ``B``.

    Both intensities use the stroke mask of ``reference``; 1 = strokes vanished, 0 = unchanged.
    """
    a = stroke_intensity(triggered, reference, threshold)
    b = stroke_intensity(clean, reference, threshold)
    return 1.0 - a / b.clamp_min(1e-8)
