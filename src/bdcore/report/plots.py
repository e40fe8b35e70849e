"""PNG plots with matplotlib (Agg): training losses, defense sweeps, metric curves, detector statistics."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: stage key of the run's histories -> panel title
_STAGE_TITLES = {"clean": "clean victim training", "attack": "attack training"}


def plain_tick(value: float, _pos: int | None = None) -> str:
    """A tick label as a plain number (``0.05``, ``2``, ``−3``, ``1e+04``): no ``10⁰`` mathtext, no ``−0``."""
    return "0" if value == 0 else f"{value:g}".replace("-", "\u2212")


def loss_axis(ax: Any, values: list[float]) -> str:
    """Set a readable y axis for ``values``: log when all are positive and span more than 1.5 decades,
    linear otherwise (a loss that goes negative has no log axis; symlog's "−10⁰" ticks read badly);
    plain-number tick labels either way. Returns the scale."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    finite = [v for v in values if math.isfinite(v)]
    scale = "log" if finite and min(finite) > 0 and max(finite) / min(finite) > 10**1.5 else "linear"
    ax.set_yscale(scale)
    if scale == "log":
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(plain_tick))
    return scale


def plot_history(histories: dict[str, list[dict[str, float]]], path: Path) -> bool:
    """Loss curves of the training stages, one panel each (their losses differ in scale and sign);
    False when there is nothing to plot."""
    series = {k: h for k, h in histories.items() if h}
    if not series:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(series), figsize=(4.6 * len(series), 3.4), squeeze=False)
    for ax, (label, hist) in zip(axes[0], series.items(), strict=True):
        steps = [r["step"] for r in hist]
        losses = [r.get("loss", float("nan")) for r in hist]
        ax.plot(steps, losses, color="C0" if label == "clean" else "C3")
        loss_axis(ax, losses)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (mean per logged interval)")
        ax.set_title(_STAGE_TITLES.get(label, label), fontsize=10)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _numeric(setting: str) -> float | None:
    try:
        return float(setting.split("=", 1)[1])
    except (IndexError, ValueError):
        return None


def plot_sweeps(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One plot per swept defense: every metric against the swept value, clean and poisoned."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("stage") == "defended" and r.get("setting") and r.get("split") in ("clean", "poisoned"):
            groups[r["defense"]].append(r)
    out = []
    plt = _plt()
    for defense, rs in sorted(groups.items()):
        metrics = sorted({r["metric"] for r in rs})
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for split, style in (("clean", "o-"), ("poisoned", "s--")):
                pts = sorted(
                    (x, r["value"])
                    for r in rs
                    if r["metric"] == metric and r["split"] == split and (x := _numeric(r["setting"])) is not None
                )
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=split)
            ax.set_title(metric, fontsize=9)
            ax.set_xlabel(rs[0]["setting"].split("=", 1)[0])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"defense sweep: {defense}", fontsize=10)
        fig.tight_layout()
        path = folder / f"sweep-{defense}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out


def plot_detections(detections: dict[str, dict[str, list[float]]], folder: Path) -> list[Path]:
    out = []
    plt = _plt()
    for label, scores in sorted(detections.items()):
        fig, ax = plt.subplots(figsize=(5, 3))
        for split in ("clean", "poisoned"):
            if scores.get(split):
                ax.hist(scores[split], bins=20, alpha=0.6, label=split)
        ax.set_xlabel("detector statistic")
        ax.set_ylabel("inputs")
        ax.set_title(label, fontsize=9)
        ax.legend()
        fig.tight_layout()
        path = folder / f"detection-{label.replace('/', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out


def _model_label(r: dict[str, Any]) -> str:
    """The same model label as the results table: the stage, or the defense (and its setting)."""
    if not r.get("defense"):
        return str(r["stage"])
    return str(r["defense"]) + (f" ({r['setting']})" if r.get("setting") else "")


def metric_pairs(runs: list[list[dict[str, Any]]], x: str, y: str) -> dict[str, list[tuple[float, float]]]:
    """Points ``(x, y)`` per ``model · split`` series, one point per run that has both metrics.

    ``runs``: each run's result rows. A series is e.g. ``"attacked · poisoned"``; points are
    sorted by ``x`` (an RD curve when ``x = "bpp"``, ``y = "psnr"`` and the runs are qualities).
    """
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rows in runs:
        values: dict[tuple[str, str, str], float] = {}
        for r in rows:
            if r.get("stage") != "trigger" and r["metric"] in (x, y):
                values[(_model_label(r), str(r.get("split") or ""), r["metric"])] = float(r["value"])
        for model, split, metric in sorted(values):
            if metric == x and (model, split, y) in values:
                name = f"{model} · {split}" if split else model
                series[name].append((values[(model, split, x)], values[(model, split, y)]))
    return {k: sorted(v) for k, v in series.items()}


def plot_metric_pairs(series: dict[str, list[tuple[float, float]]], x: str, y: str, path: Path) -> bool:
    """``y`` against ``x`` across runs, one line per series; False when there is nothing to plot."""
    if not series:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in sorted(series.items()):
        style = "s--" if "poisoned" in name else "o-"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=name, markersize=4)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{y} vs {x}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def metric_curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Curves carried by metric names of the form ``name@x`` with a numeric ``x`` (e.g. BAIQA's
    ``mra@0.5`` response curve over α): ``{name: {"model · split": [(x, value), ...] sorted by x}}``.
    Defended rows keep their defense label; rows with a non-finite value are left out."""
    curves: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        name, sep, at = str(r["metric"]).partition("@")
        if not sep or r.get("stage") == "trigger":
            continue
        try:
            x, value = float(at), float(r["value"])
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        split = str(r.get("split") or "")
        curves[name][f"{_model_label(r)} · {split}" if split else _model_label(r)].append((x, value))
    return {n: {k: sorted(v) for k, v in series.items()} for n, series in curves.items()}


def plot_metric_curves(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One PNG per ``name@x`` metric family (see :func:`metric_curves`): value against x, a line per
    model and split."""
    out = []
    for name, series in sorted(metric_curves(rows).items()):
        path = folder / f"curve-{name.replace('/', '_')}.png"
        if plot_metric_pairs(series, f"{name} @", name, path):
            out.append(path)
    return out
