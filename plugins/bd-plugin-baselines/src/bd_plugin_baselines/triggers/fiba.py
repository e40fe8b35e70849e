"""FIBA (Feng et al., CVPR 2022): blend the low-frequency amplitude spectrum with a trigger image.

Official (HazardFY/FIBA ``train.py: Fourier_pattern``), per image and channel: ``fft2`` of the
image and the trigger (resized to the image size), ``fftshift``; in the centred
(2b+1)×(2b+1) square, b = ⌊β·min(H, W)⌋, amplitude ← (1−α)·A_x + α·A_t; the image's phase is
kept; ``ifftshift``, ``ifft2``, real part, clip. Resolution: β is relative, so the blended band
covers the same share of the spectrum at every size. Strength scales α (α_eff = strength·alpha).

:meth:`FIBA.pseudo_poison` gives FIBA's "cross" samples (official ``create_cross``: the same blend with
other, random images, labels kept), here with an image drawn per sample from ``pseudo_patterns`` (the
:class:`~bdcore.protocols.PseudoTrigger` capability, e.g. the pseudo term of AS-FIBA's Eq. 5).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bd_plugin_baselines.triggers._common import NON_FACE_SCENES, load_pattern, resize_pattern
from bdcore.components import TriggerBase, as_strength


def fiba_window(h: int, w: int, beta: float) -> tuple[slice, slice]:
    """Rows and columns of the centred square in the fftshifted spectrum."""
    b = int(min(h, w) * beta)
    ch, cw = h // 2, w // 2
    return slice(max(ch - b, 0), ch + b + 1), slice(max(cw - b, 0), cw + b + 1)


def fiba(
    images: Tensor, trigger: Tensor, *, alpha: float = 0.15, beta: float = 0.1, strength: float | Tensor = 1.0
) -> Tensor:
    """Amplitude-spectrum blend of ``B×C×H×W`` images with a ``1×C×H×W`` trigger image, in [0, 1].

    Differentiable (where the image spectrum is non-zero); clamped to [0, 1].
    """
    _b, _c, h, w = images.shape
    s = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    ratio = alpha * s
    half = int(min(h, w) * beta)
    # Real input: work on the half spectrum (rfft2). The centred square of the shifted spectrum is
    # the frequencies |k_y|, |k_x| <= half; its rfft part is rows {0..half, H-half..H-1} x cols 0..half.
    # Amplitude blending keeps Hermitian symmetry, so irfft2 equals the official Re(ifft2(...)).
    rows = torch.cat([torch.arange(0, min(half, h - 1) + 1), torch.arange(max(h - half, half + 1), h)])
    cols = slice(0, min(half, w // 2) + 1)
    spec = torch.fft.rfft2(images)
    amp_t = torch.fft.rfft2(trigger.to(images))[..., rows, cols].abs()
    z = spec[..., rows, cols]
    amp = z.abs()
    new_amp = amp + ratio * (amp_t - amp)
    safe = torch.where(amp > 0, amp, torch.ones_like(amp))
    z_new = torch.where(amp > 0, z * (new_amp / safe), torch.polar(new_amp, torch.zeros_like(new_amp)))
    spec = spec.clone()
    spec[..., rows, cols] = z_new
    out = torch.fft.irfft2(spec, s=(h, w))
    if bool((s == 0).any()):  # strength 0: exactly the input
        out = torch.where(s == 0, images, out)
    return out.clamp_(0.0, 1.0)


class FIBA(TriggerBase):
    """Registered ``fiba`` trigger (see :func:`fiba`); the trigger image is a uint8 buffer."""

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        pat = load_pattern(params.pattern, self.ctx.resolve_path)
        self.register_buffer("pattern", torch.round(pat * 255).to(torch.uint8))
        self._cache: dict = {}
        self._pseudo: list[Tensor] | None = None  # loaded on first use (decoded from files, not saved)
        self._pseudo_cache: dict = {}

    def trigger_for(self, images: Tensor) -> Tensor:
        """The trigger image resized (bilinear, antialiased) to the images' size: ``1×C×H×W``."""
        key = (images.shape[1:], images.device, images.dtype)
        if key not in self._cache:
            pat = self.pattern.to(torch.float64) / 255.0
            self._cache = {key: resize_pattern(pat, tuple(images.shape[-2:]), images)}
        return self._cache[key]

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        p = self.params
        return fiba(images, self.trigger_for(images), alpha=p.alpha, beta=p.beta, strength=strength)

    def pseudo_pattern_specs(self) -> tuple[str, ...]:
        """The pseudo-trigger images: ``pseudo_patterns``, or the embedded non-face photographs but ``pattern``."""
        p = self.params
        if p.pseudo_patterns:
            return tuple(p.pseudo_patterns)
        return tuple(f"embedded:{n}" for n in NON_FACE_SCENES if f"embedded:{n}" != p.pattern)

    def pseudo_triggers_for(self, images: Tensor) -> Tensor:
        """The pseudo-trigger images resized like :meth:`trigger_for`: ``N×C×H×W``."""
        if self._pseudo is None:
            self._pseudo = [load_pattern(s, self.ctx.resolve_path) for s in self.pseudo_pattern_specs()]
        key = (images.shape[1:], images.device, images.dtype)
        if key not in self._pseudo_cache:
            size = tuple(images.shape[-2:])
            self._pseudo_cache = {key: torch.cat([resize_pattern(q, size, images) for q in self._pseudo])}
        return self._pseudo_cache[key]

    def pseudo_poison(
        self, images: Tensor, generator: torch.Generator | None = None, strength: float | Tensor = 1.0
    ) -> Tensor:
        """FIBA's cross sample: :func:`fiba` with a pseudo-trigger image drawn per sample (uniformly, from
        ``generator``) instead of the trigger image. ``B×C×H×W`` in [0, 1] → same."""
        p = self.params
        pool = self.pseudo_triggers_for(images)
        idx = torch.randint(pool.shape[0], (images.shape[0],), generator=generator).to(pool.device)
        s = as_strength(strength, images)
        return fiba(images, pool[idx], alpha=p.alpha, beta=p.beta, strength=s)
