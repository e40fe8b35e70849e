"""IQA metrics: ``plcc``, ``srocc``, ``rmse`` (benign) and BAIQA's ``mmae`` / ``mmra`` α-response and ``psnr-alpha``."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from bd_plugin_baiqa.params import AlphaResponseParams, PsnrAlphaParams, ScoreMetricParams
from bd_plugin_baiqa.util import BaiqaError, scores
from bdcore.components import MetricBase
from bdcore.context import Context


def _flat(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().double().cpu().reshape(-1).numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def plcc(pred: np.ndarray, mos: np.ndarray) -> float:
    """Pearson linear correlation (no logistic fitting, as BAIQA's evaluation)."""
    p, m = pred - pred.mean(), mos - mos.mean()
    den = math.sqrt(float((p * p).sum() * (m * m).sum()))
    return float((p * m).sum() / den) if den > 0 else float("nan")


def _rank(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a)


def srocc(pred: np.ndarray, mos: np.ndarray) -> float:
    """Spearman rank correlation = Pearson on average ranks (ties get their mean rank)."""
    return plcc(_rank(pred), _rank(mos))


def rmse(pred: np.ndarray, mos: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - mos) ** 2)))


class ScoreCorrelation(MetricBase):
    """Collects predictions and MOS over the evaluation, then computes the registered statistic."""

    fn: ClassVar[Any] = None

    def __init__(self, params: ScoreMetricParams | None = None, ctx: Context | None = None) -> None:
        self.params = params or ScoreMetricParams()
        super().__init__(self.params, ctx)
        self.splits = self.params.splits

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        """The field the predictions are compared with (``against``), unless it is the input or output."""
        return frozenset({self.params.against}) - {"input", "output"}

    def reset(self) -> None:
        self._pred: list[np.ndarray] = []
        self._ref: list[np.ndarray] = []

    def update(self, batch: Any) -> None:
        ref = getattr(batch, self.params.against)
        if ref is None:
            raise BaiqaError(f"{self.name}: the evaluation batch has no {self.params.against!r}")
        self._pred.append(_flat(batch.output))
        self._ref.append(_flat(ref))

    def compute(self) -> dict[str, float]:
        if not self._pred:
            return {self.name: float("nan")}
        return {self.name: type(self).fn(np.concatenate(self._pred), np.concatenate(self._ref))}


class Plcc(ScoreCorrelation):
    higher_is_better: ClassVar[bool | None] = True
    fn = staticmethod(plcc)


class Srocc(ScoreCorrelation):
    higher_is_better: ClassVar[bool | None] = True
    fn = staticmethod(srocc)


class Rmse(ScoreCorrelation):
    higher_is_better: ClassVar[bool | None] = False
    fn = staticmethod(rmse)


def alpha_response(
    victim_scores: Any, inject: Any, images: Tensor, alphas: tuple[float, ...], delta_y: float
) -> tuple[Tensor, Tensor]:
    """f(x) and f(inject(x, α)) for every α: returns (``B`` clean scores, ``A×B`` triggered scores).

    One batched pass per α (not all A·B images at once): the peak memory stays that of one batch, which
    matters for patch-based victims on whole test images (A·B = 160 images of 480² took 13 GB)."""
    with torch.no_grad():
        base = victim_scores(images)
        b = images.shape[0]
        rows = []
        for alpha in alphas:
            a = torch.full((b,), float(alpha), dtype=images.dtype, device=images.device)
            rows.append(victim_scores(inject(images, a)).reshape(b))
        trig = torch.stack(rows)
    return base, trig


class AlphaResponse(MetricBase):
    """mMAE = mean_α mean_i |f(x_i^α) − (f(x_i) + αΔy)|; mMRA = mean_α [mean_i (f(x_i^α) − f(x_i))]/(αΔy).
    Per-α values are returned as ``mae@α`` / ``mra@α`` (the response curve). Needs the victim and trigger."""

    needs: ClassVar[frozenset[str]] = frozenset({"victim", "trigger"})
    kind: ClassVar[str] = "mae"

    def __init__(self, params: AlphaResponseParams | None = None, ctx: Context | None = None) -> None:
        self.params = params or AlphaResponseParams()
        super().__init__(self.params, ctx)
        self.splits = self.params.splits

    def reset(self) -> None:
        self._abs = np.zeros(len(self.params.alphas))
        self._diff = np.zeros(len(self.params.alphas))
        self._n = 0

    def update(self, batch: Any) -> None:
        if batch.victim is None or batch.trigger is None:
            raise BaiqaError(f"{self.name}: needs the victim and the trigger in the evaluation batch")
        x = batch.clean_input if batch.clean_input is not None else batch.input
        trig = batch.trigger
        base, out = alpha_response(
            lambda z: scores(batch.victim, z),
            lambda z, a: trig.inject_trigger(z, strength=a),
            x,
            self.params.alphas,
            self.params.delta_y,
        )
        shift = torch.tensor(self.params.alphas, dtype=out.dtype, device=out.device).view(-1, 1) * self.params.delta_y
        diff = (out - base.view(1, -1)).double().cpu()
        self._abs += (diff - shift.double().cpu()).abs().sum(dim=1).numpy()
        self._diff += diff.sum(dim=1).numpy()
        self._n += x.shape[0]

    def per_alpha(self) -> tuple[np.ndarray, np.ndarray]:
        n = max(self._n, 1)
        alphas = np.asarray(self.params.alphas, dtype=np.float64)
        return self._abs / n, (self._diff / n) / (alphas * self.params.delta_y)

    def compute(self) -> dict[str, float]:
        mae, mra = self.per_alpha()
        vals = mae if self.kind == "mae" else mra
        out = {self.name: float(vals.mean())}
        out.update({f"{self.kind}@{a:g}": float(v) for a, v in zip(self.params.alphas, vals, strict=True)})
        return out


class MeanMae(AlphaResponse):
    higher_is_better: ClassVar[bool | None] = False
    kind = "mae"


class MeanMra(AlphaResponse):
    """mMRA: 1 = the score moves by exactly αΔy; 0 = no effect."""

    higher_is_better: ClassVar[bool | None] = None
    kind = "mra"


class PsnrAlpha(MetricBase):
    """PSNR (dB) of inject(x, α·t) against x on the clean inputs (visibility at α = 1; paper: 30.06 on LIVEC)."""

    needs: ClassVar[frozenset[str]] = frozenset({"trigger"})
    higher_is_better: ClassVar[bool | None] = True

    def __init__(self, params: PsnrAlphaParams | None = None, ctx: Context | None = None) -> None:
        self.params = params or PsnrAlphaParams()
        super().__init__(self.params, ctx)
        self.splits = self.params.splits

    def reset(self) -> None:
        self._sum, self._n = 0.0, 0

    def update(self, batch: Any) -> None:
        from bdcore.metrics.image import psnr

        if batch.trigger is None:
            raise BaiqaError(f"{self.name}: needs the trigger in the evaluation batch")
        x = batch.clean_input if batch.clean_input is not None else batch.input
        with torch.no_grad():
            xp = batch.trigger.inject_trigger(x, strength=self.params.alpha)
        v = psnr(xp, x)
        self._sum += float(v.double().sum())
        self._n += int(v.numel())

    def compute(self) -> dict[str, float]:
        return {self.name: self._sum / max(self._n, 1)}
