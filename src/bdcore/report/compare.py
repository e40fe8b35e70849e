"""``bdcore report RUN_DIR…``: one comparison table across runs."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from bdcore.report.html import _CSS, _fmt, pivot
from bdcore.report.results import read_results


def compare_runs(run_dirs: list[Path]) -> tuple[Any, str]:
    """A rich table and an HTML page with one row per (run, model) and one column per metric."""
    from rich.table import Table

    cols: list[str] = []
    body: list[tuple[str, str, dict[str, Any]]] = []
    for d in run_dirs:
        rows = read_results(d)
        run_cols, run_body = pivot(rows)
        cols += [x for x in run_cols if x not in cols]
        name = rows[0].get("run", d.name) if rows else d.name
        body += [(name, model, vals) for model, vals in run_body]
    table = Table(title="bdcore: runs compared")
    table.add_column("run")
    table.add_column("model")
    for col in cols:
        table.add_column(col, justify="right")
    for run, model, vals in body:
        table.add_row(run, model, *(f"{vals[col]:.4g}" if col in vals else "" for col in cols))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    lines = [
        f"<!doctype html><meta charset=utf-8><style>{_CSS}</style><h1>bdcore: runs compared</h1>",
        f"<table><tr><th class=l>run</th><th class=l>model</th>{head}</tr>",
    ]
    for run, model, vals in body:
        lines.append(
            f"<tr><td class=l>{html.escape(run)}</td><td class=l>{html.escape(model)}</td>"
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
