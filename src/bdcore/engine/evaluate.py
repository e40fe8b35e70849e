"""Evaluation: every metric on clean and on triggered test inputs, for one model.

The test batches and their poisoned copies are computed once per run and reused
by every evaluation (clean victim, attacked victim, each defense), so all rows
compare the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor

from bdcore.context import Context, derive_seed
from bdcore.data.loader import LoaderSettings, eval_loader
from bdcore.errors import BdcoreError, ComponentError, ContractError
from bdcore.metrics.batch import EvalBatch
from bdcore.spec.structure import Resolved

Row = dict[str, Any]


def split_prediction(pred: Any, who: str) -> tuple[Tensor, dict[str, Tensor]]:
    """A victim's ``predict`` result as (main output, extras)."""
    if isinstance(pred, Tensor):
        return pred, {}
    if isinstance(pred, Mapping) and "output" in pred:
        extras = {k: v for k, v in pred.items() if k != "output"}
        return pred["output"], extras
    raise ContractError(f"{who}: predict() must return a tensor or a dict with 'output', got {type(pred).__name__}")


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve for scores where positives should score higher
    (Mann–Whitney U with average ranks for ties)."""
    from scipy.stats import rankdata

    neg = np.asarray(negatives, dtype=np.float64).ravel()
    pos = np.asarray(positives, dtype=np.float64).ravel()
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def _select(batch: dict[str, Any], n: int) -> dict[str, Any]:
    return {k: (v[:n] if isinstance(v, Tensor | list) else v) for k, v in batch.items()}


@attrs.define
class GridSample:
    """Images for the report grid (first ``n`` test samples)."""

    columns: dict[str, Tensor] = attrs.Factory(dict)


@attrs.define
class Evaluator:
    """Runs metrics over the test set for a given model and input transform."""

    test_set: Any
    batch_size: int
    limit: int | None
    device: str
    seed: int
    metrics: tuple[Resolved, ...]
    metric_ctx: Callable[[Resolved], Context]
    trigger: Any = None
    attack: Any = None
    grid: int = 4
    loader: LoaderSettings | None = None
    cache_bytes: int | None = None
    _batches: list[dict[str, Any]] | None = None
    _poisoned: list[dict[str, Any]] | None = None
    _reference: list[Tensor] | None = None

    # -- the fixed test inputs -------------------------------------------------
    def batches(self) -> list[dict[str, Any]]:
        if self._batches is None:
            self._batches = list(
                eval_loader(
                    self.test_set,
                    self.batch_size,
                    device=self.device,
                    limit=self.limit,
                    settings=self.loader,
                    cache_bytes=self.cache_bytes,
                )
            )
        return self._batches

    def poisoned(self) -> list[dict[str, Any]] | None:
        if self.attack is None or self.trigger is None:
            return None
        if self._poisoned is None:
            out = []
            if isinstance(self.trigger, torch.nn.Module):
                # test inputs are triggered in eval mode, whether the trigger was just trained or loaded from a
                # reused stage (a fresh module is in training mode: BatchNorm would use the test batch's statistics)
                self.trigger.eval()
            with torch.no_grad():
                for i, batch in enumerate(self.batches()):
                    gen = torch.Generator(device="cpu").manual_seed(derive_seed(self.seed, "eval-poison", i))
                    try:
                        p = self.attack.poison(batch, self.trigger, generator=gen)
                    except Exception as exc:  # noqa: BLE001 - reported with the component
                        raise ComponentError(f"poisoning the test set failed: {type(exc).__name__}: {exc}") from exc
                    if p["input"].shape != batch["input"].shape:
                        raise ContractError(
                            f"trigger returned images of shape {list(p['input'].shape)}; "
                            f"expected {list(batch['input'].shape)} (same as input)"
                        )
                    out.append({k: (v.detach() if isinstance(v, Tensor) else v) for k, v in p.items()})
            self._poisoned = out
        return self._poisoned

    def set_reference(self, victim: Any) -> None:
        """Outputs of the clean (never attacked) victim on the clean inputs."""
        with torch.no_grad():
            self._reference = [split_prediction(victim.predict(b["input"]), "clean victim")[0] for b in self.batches()]

    # -- evaluation --------------------------------------------------------------
    def evaluate(
        self,
        victim: Any,
        *,
        stage: str,
        defense: str | None = None,
        setting: str | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
        collect_grid: bool = False,
    ) -> tuple[list[Row], GridSample | None]:
        # One metric instance per split: streaming state never mixes splits.
        per_split: dict[str, list[tuple[Resolved, Any]]] = {"clean": [], "poisoned": []}
        for r in self.metrics:
            for split in per_split:
                m = r.component.build(r.params, self.metric_ctx(r))
                if split in m.splits:
                    m.reset()
                    per_split[split].append((r, m))
        poisoned = self.poisoned()
        grid: GridSample | None = GridSample() if collect_grid and self.grid > 0 else None
        victim.eval()
        with torch.no_grad():
            for i, batch in enumerate(self.batches()):
                x = batch["input"]
                x_in = transform(x) if transform is not None else x
                out_clean, extras_clean = split_prediction(victim.predict(x_in), stage)
                ref = self._reference[i] if self._reference is not None else out_clean
                clean_eb = EvalBatch(
                    split="clean",
                    input=x_in,
                    output=out_clean,
                    extras=extras_clean,
                    target=batch.get("target"),
                    attack_target=None,
                    clean_input=x,
                    clean_model_input=x_in,
                    clean_output=out_clean,
                    reference_output=ref,
                    strength=torch.zeros(x.shape[0], device=x.device),
                    victim=victim,
                    trigger=self.trigger,
                    attack=self.attack,
                    index=batch.get("index"),
                )
                for _, m in per_split["clean"]:
                    m.update(clean_eb)
                if grid is not None and i == 0:
                    n = min(self.grid, x.shape[0])
                    grid.columns = {}  # without an attack, the metrics' clean-split columns are the whole grid
                    _add_metric_columns(grid.columns, per_split["clean"], clean_eb, n)
                if poisoned is None:
                    continue
                p = poisoned[i]
                p_in = transform(p["input"]) if transform is not None else p["input"]
                out_p, extras_p = split_prediction(victim.predict(p_in), stage)
                p_eb = EvalBatch(
                    split="poisoned",
                    input=p_in,
                    output=out_p,
                    extras=extras_p,
                    target=batch.get("target"),
                    attack_target=p.get("attack_target"),
                    clean_input=x,
                    clean_model_input=x_in,
                    clean_output=out_clean,
                    reference_output=ref,
                    strength=p.get("strength"),
                    victim=victim,
                    trigger=self.trigger,
                    attack=self.attack,
                    index=batch.get("index"),
                )
                for _, m in per_split["poisoned"]:
                    m.update(p_eb)
                if grid is not None and i == 0:
                    n = min(self.grid, x.shape[0])
                    # the engine's own columns first, then what metrics add (clean split, then poisoned)
                    clean_metric_columns = grid.columns
                    grid.columns = _grid_columns(_select(batch, n), _select(p, n), out_clean[:n], out_p[:n], n)
                    for label, images in clean_metric_columns.items():
                        grid.columns[_free_label(grid.columns, label, "clean")] = images
                    _add_metric_columns(grid.columns, per_split["poisoned"], p_eb, n)
        rows: list[Row] = []
        for split, pairs in per_split.items():
            if split == "poisoned" and poisoned is None:
                continue
            for r, m in pairs:
                rows += _metric_rows(r, m, stage, defense, setting, split)
        return rows, grid

    def stealth_rows(self) -> list[Row]:
        """PSNR and SSIM of poisoned vs clean test inputs (every run reports them)."""
        from bdcore.metrics.image import psnr, ssim

        poisoned = self.poisoned()
        if not poisoned:
            return []
        ps, ss = [], []
        for batch, p in zip(self.batches(), poisoned, strict=True):
            a, b = p["input"], batch["input"]
            if a.ndim != 4 or a.shape[1] not in (1, 3):
                return []
            ps.append(psnr(a, b))
            ss.append(ssim(a, b))
        rows = []
        for name, vals in (("stealth_psnr", ps), ("stealth_ssim", ss)):
            rows.append(
                {
                    "stage": "trigger",
                    "defense": None,
                    "setting": None,
                    "split": "poisoned",
                    "metric": name,
                    "value": float(torch.cat(vals).mean()),
                    "higher_is_better": True,
                }
            )
        return rows

    def detection_rows(
        self, victim: Any, detector: Callable[[Any, Tensor], Tensor], *, defense: str, setting: str | None
    ) -> tuple[list[Row], dict[str, list[float]]]:
        """AUROC of a detector separating poisoned from clean test inputs, plus the scores."""
        poisoned = self.poisoned()
        clean_scores, poison_scores = [], []
        with torch.no_grad():
            for i, batch in enumerate(self.batches()):
                clean_scores.append(detector(victim, batch["input"]).detach().double().cpu().reshape(-1))
                if poisoned is not None:
                    poison_scores.append(detector(victim, poisoned[i]["input"]).detach().double().cpu().reshape(-1))
        c = torch.cat(clean_scores).numpy()
        p = torch.cat(poison_scores).numpy() if poison_scores else np.array([])
        base = {"stage": "defended", "defense": defense, "setting": setting, "higher_is_better": None}
        rows = [
            {**base, "split": "clean", "metric": "detector_statistic", "value": float(c.mean())},
        ]
        if len(p):
            rows.append({**base, "split": "poisoned", "metric": "detector_statistic", "value": float(p.mean())})
            rows.append(
                {
                    **base,
                    "split": "poisoned",
                    "metric": "detection_auroc",
                    "value": auroc(c, p),
                    "higher_is_better": True,
                }
            )
        return rows, {"clean": c.tolist(), "poisoned": p.tolist()}


def _metric_rows(r: Resolved, m: Any, stage: str, defense: str | None, setting: str | None, split: str) -> list[Row]:
    """Rows of one metric instance (one split): one row per computed value."""
    values = m.compute()
    if not isinstance(values, Mapping):
        raise ContractError(f"metric {r.label}: compute() must return a dict of floats, got {type(values).__name__}")
    rows = []
    for name, value in values.items():
        rows.append(
            {
                "stage": stage,
                "defense": defense,
                "setting": setting,
                "split": split,
                "metric": name,
                "value": float(value),
                "higher_is_better": getattr(m, "higher_is_better", None),
            }
        )
    return rows


def _free_label(columns: Mapping[str, Any], label: str, split: str) -> str:
    """``label``, or the first of ``label [split]``, ``label [split] (2)``, … not yet in ``columns``."""
    if label not in columns:
        return label
    label = f"{label} [{split}]"
    candidate, k = label, 2
    while candidate in columns:
        candidate, k = f"{label} ({k})", k + 1
    return candidate


def _add_metric_columns(columns: dict[str, Tensor], metrics: list[tuple[Resolved, Any]], eb: EvalBatch, n: int) -> None:
    """Add the grid columns each metric offers through its optional ``grid_columns(batch, n)`` hook.

    Columns are labelled ``"<metric name>: <key>"``; a label already taken (by the engine's own
    columns or an earlier metric, in spec order) gets `` [split]`` and then a counter appended, so
    the result does not depend on anything but the spec.
    """
    for r, m in metrics:
        hook = getattr(m, "grid_columns", None)
        if hook is None:
            continue
        name = getattr(m, "name", r.label)
        try:
            offered = hook(eb, n)
        except BdcoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the component
            raise ComponentError(
                f'{r.path}: metric "{r.component.name}" ({r.component.provenance}) failed to make its grid '
                f"columns: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(offered, Mapping):
            raise ContractError(
                f"metric {name} ({r.path}): grid_columns() must return a dict of images, got {type(offered).__name__}"
            )
        for key, images in offered.items():
            if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3) or not len(images):
                shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
                raise ContractError(
                    f"metric {name} ({r.path}): grid column {key!r} must be B×1×H×W or B×3×H×W images, got {shape}"
                )
            label = _free_label(columns, f"{name}: {key}", eb.split)
            columns[label] = images[:n].detach().float().nan_to_num(0.0).clamp(0, 1).cpu()


def _grid_columns(
    clean: dict[str, Any], poisoned: dict[str, Any], out_c: Tensor, out_p: Tensor, n: int
) -> dict[str, Tensor]:
    def is_img(t: Any) -> bool:
        return isinstance(t, Tensor) and t.ndim == 4 and t.shape[1] in (1, 3)

    cols: dict[str, Tensor] = {"clean input": clean["input"], "poisoned input": poisoned["input"]}
    residual = (poisoned["input"] - clean["input"]).abs()
    peak = residual.flatten(1).amax(1).clamp_min(1e-8).view(-1, 1, 1, 1)
    cols["residual (amplified)"] = residual / peak
    if is_img(out_c):
        cols["clean output"] = out_c
        cols["poisoned output"] = out_p
    tgt: Any = poisoned.get("attack_target")
    if is_img(tgt):
        cols["attack target"] = tgt
    return {k: v[:n].detach().cpu().float() for k, v in cols.items() if is_img(v)}
