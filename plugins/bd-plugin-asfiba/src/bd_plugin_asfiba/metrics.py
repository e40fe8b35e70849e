"""AS-FIBA's evaluation: ASR/BA by the restored-or-degraded rule, Table IV frequency distances, NIQE,
SDD-FIQA."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from bd_plugin_asfiba.degradation import degrade_01
from bd_plugin_asfiba.params import FreqDistanceParams, NIQEParams, RestorationRuleParams, SDDFIQAParams
from bdcore.components import MeanOverImages, MetricBase
from bdcore.context import Context
from bdcore.errors import ComponentError
from bdcore.ops.frequency import low_band_mask

Distance = Callable[[Tensor, Tensor], Tensor]


class MetricSetupError(ComponentError):
    """A metric's weights or parameters are missing."""


def restored(output: Tensor, hq: Tensor, lq: Tensor, distance: Distance, factor: float = 0.1) -> Tensor:
    """AS-FIBA §IV-A rule, ``B`` bool: restored iff ``d(out, I_hq) < d(out, I_0.1)`` with
    ``I_0.1 = degrade_01(lq)`` (the benign LQ input downsampled ×factor and bilinearly upsampled)."""
    return distance(output, hq) < distance(output, degrade_01(lq, factor))


def _lpips_distance(params: RestorationRuleParams, ctx: Context) -> Distance:
    if params.lpips_weights is None:
        raise MetricSetupError(
            "distance='lpips' needs lpips_weights: a local torchvision "
            f"{params.lpips_net} backbone state dict (e.g. alexnet-owt-7be5be79.pth); none is downloaded"
        )
    try:  # one LPIPS wiring for the whole project: bd-plugin-baselines' (local backbone, no download)
        from bd_plugin_baselines.metrics.perceptual import build_lpips, lpips_distance
    except ImportError as exc:
        raise MetricSetupError(
            "distance='lpips' needs bd-plugin-baselines with its lpips extra: pip install 'bd-plugin-asfiba[lpips]'"
        ) from exc
    model = build_lpips(params.lpips_net, weights=ctx.resolve_path(params.lpips_weights), sha256=params.lpips_sha256)

    def dist(a: Tensor, b: Tensor) -> Tensor:
        model.to(a.device)
        return lpips_distance(model, a, b).to(a.dtype)

    return dist


def make_distance(params: RestorationRuleParams, ctx: Context) -> Distance:
    """The rule's distance (larger = farther), ``B×C×H×W`` pair → ``B``."""
    from bdcore.metrics.image import ms_ssim, mse

    if params.distance == "ms-ssim":
        return lambda a, b: 1.0 - ms_ssim(a.clamp(0, 1), b.clamp(0, 1))
    if params.distance == "mse":
        return mse
    if params.distance == "lpips":
        return _lpips_distance(params, ctx)
    import pyiqa

    metric = pyiqa.create_metric(params.distance, device="cpu", as_loss=False)
    sign = -1.0 if metric.lower_better is False else 1.0

    def dist(a: Tensor, b: Tensor) -> Tensor:
        v = metric(a.clamp(0, 1).float().cpu(), b.clamp(0, 1).float().cpu()).flatten().double()
        return v if sign > 0 else 1.0 - v

    return dist


class _RestorationRule(MetricBase):
    count_restored: ClassVar[bool] = True

    def __init__(self, params: RestorationRuleParams | None = None, ctx: Context | None = None) -> None:
        self.rule = params or RestorationRuleParams()
        super().__init__(self.rule, ctx)
        self.distance = make_distance(self.rule, self.ctx)
        fallback = " (offline fallback: no lpips_weights given)" if self.rule.distance == "ms-ssim" else ""
        self.ctx.log(
            f"{self.name}: restored iff {self.rule.distance}(out, I_hq) < {self.rule.distance}(out, I_0.1){fallback}"
        )

    def reset(self) -> None:
        self._hits = 0
        self._count = 0

    def update(self, batch: Any) -> None:
        hq = batch.reference_output if batch.reference_output is not None else batch.clean_output
        lq = batch.clean_input if batch.clean_input is not None else batch.input
        if hq is None:
            raise ComponentError(f"{self.name}: the evaluation batch has no reference (clean-model) output")
        ok = restored(batch.output.detach(), hq.detach(), lq.detach(), self.distance, self.rule.factor)
        hits = ok if self.count_restored else ~ok
        self._hits += int(hits.sum())
        self._count += int(ok.numel())

    def compute(self) -> dict[str, float]:
        """``{name: %, name.<distance>: the same %}``: the second key names the distance the rule used."""
        value = 100.0 * self._hits / max(self._count, 1)
        return {self.name: value, f"{self.name}.{self.rule.distance}": value}


class RestorationBA(_RestorationRule):
    """Benign accuracy (%): share of clean inputs whose output counts as restored."""

    higher_is_better: ClassVar[bool | None] = True
    splits = ("clean",)
    count_restored = True


class RestorationASR(_RestorationRule):
    """Attack success rate (%): share of triggered inputs whose output counts as not restored."""

    higher_is_better: ClassVar[bool | None] = None
    splits = ("poisoned",)
    count_restored = False


