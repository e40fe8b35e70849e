"""Frequency-band masks on the unshifted 2-D FFT grid (FIBA's low-frequency window and a disk variant)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def low_band_mask(h: int, w: int, beta: float, window: str = "square", *, device: torch.device | str = "cpu") -> Tensor:
    """Low band of an ``H×W`` ``fft2`` grid (unshifted), ``H×W`` bool.

    ``"square"``: FIBA's window. FIBA takes ``fftshift(fft2(x))`` and the centred ``(2b+1)×(2b+1)``
    square, ``b = floor(min(H, W)·beta)``; that is the integer frequencies ``|k_y| ≤ b`` and ``|k_x| ≤ b``,
    selected here without shifting. ``"disk"``: ``k_y² + k_x² ≤ (beta·min(H, W))²``.
    """
    ky = torch.fft.fftfreq(h, d=1.0 / h, device=device)
    kx = torch.fft.fftfreq(w, d=1.0 / w, device=device)
    if window == "square":
        b = math.floor(min(h, w) * beta)
        return (ky.abs()[:, None] <= b) & (kx.abs()[None, :] <= b)
    if window == "disk":
        r = min(h, w) * beta
        return ky[:, None] ** 2 + kx[None, :] ** 2 <= r * r
    raise ValueError(f"low_band_mask: window must be 'square' or 'disk' (got {window!r})")
