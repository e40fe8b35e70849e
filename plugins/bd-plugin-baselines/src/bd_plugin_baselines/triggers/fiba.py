"""FIBA (Feng et al., CVPR 2022): blend the low-frequency amplitude spectrum with a trigger image.

Official (HazardFY/FIBA ``train.py: create_bd`` → ``Fourier_pattern``, batched cupy): ``fft2`` of
the images and of the trigger (resized to the image size), ``fftshift``; in the centred
(2b+1)×(2b+1) square, b = ⌊β·min(H, W)⌋, amplitude ← (1−α)·A_x + α·A_t; the image's phase is
kept; ``ifftshift``, ``ifft2``, real part, clip. Resolution: β is relative, so the blended band
covers the same share of the spectrum at every size. Strength scales α (α_eff = strength·alpha).

Only the window changes, so the trigger is ``x + Δ`` with Δ the inverse DFT of the window's change
``D = α·(A_t·Z/|Z| − Z)`` (``α·A_t`` where ``Z = 0``: the official ``angle(0) = 0``). We compute the
window's coefficients ``Z`` with two matrix products (a partial DFT: along W for the kept columns
0..b of the half spectrum, then along H for the kept rows) and Δ with two more, the last one fused
with the add (``addmm``) — no full-size FFT, no full-size spectrum in memory.

Precision: the blend takes the phase of every window coefficient, and that phase is ill-conditioned
where ``|Z|`` is small: a float32 transform errs by ~1e-7·‖x‖ per coefficient, which turns the
phase of a near-zero coefficient into noise that the blend then scales by ``α·A_t`` — up to 7/255
on a high-contrast 224² image (a checkerboard with a faint texture; tested). So ``Z`` and ``D`` are
computed in float64 whatever the image dtype (float64 products of float32 inputs are exact), and
only Δ's synthesis, which is well-conditioned, runs in the image dtype.

:meth:`FIBA.pseudo_poison` gives FIBA's "cross" samples (official ``create_cross``: the same blend with
other, random images, labels kept), here with an image drawn per sample from ``pseudo_patterns`` (the
:class:`~bdcore.protocols.PseudoTrigger` capability, e.g. the pseudo term of AS-FIBA's Eq. 5).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from bd_plugin_baselines.triggers._common import (
    NON_FACE_SCENES,
    PatternCache,
    load_pattern,
    resize_pattern,
    tensor_key,
)
from bdcore.components import TriggerBase, as_strength


def fiba_window(h: int, w: int, beta: float) -> tuple[slice, slice]:
    """Rows and columns of the centred square in the fftshifted spectrum."""
    b = int(min(h, w) * beta)
    ch, cw = h // 2, w // 2
    return slice(max(ch - b, 0), ch + b + 1), slice(max(cw - b, 0), cw + b + 1)


def _window_frequencies(h: int, w: int, beta: float) -> tuple[Tensor, Tensor]:
    """The official square as half-spectrum indices: rows ``{0..b} ∪ {H−b..H−1}`` (frequencies
    −b..b, without repeats), columns ``0..b`` (the rest of the square is their Hermitian mirror)."""
    half = int(min(h, w) * beta)
    rows = torch.cat([torch.arange(0, min(half, h - 1) + 1), torch.arange(max(h - half, half + 1), h)])
    cols = torch.arange(0, min(half, w // 2) + 1)
    return rows, cols


def _phase(freqs: Tensor, n: int) -> Tensor:
    """``2π·(k·i mod n)/n`` for k in ``freqs`` (rows) and i in 0..n−1 (columns), float64, reduced exactly."""
    return torch.remainder(torch.outer(freqs, torch.arange(n)), n).to(torch.float64) * (2 * math.pi / n)


class FibaPlan(NamedTuple):
    """The partial-DFT matrices of one (H, W, β) on one device. ``R`` rows, ``K`` columns kept.

    ``fwd_w`` ``W×2K`` and ``fwd_h`` ``2R×H`` (float64) give the window ``Z``; ``inv_h`` ``2H×2R``
    (float64) and ``inv_w`` ``2K×W`` (the image dtype) give Δ back from the window change ``D``.
    """

    rows: int
    cols: int
    fwd_w: Tensor
    fwd_h: Tensor
    inv_h: Tensor
    inv_w: Tensor


def fiba_plan(h: int, w: int, beta: float, like: Tensor) -> FibaPlan:
    """The :class:`FibaPlan` of ``h×w`` images like ``like`` (device; ``inv_w`` in its dtype)."""
    rows, cols = _window_frequencies(h, w, beta)
    tw = _phase(cols, w)  # K×W
    th = _phase(rows, h)  # R×H
    cw, sw, ch, sh = torch.cos(tw), torch.sin(tw), torch.cos(th), torch.sin(th)
    fwd_w = torch.cat([cw, -sw], 0).T  # Σ_x x·e^{−iθ}: real part, imaginary part
    fwd_h = torch.cat([ch, sh], 0)
    inv_h = torch.cat([torch.cat([ch.T, -sh.T], 1), torch.cat([sh.T, ch.T], 1)], 0)  # Σ_ky D·e^{+iφ}
    # half-spectrum synthesis weights: the column 0 (and W/2) once, the others for themselves and their mirror
    weight = torch.where((cols == 0) | (2 * cols == w), 1.0, 2.0).to(torch.float64).view(-1, 1)
    inv_w = torch.cat([weight * cw, -weight * sw], 0) / (h * w)
    dev = like.device
    return FibaPlan(
        len(rows),
        len(cols),
        fwd_w.contiguous().to(dev),
        fwd_h.to(dev),
        inv_h.to(dev),
        inv_w.to(device=dev, dtype=like.dtype),
    )


def window_spectrum(x: Tensor, plan: FibaPlan) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of the window coefficients of ``N×H×W`` planes: ``N×R×K`` float64 each."""
    u = x.to(torch.float64) @ plan.fwd_w  # N×H×2K: along W
    p = plan.fwd_h @ u  # N×2R×2K: along H
    r, k = plan.rows, plan.cols
    return p[:, :r, :k] + p[:, r:, k:], p[:, :r, k:] - p[:, r:, :k]