# ---------------------------------------------------------------- Table IV frequency distance
def amplitude_band_distance(
    poisoned: Tensor,
    benign: Tensor,
    *,
    beta: float = 0.1,
    window: str = "square",
    reduction: str = "mse",
    scale: float = 255.0,
) -> tuple[Tensor, Tensor]:
    """AS-FIBA Table IV ("frequency distance (MSE) between benign and poisoned images", low vs high band,
    "employing a technique similar to FIBA"), read as a distance between amplitude spectra.

    ``poisoned``, ``benign``: ``B×C×H×W`` in [0,1], scaled to ``0…scale``; amplitude ``|fft2(·, norm="ortho")|``
    per channel (orthonormal, so the per-bin values are on the pixel scale and, by Parseval, the summed squared
    complex difference equals the summed squared pixel difference). The low band is
    :func:`bdcore.ops.frequency.low_band_mask`, the high band its complement. Returns ``(low, high)``, each ``B`` float64:
    the mean over channels and the band's bins of ``(A_p − A_b)²`` (``"mse"``) or ``|A_p − A_b|`` (``"mae"``).
    """
    if poisoned.shape != benign.shape or poisoned.ndim != 4:
        raise ComponentError(
            f"freq distance: expected two B×C×H×W tensors of one shape, got {list(poisoned.shape)}, {list(benign.shape)}"
        )
    if reduction not in ("mse", "mae"):
        raise ValueError(f"amplitude_band_distance: reduction must be 'mse' or 'mae' (got {reduction!r})")
    h, w = poisoned.shape[-2:]
    amp_p = torch.fft.fft2(poisoned.double() * scale, norm="ortho").abs()
    amp_b = torch.fft.fft2(benign.double() * scale, norm="ortho").abs()
    d = amp_p - amp_b
    d = d.square() if reduction == "mse" else d.abs()
    low = low_band_mask(h, w, beta, window, device=d.device).to(d.dtype)
    n_low = float(low.sum()) * d.shape[1]
    n_high = float((1 - low).sum()) * d.shape[1]
    low_sum = (d * low).flatten(1).sum(1)
    high_sum = (d * (1 - low)).flatten(1).sum(1)
    nan = torch.full_like(low_sum, math.nan)
    return (
        low_sum / n_low if n_low else nan,
        high_sum / n_high if n_high else nan,
    )


class FreqDistance(MetricBase):
    """AS-FIBA Table IV: low-/high-frequency amplitude-spectrum distance between the triggered input and the
    benign input (poisoned split; see :func:`amplitude_band_distance`). Keys ``<name>.low``, ``<name>.high``.

    Registered as ``asfiba-freq-distance`` (bd-plugin-baselines' ``freq-distance`` is the other reading: the
    MSE of the band-limited pixel difference)."""

    higher_is_better: ClassVar[bool | None] = False
    needs: ClassVar[frozenset[str]] = frozenset({"clean_input"})
    splits = ("poisoned",)

    def __init__(self, params: FreqDistanceParams | None = None, ctx: Context | None = None) -> None:
        self.p = params or FreqDistanceParams()
        super().__init__(self.p, ctx)

    def reset(self) -> None:
        self._low = self._high = 0.0
        self._count = 0

    def update(self, batch: Any) -> None:
        if batch.clean_input is None:
            raise ComponentError(f"{self.name}: the evaluation batch has no clean_input")
        low, high = amplitude_band_distance(
            batch.input.detach(),
            batch.clean_input.detach(),
            beta=self.p.beta,
            window=self.p.window,
            reduction=self.p.reduction,
            scale=self.p.scale,
        )
        self._low += float(low.sum())
        self._high += float(high.sum())
        self._count += int(low.numel())

    def compute(self) -> dict[str, float]:
        n = self._count
        return {
            f"{self.name}.low": self._low / n if n else math.nan,
            f"{self.name}.high": self._high / n if n else math.nan,
        }


# ---------------------------------------------------------------- NIQE
class NIQE(MeanOverImages):
    """NIQE (lower = more natural) via pyiqa's implementation with the MATLAB pristine model taken from
    the basicsr 1.4.2 source package (see :mod:`bd_plugin_asfiba.niqe_params`). Images need ≥ 192 px sides
    (two scales of 96-px blocks)."""

    higher_is_better: ClassVar[bool | None] = False

    def __init__(self, params: NIQEParams | None = None, ctx: Context | None = None) -> None:
        from bd_plugin_asfiba.niqe_params import niqe_mat_path

        self.p = params or NIQEParams()
        super().__init__(self.p, ctx)
        src = None if self.p.params_path is None else self.ctx.resolve_path(self.p.params_path)
        cache = None if self.p.cache_dir is None else self.ctx.resolve_path(self.p.cache_dir)
        self.mat = niqe_mat_path(src, cache)
        self._metric: Any = None

    def per_image(self, batch: Any) -> Tensor:
        import pyiqa

        if self._metric is None:
            self._metric = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=str(self.mat))
        x = getattr(batch, self.p.field)
        if min(x.shape[-2:]) < 192:
            raise ComponentError(f"{self.name}: NIQE needs images of at least 192×192, got {list(x.shape[-2:])}")
        return self._metric(x.detach().clamp(0, 1).float().cpu()).flatten()


# ---------------------------------------------------------------- SDD-FIQA
class SDDFIQA(MeanOverImages):
    """SDD-FIQA quality score (higher = better) of ``field``, aligned faces resized to 112×112."""

    higher_is_better: ClassVar[bool | None] = True

    def __init__(self, params: SDDFIQAParams, ctx: Context | None = None) -> None:
        from bd_plugin_asfiba.fiqa import load_sdd_fiqa

        self.p = params
        super().__init__(params, ctx)
        path: Path = self.ctx.resolve_path(params.checkpoint)
        if not path.is_file():
            raise MetricSetupError(f"sdd-fiqa: checkpoint {path} not found (provide SDD_FIQA_checkpoints_r50.pth)")
        self.model = load_sdd_fiqa(path, params.sha256)

    def per_image(self, batch: Any) -> Tensor:
        from bd_plugin_asfiba.fiqa import sdd_fiqa_score

        x = getattr(batch, self.p.field).detach()
        with torch.no_grad():
            return sdd_fiqa_score(self.model.to(x.device), x)
