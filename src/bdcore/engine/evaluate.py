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
from bdcore.engine import checks
from bdcore.errors import BdcoreError, ComponentError, ContractError
from bdcore.metrics.batch import EvalBatch
from bdcore.spec.structure import Resolved

Row = dict[str, Any]


def split_prediction(pred: Any, who: str) -> tuple[Tensor, dict[str, Tensor]]:
    """A victim's ``predict`` result as (main output, extras) (see :func:`bdcore.engine.checks.prediction`)."""
    n = pred.shape[0] if isinstance(pred, Tensor) and pred.ndim else -1
    if isinstance(pred, Mapping) and isinstance(pred.get("output"), Tensor) and pred["output"].ndim:
        n = pred["output"].shape[0]
    return checks.prediction(pred, n, who)


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


def source_of(dataset: Any, index: int) -> str:
    """The name of the source image behind test sample ``index`` (crops of one photograph share it)."""
    name_of = getattr(dataset, "name_of", None)
    if callable(name_of):
        return str(name_of(index))
    item_of = getattr(dataset, "item_of", None)
    if callable(item_of):
        return f"item {int(item_of(index))}"
    return f"sample {index}"


@attrs.define
class GridSample:
    """Images of one model for the report grid: the example test samples, one row each.

    ``inputs``: the engine's input columns (clean input, poisoned input, trigger residual, and the attack
    target when it is an image that means something); ``outputs``: this model's outputs and the columns
    its metrics offer (``grid_columns``). Every tensor is ``N×C×H×W`` with one row per name in ``names``.
    """

    names: list[str] = attrs.Factory(list)
    inputs: dict[str, Tensor] = attrs.Factory(dict)
    outputs: dict[str, Tensor] = attrs.Factory(dict)
    batches: int = 0

    @property
    def columns(self) -> dict[str, Tensor]:
        return {**self.inputs, **self.outputs}

    def add(self, inputs: dict[str, Tensor], outputs: dict[str, Tensor]) -> None:
        """Append one batch's selected rows (a column some batch lacks is dropped: rows must line up)."""
        for mine, new in ((self.inputs, inputs), (self.outputs, outputs)):
            if self.batches == 0:
                mine.update(new)
                continue
            for label in list(mine):
                if label in new:
                    mine[label] = torch.cat([mine[label], new[label]])
                else:
                    del mine[label]
        self.batches += 1


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
    #: the spec entries of the victim, trigger and attack loss (for messages that name them)
    victim_ref: Resolved | None = None
    trigger_ref: Resolved | None = None
    attack_ref: Resolved | None = None
    #: the run's event bus: each pass over the test set reports its progress (batches)
    events: Any = None
    loader: LoaderSettings | None = None
    cache_bytes: int | None = None
    _batches: list[dict[str, Any]] | None = None
    _poisoned: list[dict[str, Any]] | None = None
    _reference: list[Tensor] | None = None
    _picks: list[tuple[int, int, str]] | None = None

    # -- which test samples the report shows ------------------------------------
    def example_picks(self) -> list[tuple[int, int, str]]:
        """``(batch, position, source name)`` of up to ``grid`` test samples from distinct source images
        (the first crop of each source, in test order): never two crops of one photograph."""
        if self._picks is None:
            picks: list[tuple[int, int, str]] = []
            seen: set[str] = set()
            for b, batch in enumerate(self.batches()):
                for pos, index in enumerate(_indices(batch)):
                    name = source_of(self.test_set, index)
                    if len(picks) < self.grid and name not in seen:
                        seen.add(name)
                        picks.append((b, pos, name))
            self._picks = picks
        return self._picks

    def _target_is_an_image(self) -> bool:
        """Whether the attack target is worth a column: not when the attack describes its target in words
        (``target_description``), nor when it is just the clean input or the clean target (an untargeted
        attack such as BAvAFT's PSNR attack: a codec "targets" its input, the attack is in the loss)."""
        if getattr(self.attack, "target_description", None):
            return False
        batch, poisoned = self.batches()[0], (self.poisoned() or [{}])[0]
        target = poisoned.get("attack_target")
        if not isinstance(target, Tensor) or not _is_image(target):
            return False
        same = [v for v in (batch.get("input"), batch.get("target")) if isinstance(v, Tensor)]
        return not any(v.shape == target.shape and torch.equal(v, target) for v in same)

    def test_set_summary(self) -> dict[str, int]:
        """How many test samples the metrics average, and from how many distinct source images."""
        indices = [i for batch in self.batches() for i in _indices(batch)]
        return {"samples": len(indices), "sources": len({source_of(self.test_set, i) for i in indices})}

    def _stage(self, name: str, total: int, *, root: bool = True) -> Any:
        from bdcore.observe.bus import Stage

        if self.events is None:
            return Stage(None, name, total, "batch", "")
        return self.events.stage(name, total, unit="batch", root=root)

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
            batches = self.batches()
            with torch.no_grad(), self._stage("evaluate/poison", len(batches)) as progress:
                for i, batch in enumerate(batches):
                    progress.update(i + 1)
                    gen = torch.Generator(device="cpu").manual_seed(derive_seed(self.seed, "eval-poison", i))
                    with checks.calling(checks.who(self.attack_ref, "the attack loss"), "poisoning the test set"):
                        p = self.attack.poison(batch, self.trigger, generator=gen)
                    checks.poisoned_batch(p, batch, trigger=self.trigger_ref, attack=self.attack_ref)
                    out.append({k: (v.detach() if isinstance(v, Tensor) else v) for k, v in p.items()})
            self._poisoned = out
        return self._poisoned

    def set_reference(self, victim: Any) -> None:
        """Outputs of the clean (never attacked) victim on the clean inputs."""
        source = f"{checks.who(self.victim_ref, 'the victim')} (the clean victim)"
        with torch.no_grad():
            self._reference = [self._predict(victim, b["input"], source)[0] for b in self.batches()]

    @staticmethod
    def _predict(victim: Any, inputs: Tensor, source: str) -> tuple[Tensor, dict[str, Tensor]]:
        with checks.calling(source, "predict()"):
            pred = victim.predict(inputs)
        return checks.prediction(pred, inputs.shape[0], source)

    def _model_source(self, stage: str, defense: Resolved | None) -> str:
        if defense is not None:
            return f"{checks.who(defense)} (the defended model)"
        return f"{checks.who(self.victim_ref, 'the victim')} (the {stage.replace('-', ' ')} model)"

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
        defense_ref: Resolved | None = None,
    ) -> tuple[list[Row], GridSample | None]:
        # One metric instance per split: streaming state never mixes splits.
        per_split: dict[str, list[tuple[Resolved, Any]]] = {"clean": [], "poisoned": []}
        source = self._model_source(stage, defense_ref)

        def defended(images: Tensor) -> Tensor:
            if transform is None:
                return images
            with checks.calling(checks.who(defense_ref, "the defense"), "transform()"):
                out = transform(images)
            return checks.transformed(out, images, defense_ref)

        def update(metrics: list[tuple[Resolved, Any]], eb: EvalBatch) -> None:
            for r, m in metrics:
                with checks.calling(checks.who(r), "update()"):
                    m.update(eb)

        for r in self.metrics:
            for split in per_split:
                with checks.calling(checks.who(r), "building it"):
                    m = r.component.build(r.params, self.metric_ctx(r))
                if split in m.splits:
                    m.reset()
                    per_split[split].append((r, m))
        poisoned = self.poisoned()
        grid: GridSample | None = GridSample() if collect_grid and self.grid > 0 else None
        victim.eval()
        batches = self.batches()
        # a defense's evaluation is part of its stage ("defense/jpeg/evaluate")
        name = "evaluate" if defense is not None else f"evaluate/{stage}"
        with torch.no_grad(), self._stage(name, len(batches), root=defense is None) as progress:
            for i, batch in enumerate(batches):
                progress.update(i + 1)
                x = batch["input"]
                x_in = defended(x)
                out_clean, extras_clean = self._predict(victim, x_in, source)
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
                update(per_split["clean"], clean_eb)
                picks = [pos for b, pos, _ in self.example_picks() if b == i] if grid is not None else []
                if grid is not None and picks:
                    n = len(picks)
                    clean_sel = _subset(clean_eb, picks)
                    # the metrics' clean-split columns; with an attack, the poisoned split's come after them
                    metric_columns: dict[str, Tensor] = {"output: clean input": clean_sel.output}
                    _add_metric_columns(metric_columns, per_split["clean"], clean_sel, n)
                if poisoned is None:
                    if grid is not None and picks:
                        grid.add(_grid_inputs(_pick(batch, picks), None, False), _images(metric_columns))
                    continue
                p = poisoned[i]
                p_in = defended(p["input"])
                out_p, extras_p = self._predict(victim, p_in, source)
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
                update(per_split["poisoned"], p_eb)
                if grid is not None and picks:
                    p_sel = _subset(p_eb, picks)
                    outputs = {"output: clean input": metric_columns.pop("output: clean input")}
                    outputs["output: poisoned input"] = p_sel.output
                    outputs.update(metric_columns)
                    _add_metric_columns(outputs, per_split["poisoned"], p_sel, n)
                    inputs = _grid_inputs(_pick(batch, picks), _pick(p, picks), self._target_is_an_image())
                    grid.add(inputs, _images(outputs))
            if grid is not None:
                grid.names = [name for _, _, name in self.example_picks()]
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
        self,
        victim: Any,
        detector: Callable[[Any, Tensor], Tensor],
        *,
        defense: str,
        setting: str | None,
        defense_ref: Resolved | None = None,
    ) -> tuple[list[Row], dict[str, list[float]]]:
        """AUROC of a detector separating poisoned from clean test inputs, plus the scores."""
        poisoned = self.poisoned()
        clean_scores, poison_scores = [], []

        def scores(images: Tensor) -> Tensor:
            with checks.calling(checks.who(defense_ref, "the defense"), "its detector"):
                out = detector(victim, images)
            return checks.detector_scores(out, images.shape[0], defense_ref).detach().double().cpu().reshape(-1)

        batches = self.batches()
        with torch.no_grad(), self._stage("detect", len(batches), root=False) as progress:
            for i, batch in enumerate(batches):
                progress.update(i + 1)
                clean_scores.append(scores(batch["input"]))
                if poisoned is not None:
                    poison_scores.append(scores(poisoned[i]["input"]))
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
    with checks.calling(checks.who(r), "compute()"):
        raw = m.compute()
    values = checks.metric_values(raw, r)
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


