"""STRIP (Gao et al., ACSAC 2019) for image- and score-output models.

The original superimposes clean images on an input and measures the entropy of the
class predictions: a trigger dominates the blend, so poisoned inputs give
*consistent* predictions. For low-level vision there are no classes, so the
consistency is measured on the outputs themselves: the spread of the ``N`` outputs
of ``x'_n = (1 − α)·x + α·c_n`` (mean per-pixel variance, or mean pairwise RMS
distance; the std for score outputs). The detector returns minus the spread, so
higher = more consistent = more likely poisoned.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from bd_plugin_baselines.params_defenses import StripParams
from bdcore.components import DefenseBase, DefenseOutcome
from bdcore.context import DefenseContext
from bdcore.errors import ComponentError


def auroc(clean_scores: Tensor | Any, poisoned_scores: Tensor | Any) -> float:
    """Area under the ROC curve of separating poisoned (positive) from clean (negative)
    scores, higher score = more likely poisoned. Mann–Whitney U with ties counted 1/2
    (equals ``sklearn.metrics.roc_auc_score``; golden-tested)."""
    neg = torch.as_tensor(clean_scores, dtype=torch.float64).flatten()
    pos = torch.as_tensor(poisoned_scores, dtype=torch.float64).flatten()
    if neg.numel() == 0 or pos.numel() == 0:
        raise ValueError("auroc needs at least one clean and one poisoned score")
    scores = torch.cat([neg, pos])
    # average ranks (1-based) with ties sharing their mean rank
    sorted_scores, order = torch.sort(scores, stable=True)
    _uniq, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(scores)
    ranks[order] = mean_rank[inverse]
    n_pos, n_neg = pos.numel(), neg.numel()
    u = ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _output(victim: Any, inputs: Tensor) -> Tensor:
    predict = getattr(victim, "predict", victim)
    out = predict(inputs)
    if isinstance(out, Mapping):
        out = out["output"]
    return out


def strip_scores(
    victim: Any,
    inputs: Tensor,
    overlays: Tensor,
    *,
    alpha: float = 0.5,
    statistic: str = "variance",
    chunk: int = 64,
) -> Tensor:
    """STRIP statistic per input, ``B`` (higher = more likely poisoned).

    Args:
        victim: a model (``predict`` or ``__call__``) whose output is an image
            ``B×C'×H'×W'``, scores ``B`` / ``B×K``.
        inputs: ``B×C×H×W`` in [0, 1].
        overlays: ``N×C×H×W`` clean images; every input is blended with all ``N``.
        alpha: blend weight of the overlay.
        statistic: ``variance`` (mean per-element variance over the N outputs) or
            ``pairwise`` (mean pairwise RMS distance between outputs).
        chunk: blended images per forward pass.
    """
    b, n = inputs.shape[0], overlays.shape[0]
    if overlays.shape[1:] != inputs.shape[1:]:
        raise ComponentError(f"strip: overlays {list(overlays.shape)} do not match inputs {list(inputs.shape)}")
    blended = ((1 - alpha) * inputs[:, None] + alpha * overlays[None].to(inputs)).reshape(b * n, *inputs.shape[1:])
    with torch.no_grad():
        outs = torch.cat([_output(victim, part).detach() for part in blended.split(chunk)])
    outs = outs.reshape(b, n, -1).double()
    if statistic == "variance":
        spread = outs.var(dim=1, unbiased=False).mean(dim=1)
        if outs.shape[-1] == 1:  # score outputs: the std of the scores
            spread = spread.sqrt()
    elif statistic == "pairwise":
        d = torch.cdist(outs, outs) / outs.shape[-1] ** 0.5  # B×N×N RMS distances
        spread = d.sum(dim=(1, 2)) / (n * (n - 1))
    else:
        raise ComponentError(f"strip: unknown statistic {statistic!r}")
    return -spread


class Strip(DefenseBase):
    """Detection defense: returns ``detector(victim, inputs) -> B`` STRIP scores using a
    pool of the defender's clean images; each input gets ``n_overlays`` overlays drawn
    (seeded) from the pool."""

    stage = "detection"
    params: StripParams

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:
        p = self.params
        pool_batches = ctx.batches(salt="strip-pool")
        need = p.pool_size
        images = []
        for batch in itertools.islice(pool_batches, max(1, -(-need // max(ctx.batch_size, 1))) + 1):
            images.append(batch["input"])
            if sum(x.shape[0] for x in images) >= need:
                break
        pool = torch.cat(images)[:need]
        if pool.shape[0] < p.n_overlays:
            raise ComponentError(
                f"strip: pool of {pool.shape[0]} clean images is smaller than n_overlays={p.n_overlays}"
            )
        gen = self.ctx.generator("strip-overlays")
        return DefenseOutcome(detector=make_detector(pool, p, gen))


def make_detector(pool: Tensor, p: StripParams, generator: torch.Generator) -> Callable[[Any, Tensor], Tensor]:
    """A detector blending with ``p.n_overlays`` pool images, drawn once (seeded) or, with ``p.redraw``,
    per call (a seeded stream)."""
    fixed = None if p.redraw else torch.randperm(pool.shape[0], generator=generator)[: p.n_overlays]

    def detector(victim: Any, inputs: Tensor) -> Tensor:
        idx = fixed if fixed is not None else torch.randperm(pool.shape[0], generator=generator)[: p.n_overlays]
        overlays = pool[idx].to(inputs.device)
        if overlays.shape[-2:] != inputs.shape[-2:]:
            overlays = torch.nn.functional.interpolate(
                overlays, size=inputs.shape[-2:], mode="bilinear", align_corners=False
            )
        return strip_scores(victim, inputs, overlays, alpha=p.alpha, statistic=p.statistic, chunk=p.chunk)

    return detector
