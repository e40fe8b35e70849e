"""``bdcore report RUN_DIR…``: one comparison table across runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bdcore.report.html import _CSS, _fmt, pivot
from bdcore.report.results import read_results
from bdcore.report.tables import TextTable
from bdcore.text import html_text


def _keep_model(label: str, models: tuple[str, ...]) -> bool:
    """``label`` is one of ``models``, or a setting of one (``fine-pruning (rate=0.5)`` for ``fine-pruning``)."""
    return not models or any(label == m or label.startswith(f"{m} (") for m in models)


def _metric_of(col: str) -> str:
    return col.split(" [", 1)[0]


def comparison(
    run_dirs: list[Path], *, models: tuple[str, ...] = (), metrics: tuple[str, ...] = ()
) -> tuple[list[str], list[tuple[str, str, dict[str, Any]]]]:
    """Columns and ``(run, model, {column: value})`` rows across runs (one row per run and model).

    Columns are ``metric [split]`` as in a run's own table, plus the run's trigger stealth
    (``stealth_psnr``, ``stealth_ssim``: poisoned vs clean test inputs), which every model row of the
    run shares. ``models`` keeps the named models (a defense name keeps all its sweep settings);
    ``metrics`` keeps the columns of those metric names (or exact column names), in that order.
    Raises :class:`~bdcore.errors.UsageError` when a filter matches nothing (naming what exists).
    """
    from bdcore.errors import UsageError

    cols: list[str] = []
    body: list[tuple[str, str, dict[str, Any]]] = []
    for d in run_dirs:
        rows = read_results(d)
        run_cols, run_body = pivot(rows)
        stealth = {r["metric"]: r["value"] for r in rows if r.get("stage") == "trigger"}
        cols += [x for x in [*run_cols, *stealth] if x not in cols]
        name = rows[0].get("run", d.name) if rows else d.name
        body += [(name, model, {**vals, **stealth}) for model, vals in run_body]
    kept = [row for row in body if _keep_model(row[1], models)]
    if models and not kept:
        known = ", ".join(dict.fromkeys(m for _, m, _ in body))
        raise UsageError(f"--model {', '.join(models)}: no such model in these runs (models: {known})")
    if metrics:
        chosen = [c for m in metrics for c in cols if m in (c, _metric_of(c))]
        missing = [m for m in metrics if not any(m in (c, _metric_of(c)) for c in cols)]
        if missing:
            known = ", ".join(dict.fromkeys(_metric_of(c) for c in cols))
            raise UsageError(f"--metric {', '.join(missing)}: no such metric in these runs (metrics: {known})")
        cols = list(dict.fromkeys(chosen))
    return cols, kept


def compare_runs(
    run_dirs: list[Path], *, models: tuple[str, ...] = (), metrics: tuple[str, ...] = ()
) -> tuple[TextTable, str]:
    """A table and an HTML page with one row per (run, model) and one column per metric
    (see :func:`comparison` for the columns and the filters)."""
    cols, body = comparison(run_dirs, models=models, metrics=metrics)
    table = TextTable.build(
        "bdcore: runs compared",
        ["run", "model", *cols],
        [[run, model, *(vals.get(col) for col in cols)] for run, model, vals in body],
        [False, False, *([True] * len(cols))],
    )
    head = "".join(f"<th>{html_text(c)}</th>" for c in cols)
    lines = [
        f"<!doctype html><meta charset=utf-8><style>{_CSS}</style><h1>bdcore: runs compared</h1>",
        f"<table><tr><th class=l>run</th><th class=l>model</th>{head}</tr>",
    ]
    for run, model, vals in body:
        lines.append(
            f"<tr><td class=l>{html_text(run)}</td><td class=l>{html_text(model)}</td>"
            + "".join(f"<td>{_fmt(vals.get(c))}</td>" for c in cols)
            + "</tr>"
        )
    lines.append("</table>")
    return table, "\n".join(lines)


def plot_pairs(run_dirs: list[Path], pairs: list[tuple[str, str]], out: Path) -> list[Path]:
    """One PNG per ``(x, y)`` metric pair next to ``out`` (``<stem>-<y>-vs-<x>.png``).

    Raises :class:`~bdcore.errors.UsageError` when no run has both metrics (names the ones it has).
    """
    from bdcore.errors import UsageError
    from bdcore.report.plots import metric_pairs, plot_metric_pairs

    runs = [read_results(d) for d in run_dirs]
    written = []
    for x, y in pairs:
        series = metric_pairs(runs, x, y)
        path = out.with_name(f"{out.stem}-{y}-vs-{x}.png")
        if not plot_metric_pairs(series, x, y, path):
            known = sorted({r["metric"] for rows in runs for r in rows})
            raise UsageError(f"--plot {x}:{y}: no run has both metrics (metrics: {', '.join(known)})")
        written.append(path)
    return written