def window_change(zr: Tensor, zi: Tensor, amp_t: Tensor, ratio: Tensor) -> Tensor:
    """``[Dr; Di]`` (``N×2R×K``): the blend's change of the window, ``α·(A_t·Z/|Z| − Z)``."""
    amp = torch.hypot(zr, zi)
    nonzero = amp > 0
    k = ratio * (amp_t - amp) / torch.where(nonzero, amp, torch.ones_like(amp))
    dr = torch.where(nonzero, k * zr, ratio * amp_t)  # |Z| = 0: phase 0 as the official angle(0)
    di = torch.where(nonzero, k * zi, torch.zeros_like(zi))
    return torch.cat([dr, di], 1)


def _synthesis_input(d: Tensor, plan: FibaPlan, h: int, dtype: torch.dtype) -> Tensor:
    """``N×H×2K`` = [Re G | Im G] with G = Σ_ky D·e^{+iφ} (the change, inverse-transformed along H)."""
    g = plan.inv_h @ d  # N×2H×K
    return torch.cat([g[:, :h], g[:, h:]], 2).to(dtype)


#: channel planes per chunk of the no-grad path (keeps its float64 copies cache-sized)
_CHUNK_ELEMENTS = 1 << 20


def fiba(
    images: Tensor,
    trigger: Tensor,
    *,
    alpha: float = 0.15,
    beta: float = 0.1,
    strength: float | Tensor = 1.0,
    plan: FibaPlan | None = None,
    trigger_amp: Tensor | None = None,
) -> Tensor:
    """Amplitude-spectrum blend of ``B×C×H×W`` images with a ``1×C×H×W`` (or ``B×C×H×W``) trigger image, in [0, 1].

    ``plan``: cached :func:`fiba_plan`; ``trigger_amp``: cached :func:`trigger_amplitude` of
    ``trigger`` (``1×C×R×K`` or ``B×C×R×K``). Differentiable (where the image spectrum is
    non-zero); clamped to [0, 1]; strength 0 returns the input exactly.
    """
    b, c, h, w = images.shape
    plan = plan or fiba_plan(h, w, beta, images)
    if trigger_amp is None:
        trigger_amp = trigger_amplitude(trigger.to(images), plan)
    ratio = (alpha * torch.as_tensor(strength, device=images.device).to(torch.float64)).reshape(-1, 1, 1, 1)
    ratio = ratio.expand(b, c, 1, 1)
    amp_t = trigger_amp.to(torch.float64).expand(b, c, -1, -1)
    planes = images.reshape(b * c, h, w)
    if torch.is_grad_enabled() and (images.requires_grad or ratio.requires_grad):
        zr, zi = window_spectrum(planes, plan)
        d = window_change(zr, zi, amp_t.reshape(b * c, plan.rows, plan.cols), ratio.reshape(-1, 1, 1))
        g = _synthesis_input(d, plan, h, images.dtype)
        out = torch.baddbmm(planes, g, plan.inv_w.expand(b * c, -1, -1))
        return out.view(b, c, h, w).clamp(0.0, 1.0)
    out = torch.empty_like(planes)
    step = max(1, _CHUNK_ELEMENTS // (h * w))
    amp_t, ratio = amp_t.reshape(b * c, plan.rows, plan.cols), ratio.reshape(-1, 1, 1)
    with torch.no_grad():
        for i in range(0, b * c, step):
            x = planes[i : i + step]
            zr, zi = window_spectrum(x, plan)
            g = _synthesis_input(window_change(zr, zi, amp_t[i : i + step], ratio[i : i + step]), plan, h, x.dtype)
            o = out[i : i + step]
            torch.addmm(x.reshape(-1, w), g.reshape(-1, g.shape[-1]), plan.inv_w, out=o.view(-1, w))
            o.clamp_(0.0, 1.0)
    return out.view(b, c, h, w)


def trigger_amplitude(trigger: Tensor, plan: FibaPlan) -> Tensor:
    """``|Z_t|`` on the window of ``N×C×H×W`` trigger images: ``N×C×R×K`` float64."""
    n, c, h, w = trigger.shape
    zr, zi = window_spectrum(trigger.reshape(n * c, h, w), plan)
    return torch.hypot(zr, zi).view(n, c, plan.rows, plan.cols)


class FIBA(TriggerBase):
    """Registered ``fiba`` trigger (see :func:`fiba`); the trigger image is a uint8 buffer.

    The resized trigger, its window amplitude and the DFT plan are built once per image shape.
    """

    output_in_range = True

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        pat = load_pattern(params.pattern, self.ctx.resolve_path)
        self.register_buffer("pattern", torch.round(pat * 255).to(torch.uint8))
        self._cache: PatternCache[tuple[Tensor, FibaPlan, Tensor]] = PatternCache()
        self._pseudo: list[Tensor] | None = None  # loaded on first use (decoded from files, not saved)
        self._pseudo_cache: PatternCache[tuple[Tensor, Tensor]] = PatternCache()

    def _prepared(self, images: Tensor) -> tuple[Tensor, FibaPlan, Tensor]:
        """(resized trigger, plan, trigger amplitude) for images of this shape, dtype and device."""

        def build() -> tuple[Tensor, FibaPlan, Tensor]:
            trg = resize_pattern(self.pattern.to(torch.float64) / 255.0, tuple(images.shape[-2:]), images)
            plan = fiba_plan(images.shape[-2], images.shape[-1], self.params.beta, images)
            return trg, plan, trigger_amplitude(trg, plan)

        key = (*images.shape[1:], images.dtype, images.device, tensor_key(self.pattern))
        return self._cache.get(key, build)

    def trigger_for(self, images: Tensor) -> Tensor:
        """The trigger image resized (bilinear, antialiased) to the images' size: ``1×C×H×W``."""
        return self._prepared(images)[0]

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        p = self.params
        trg, plan, amp_t = self._prepared(images)
        return fiba(images, trg, alpha=p.alpha, beta=p.beta, strength=strength, plan=plan, trigger_amp=amp_t)

    def pseudo_pattern_specs(self) -> tuple[str, ...]:
        """The pseudo-trigger images: ``pseudo_patterns``, or the embedded non-face photographs but ``pattern``."""
        p = self.params
        if p.pseudo_patterns:
            return tuple(p.pseudo_patterns)
        return tuple(f"embedded:{n}" for n in NON_FACE_SCENES if f"embedded:{n}" != p.pattern)

    def _pseudo_prepared(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if self._pseudo is None:
            self._pseudo = [load_pattern(s, self.ctx.resolve_path) for s in self.pseudo_pattern_specs()]
        pseudo = self._pseudo

        def build() -> tuple[Tensor, Tensor]:
            size = tuple(images.shape[-2:])
            pool = torch.cat([resize_pattern(q, size, images) for q in pseudo])
            return pool, trigger_amplitude(pool, self._prepared(images)[1])

        return self._pseudo_cache.get((*images.shape[1:], images.dtype, images.device), build)

    def pseudo_triggers_for(self, images: Tensor) -> Tensor:
        """The pseudo-trigger images resized like :meth:`trigger_for`: ``N×C×H×W``."""
        return self._pseudo_prepared(images)[0]

    def pseudo_poison(
        self, images: Tensor, generator: torch.Generator | None = None, strength: float | Tensor = 1.0
    ) -> Tensor:
        """FIBA's cross sample: :func:`fiba` with a pseudo-trigger image drawn per sample (uniformly, from
        ``generator``) instead of the trigger image. ``B×C×H×W`` in [0, 1] → same."""
        p = self.params
        pool, pool_amp = self._pseudo_prepared(images)
        idx = torch.randint(pool.shape[0], (images.shape[0],), generator=generator).to(pool.device)
        s = as_strength(strength, images)
        plan = self._prepared(images)[1]
        return fiba(images, pool[idx], alpha=p.alpha, beta=p.beta, strength=s, plan=plan, trigger_amp=pool_amp[idx])
