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
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_baselines.triggers._common import (
    NON_FACE_SCENES,
    PatternCache,
    load_pattern,
    resize_pattern,
    single_threaded,
    tensor_key,
)
from bdcore.components import TriggerBase, as_strength


def fiba_window(h: int, w: int, beta: float) -> tuple[slice, slice]:
    """Rows and columns of the centred square in the fftshifted spectrum."""
    b = int(min(h, w) * beta)
    ch, cw = h // 2, w // 2
    return slice(max(ch - b, 0), ch + b + 1), slice(max(cw - b, 0), cw + b + 1)


def _window_frequencies(h: int, w: int, beta: float) -> tuple[Tensor, int, Tensor]:
    """The official square as half-spectrum frequencies.

    Rows: the official ±b (clipped to the H frequencies, without repeats) as ``reps`` = 0..b' and
    the ``n_neg`` negatives −1..−n_neg (the partners of ``reps[1:1+n_neg]``; 0 and H/2 are their own).
    Columns: ``0..b`` (the rest of the square is the Hermitian mirror of the kept part).
    """
    half = int(min(h, w) * beta)
    reps = torch.arange(0, min(half, h // 2) + 1)
    n_neg = min(half, (h + 1) // 2 - 1)
    cols = torch.arange(0, min(half, w // 2) + 1)
    return reps, n_neg, cols


def _phase(freqs: Tensor, idx: Tensor, n: int) -> Tensor:
    """``2π·(k·i mod n)/n`` for k in ``freqs`` (rows) and i in ``idx`` (columns), float64, reduced exactly."""
    return torch.remainder(torch.outer(freqs, idx), n).to(torch.float64) * (2 * math.pi / n)


class FibaPlan(NamedTuple):
    """The partial-DFT matrices of one (H, W, β) on one device; the window has ``rows`` = ``reps`` +
    ``n_neg`` rows (frequencies 0..b', then −1..−n_neg) and ``cols`` columns (0..b).

    ``fwd_w`` (``W×2K``: cos | −sin) transforms along W; along H a frequency and its negative share
    one cosine and one sine row (``fwd_h`` ``2·reps×H``; ``inv_h`` ``H×2·reps``), which halves those
    products. All float64 but ``inv_h`` and ``inv_w`` (``2K×W``, the synthesis along W), in the
    image dtype.
    """

    rows: int
    cols: int
    reps: int
    n_neg: int
    fwd_w: Tensor
    fwd_h: Tensor
    inv_h: Tensor
    inv_w: Tensor


def fiba_plan(h: int, w: int, beta: float, like: Tensor) -> FibaPlan:
    """The :class:`FibaPlan` of ``h×w`` images like ``like`` (device; the synthesis in its dtype)."""
    reps, n_neg, cols = _window_frequencies(h, w, beta)
    th = _phase(reps, torch.arange(h), h)
    ch, sh = torch.cos(th), torch.sin(th)
    sh[(reps == 0) | (2 * reps == h)] = 0.0  # self-paired frequencies: exactly no sine part
    tw = _phase(cols, torch.arange(w), w)  # K×W
    cw, sw = torch.cos(tw), torch.sin(tw)
    # half-spectrum synthesis weights: the column 0 (and W/2) once, the others for themselves and their mirror
    weight = torch.where((cols == 0) | (2 * cols == w), 1.0, 2.0).to(torch.float64).view(-1, 1)
    inv_w = torch.cat([weight * cw, -weight * sw], 0) / (h * w)
    dev, dt = like.device, like.dtype
    return FibaPlan(
        rows=len(reps) + n_neg,
        cols=len(cols),
        reps=len(reps),
        n_neg=n_neg,
        fwd_w=torch.cat([cw, -sw], 0).T.contiguous().to(dev),  # Σ_x x·e^{−iθ}: real part, imaginary part
        fwd_h=torch.cat([ch, sh], 0).to(dev),
        inv_h=torch.cat([ch, sh], 0).T.contiguous().to(device=dev, dtype=dt),
        inv_w=inv_w.to(device=dev, dtype=dt),
    )


def window_spectrum(x: Tensor, plan: FibaPlan, workspace: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of the window coefficients of ``N×H×W`` planes: ``N×R×K`` float64 each.

    ``workspace``: a float64 buffer the planes are converted into chunk by chunk (then no float64 copy
    of the whole batch is allocated; its size sets the chunk). Without it, one differentiable pass.
    """
    return _window_from_products(window_products(x, plan, workspace), plan)


def window_products(x: Tensor, plan: FibaPlan, workspace: Tensor | None = None) -> Tensor:
    """The two large products of :func:`window_spectrum` (``N×2reps×2K``), before the small combination."""
    n, h, w = x.shape
    if workspace is None:
        return plan.fwd_h @ (x.to(torch.float64) @ plan.fwd_w)
    u = torch.empty(n, h, 2 * plan.cols, dtype=torch.float64, device=x.device)
    step = max(1, workspace.numel() // (h * w))
    for i in range(0, n, step):
        m = min(step, n - i)
        buf = workspace[: m * h * w].view(m * h, w)
        buf.copy_(x[i : i + m].reshape(m * h, w))  # float32 → float64: exact
        torch.mm(buf, plan.fwd_w, out=u[i : i + m].view(m * h, -1))
    return plan.fwd_h @ u


def _window_from_products(p: Tensor, plan: FibaPlan) -> tuple[Tensor, Tensor]:
    """Z on the window from ``[cos; sin]·[Re U | Im U]``: Z(f) = (cRe + sIm) + i(cIm − sRe), and for
    −f the signs of the sine terms flip."""
    r, q, k = plan.reps, plan.n_neg, plan.cols
    cr, ci, sr, si = p[:, :r, :k], p[:, :r, k:], p[:, r:, :k], p[:, r:, k:]
    zr = torch.cat([cr + si, (cr - si)[:, 1 : q + 1]], 1)  # frequencies 0..b', then −1..−q
    zi = torch.cat([ci - sr, (ci + sr)[:, 1 : q + 1]], 1)
    return zr, zi


def window_change(zr: Tensor, zi: Tensor, amp_t: Tensor, ratio: Tensor) -> tuple[Tensor, Tensor]:
    """The blend's change of the window, ``D = α·(A_t·Z/|Z| − Z)`` (real, imaginary); ``amp_t`` and
    ``ratio`` broadcast against ``zr``."""
    amp = torch.hypot(zr, zi)
    nonzero = amp > 0
    k = ratio * (amp_t - amp) / torch.where(nonzero, amp, torch.ones_like(amp))
    dr = torch.where(nonzero, k * zr, ratio * amp_t)  # |Z| = 0: phase 0 as the official angle(0)
    di = torch.where(nonzero, k * zi, torch.zeros_like(zi))
    return dr, di


def synthesis_operand(dr: Tensor, di: Tensor, plan: FibaPlan) -> Tensor:
    """``[[S_r, S_i], [−A_i, A_r]]`` (``…×2reps×2K``) with S = D(f) + D(−f) and A = D(f) − D(−f): then
    ``inv_h @ ·`` is ``[Re G | Im G]``, G = Σ_f D(f)·e^{+iφ} along H."""
    r, q = plan.reps, plan.n_neg
    pad = (0, 0, 1, r - 1 - q)  # the negatives under their partners; self-paired rows get 0
    nr, ni = F.pad(dr[..., r:, :], pad), F.pad(di[..., r:, :], pad)
    pr, pi = dr[..., :r, :], di[..., :r, :]
    return torch.cat([torch.cat([pr + nr, pi + ni], -1), torch.cat([ni - pi, pr - nr], -1)], -2)


#: float64 elements of the no-grad path's conversion buffer (32 MB: its chunks stay few and large)
WORKSPACE_ELEMENTS = 1 << 22


def fiba(
    images: Tensor,
    trigger: Tensor,
    *,
    alpha: float = 0.15,
    beta: float = 0.1,
    strength: float | Tensor = 1.0,
    plan: FibaPlan | None = None,
    trigger_amp: Tensor | None = None,
    workspace: Tensor | None = None,
) -> Tensor:
    """Amplitude-spectrum blend of ``B×C×H×W`` images with a ``1×C×H×W`` (or ``B×C×H×W``) trigger image, in [0, 1].

    ``plan``: cached :func:`fiba_plan`; ``trigger_amp``: cached :func:`trigger_amplitude` of
    ``trigger`` (``1×C×R×K`` or ``B×C×R×K``); ``workspace``: a reusable float64 buffer (see
    :func:`window_spectrum`). Differentiable (where the image spectrum is non-zero); clamped to
    [0, 1]; strength 0 returns the input exactly.
    """
    b, c, h, w = images.shape
    plan = plan or fiba_plan(h, w, beta, images)
    if trigger_amp is None:
        trigger_amp = trigger_amplitude(trigger.to(images), plan)
    ratio = (alpha * torch.as_tensor(strength, device=images.device).to(torch.float64)).reshape(-1, 1, 1, 1)
    amp_t = trigger_amp.to(torch.float64)
    planes = images.reshape(b * c, h, w)
    grad = torch.is_grad_enabled() and (images.requires_grad or ratio.requires_grad)
    with torch.set_grad_enabled(grad):
        if not grad and workspace is None:
            workspace = torch.empty(min(WORKSPACE_ELEMENTS, planes.numel()), dtype=torch.float64, device=images.device)
        products = window_products(planes, plan, None if grad else workspace)
        shape = (b, c, plan.rows, plan.cols)
        with single_threaded(not grad and images.device.type == "cpu"):  # a dozen small elementwise ops
            zr, zi = _window_from_products(products, plan)
            dr, di = window_change(zr.view(shape), zi.view(shape), amp_t, ratio)
            d = synthesis_operand(dr, di, plan).to(images.dtype)
        g = (plan.inv_h @ d).view(b * c * h, -1)  # [Re G | Im G] per row
        if grad:
            return torch.addmm(planes.reshape(-1, w), g, plan.inv_w).view(b, c, h, w).clamp(0.0, 1.0)
        return torch.addmm(planes.reshape(-1, w), g, plan.inv_w).clamp_(0.0, 1.0).view(b, c, h, w)


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
        self._workspace: Tensor | None = None  # float64 conversion buffer of fiba(), reused across calls
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
        return fiba(
            images,
            trg,
            alpha=p.alpha,
            beta=p.beta,
            strength=strength,
            plan=plan,
            trigger_amp=amp_t,
            workspace=self.workspace_for(images),
        )

    def workspace_for(self, images: Tensor) -> Tensor:
        """The reusable float64 buffer of :func:`fiba` on the images' device (at most 32 MB)."""
        size = min(WORKSPACE_ELEMENTS, images.numel())
        ws = self._workspace
        if ws is None or ws.device != images.device or ws.numel() < size:
            ws = self._workspace = torch.empty(size, dtype=torch.float64, device=images.device)
        return ws

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