def _is_image(t: Any) -> bool:
    return isinstance(t, Tensor) and t.ndim == 4 and t.shape[1] in (1, 3)


def _images(columns: Mapping[str, Any]) -> dict[str, Tensor]:
    """The columns that are image batches (a score or a class is not shown), on the CPU as float."""
    return {k: v.detach().float().cpu() for k, v in columns.items() if _is_image(v)}


def _indices(batch: Mapping[str, Any]) -> list[int]:
    index = batch.get("index")
    n = int(batch["input"].shape[0])
    return [int(i) for i in index] if index is not None and len(index) == n else list(range(n))


def _rows(value: Any, rows: list[int], n: int) -> Any:
    """``value``'s ``rows`` when it holds one entry per sample of an ``n``-sample batch, else ``value``."""
    if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == n:
        return value[torch.tensor(rows, dtype=torch.long, device=value.device)]
    if isinstance(value, list) and len(value) == n:
        return [value[r] for r in rows]
    return value


def _pick(batch: Mapping[str, Any], rows: list[int]) -> dict[str, Any]:
    """The ``rows`` of every per-sample tensor or list in ``batch`` (other values unchanged)."""
    n = int(batch["input"].shape[0])
    return {k: _rows(v, rows, n) for k, v in batch.items()}


def _subset(eb: EvalBatch, rows: list[int]) -> EvalBatch:
    """``eb`` restricted to ``rows``, for the metrics' ``grid_columns(batch, n)`` (which show the first ``n``)."""
    n = int(eb.input.shape[0])
    keep = ("split", "victim", "trigger", "attack", "extras")
    changes = {f.name: _rows(getattr(eb, f.name), rows, n) for f in attrs.fields(EvalBatch) if f.name not in keep}
    return attrs.evolve(eb, extras={k: _rows(v, rows, n) for k, v in eb.extras.items()}, **changes)


def _grid_inputs(clean: dict[str, Any], poisoned: dict[str, Any] | None, show_target: bool) -> dict[str, Tensor]:
    """The input columns: the clean input; with an attack the poisoned input, the trigger residual
    ``|poisoned − clean|`` scaled to each image's maximum, and the attack target when ``show_target``."""
    cols: dict[str, Any] = {"clean input": clean["input"]}
    if poisoned is not None:
        cols["poisoned input"] = poisoned["input"]
        residual = (poisoned["input"] - clean["input"]).abs()
        peak = residual.flatten(1).amax(1).clamp_min(1e-8).view(-1, 1, 1, 1)
        cols["residual (amplified)"] = residual / peak
        if show_target:
            cols["attack target"] = poisoned.get("attack_target")
    return _images(cols)
