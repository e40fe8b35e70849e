"""Pure batched metric functions: FIBA-style low/high-frequency distance, image-target ASR."""

from __future__ import annotations

import torch
from torch import Tensor

from bdcore.errors import ComponentError
from bdcore.ops.frequency import low_band_mask


def freq_distance(a: Tensor, b: Tensor, *, beta: float = 0.1, scale: float = 255.0) -> tuple[Tensor, Tensor]:
    """Per-image low- and high-frequency MSE between two ``B×C×H×W`` images (AS-FIBA Table IV).

    Both images are scaled to ``0…scale``; the difference is split with FIBA's window
    (:func:`low_band_mask`) into a low-pass and a high-pass image, and each band's
    MSE over ``C×H×W`` is returned (``low + high`` = the total MSE, by Parseval).

    Returns:
        ``(low, high)``, each ``B`` float64.
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ComponentError(
            f"freq-distance: expected two B×C×H×W tensors of one shape, got {list(a.shape)}, {list(b.shape)}"
        )
    diff = (a.double() - b.double()) * scale
    mask = low_band_mask(diff.shape[-2], diff.shape[-1], beta, device=diff.device)
    low = torch.fft.ifft2(torch.fft.fft2(diff) * mask).real
    high = diff - low
    return low.pow(2).flatten(1).mean(1), high.pow(2).flatten(1).mean(1)


#: distances where lower = closer (the others are similarities: higher = closer)
LOWER_IS_CLOSER = {"mse": True, "lpips": True, "psnr": False, "ssim": False}


def attack_success(
    to_target: Tensor, to_reference: Tensor | None, *, distance: str, threshold: float | None = None
) -> Tensor:
    """Per-image success (float 0/1, ``B``) from values of ``distance``.

    Without ``threshold``: closer to the attack target than to the reference (strict).
    With ``threshold`` τ: ``to_target < τ`` for ``mse``/``lpips``, ``to_target > τ`` for
    ``psnr``/``ssim``.
    """
    lower = LOWER_IS_CLOSER[distance]
    if threshold is not None:
        ok = to_target < threshold if lower else to_target > threshold
    else:
        if to_reference is None:
            raise ComponentError("image-asr: without a threshold it needs the reference output")
        ok = to_target < to_reference if lower else to_target > to_reference
    return ok.to(torch.float64)
