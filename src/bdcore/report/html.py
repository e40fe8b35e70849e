"""``report.html``: a self-contained page: the setup, clean-vs-attacked differences, the results table,
example images labelled by model, plots, and the manifest (collapsed).

Every string that comes from a spec, a plugin or a file (names, labels, descriptions, paths) is escaped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bdcore.io.atomic import write_text
from bdcore.report.grid import GridColumn, GridGroup, ReportGrid
from bdcore.text import html_text

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.grid td{border:none;padding:2px;text-align:center;font-size:11px}
img.px{image-rendering:pixelated;width:128px;height:128px;object-fit:contain}
.meta{color:#666;font-size:12px}
.grid th{font-size:11px;font-weight:normal;background:#eef;border:1px solid #ccd;text-align:center}
.grid td.l{text-align:left;vertical-align:middle;font-size:11px;color:#444}
.good{color:#17803d} .bad{color:#b42318} .flat,.na{color:#888}
details pre{font-size:11px;max-height:40em;overflow:auto;background:#fafafa;padding:6px}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else html_text(str(v))


def pivot(rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """Rows → (metric/split columns, [(model label, {column: value})])."""
    cols: list[str] = []
    table: dict[str, dict[str, Any]] = defaultdict(dict)
    order: list[str] = []
    for r in rows:
        if r.get("stage") == "trigger":
            continue
        model = (
            r["stage"]
            if not r.get("defense")
            else f"{r['defense']}" + (f" ({r['setting']})" if r.get("setting") else "")
        )
        col = r["metric"] + (f" [{r['split']}]" if r.get("split") else "")
        if col not in cols:
            cols.append(col)
        if model not in table:
            order.append(model)
        table[model][col] = r["value"]
    return cols, [(m, table[m]) for m in order]


def render_table(rows: list[dict[str, Any]]) -> str:
    cols, body = pivot(rows)
    if not body:
        return "<p>No results.</p>"
    head = "".join(f"<th>{html_text(c)}</th>" for c in cols)
    lines = [f"<table><tr><th class=l>model</th>{head}</tr>"]
    for model, vals in body:
        cells = "".join(f"<td>{_fmt(vals.get(c))}</td>" for c in cols)
        lines.append(f"<tr><td class=l>{html_text(model)}</td>{cells}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


#: (cell class, arrow) of a change; the class says whether it is better by the metric's own direction
_UP, _DOWN, _SAME = "\u2191", "\u2193", "="


def delta_cell(before: Any, after: Any, higher_is_better: bool | None) -> str:
    """``after − before`` with its direction (↑ ↓ =) as a table cell, green when the change is better by
    the metric's direction (``higher_is_better``), red when worse, grey when the metric has none."""
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return "<td class=na></td>"
    d = float(after) - float(before)
    if d != d:  # nan
        return "<td class=na>nan</td>"
    arrow = _UP if d > 0 else _DOWN if d < 0 else _SAME
    if d == 0 or higher_is_better is None:
        cls = "flat"
    else:
        cls = "good" if (d > 0) == bool(higher_is_better) else "bad"
    text = f"{d:+.3g}".replace("-", "\u2212")
    return f"<td class={cls}>{html_text(text)} {arrow}</td>"


def clean_vs_attacked(rows: list[dict[str, Any]]) -> list[tuple[str, bool | None, dict[tuple[str, str], float]]]:
    """Per metric: ``(name, higher_is_better, {(model, split): value})`` for the clean victim and the attacked
    model (no defense) on clean and poisoned inputs; metrics that only one of the two models has are left out."""
    found: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    direction: dict[str, bool | None] = {}
    for r in rows:
        if r.get("defense") or r.get("stage") not in ("clean-victim", "attacked") or not r.get("split"):
            continue
        found[r["metric"]][(r["stage"], r["split"])] = r["value"]
        direction.setdefault(r["metric"], r.get("higher_is_better"))
    return [
        (metric, direction[metric], values)
        for metric, values in found.items()
        if {m for m, _ in values} == {"clean-victim", "attacked"}
    ]


def render_deltas(rows: list[dict[str, Any]]) -> str:
    """The clean-vs-attacked table: each metric on clean and on triggered inputs, both models, and the change."""
    table = clean_vs_attacked(rows)
    if not table:
        return ""
    better = {True: f"{_UP} higher", False: f"{_DOWN} lower", None: ""}
    lines = [
        "<h2>Clean vs attacked</h2>",
        "<p class=meta>The same test inputs through the clean victim and the attacked model. "
        "\u0394 = attacked \u2212 clean victim; the arrow is the direction of the change, its colour whether "
        "that is better (green) or worse (red) by the metric's own direction (grey: the metric states none). "
        "On clean inputs a backdoor should change little; on triggered inputs, the attack's effect.</p>",
        "<table><tr><th class=l rowspan=2>metric</th><th rowspan=2>better</th>"
        "<th colspan=3>clean inputs</th><th colspan=3>triggered inputs</th></tr>"
        "<tr>" + "<th>clean victim</th><th>attacked</th><th>\u0394</th>" * 2 + "</tr>",
    ]
    for metric, hib, values in table:
        cells = []
        for split in ("clean", "poisoned"):
            before, after = values.get(("clean-victim", split)), values.get(("attacked", split))
            cells += [f"<td>{_fmt(before)}</td>", f"<td>{_fmt(after)}</td>", delta_cell(before, after, hib)]
        lines.append(f"<tr><td class=l>{html_text(metric)}</td><td>{better[hib]}</td>{''.join(cells)}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def render_setup(manifest: dict[str, Any], test_set: dict[str, int] | None) -> str:
    """Who is who: each component with its distribution, and what the metrics average over."""
    comps = manifest.get("components", {})
    lines = ["<table><tr><th class=l>role</th><th class=l>component</th><th class=l>from</th></tr>"]
    for path, c in comps.items():
        lines.append(
            f"<tr><td class=l>{html_text(str(path))}</td><td class=l>{html_text(str(c.get('name')))}</td>"
            f"<td class=l>{html_text(str(c.get('distribution')))} {html_text(str(c.get('version')))}</td></tr>"
        )
    lines.append("</table>")
    if test_set:
        n, m = test_set.get("samples", 0), test_set.get("sources", 0)
        lines.append(
            f"<p>Every metric is a mean over <b>{n}</b> test sample{'s' if n != 1 else ''} from <b>{m}</b> "
            f"distinct source image{'s' if m != 1 else ''}.</p>"
        )
    return "\n".join(lines)


def _as_grid(grid: ReportGrid | dict[str, list[str]] | None) -> ReportGrid | None:
    """A :class:`ReportGrid`; a plain ``{column: [files]}`` (one unnamed group) is accepted too."""
    if grid is None or isinstance(grid, ReportGrid):
        return grid
    if not grid:
        return None
    n = max(len(v) for v in grid.values())
    columns = tuple(GridColumn(k, tuple(v)) for k, v in grid.items())
    return ReportGrid(tuple("" for _ in range(n)), (GridGroup("", columns),))


def render_grid(grid: ReportGrid) -> str:
    """Example images: a header row naming each group (the model), a row of column names, one row per sample."""
    heads = "".join(f"<th colspan={len(g.columns)}>{html_text(g.label)}</th>" for g in grid.groups if g.columns)
    names = "".join(f"<td><b>{html_text(c.label)}</b></td>" for g in grid.groups for c in g.columns)
    parts = [
        "<h2>Examples</h2><table class=grid>",
        f"<tr><th></th>{heads}</tr>",
        f"<tr><td class=l>source</td>{names}</tr>",
    ]
    for i, source in enumerate(grid.rows):
        cells = "".join(
            f"<td><img class=px src='{html_text(c.files[i])}' alt='{html_text(g.label)}: {html_text(c.label)}'></td>"
            if i < len(c.files)
            else "<td></td>"
            for g in grid.groups
            for c in g.columns
        )
        parts.append(f"<tr><td class=l>{html_text(source)}</td>{cells}</tr>")
    parts.append("</table>")
    parts += [f"<p class=meta>{html_text(note)}</p>" for note in grid.notes]
    return "\n".join(parts)


def write_report(
    run_dir: Path,
    *,
    title: str,
    rows: list[dict[str, Any]],
    manifest: dict[str, Any],
    grid: ReportGrid | dict[str, list[str]] | None,
    plots: list[str],
    test_set: dict[str, int] | None = None,
) -> Path:
    parts = [f"<!doctype html><meta charset=utf-8><title>{html_text(title)}</title><style>{_CSS}</style>"]
    parts.append(f"<h1>{html_text(title)}</h1>")
    libraries = manifest.get("libraries", {})
    parts.append(
        f"<p class=meta>bdcore {html_text(str(manifest.get('bdcore')))} · "
        f"torch {html_text(str(libraries.get('torch')))} · seed {html_text(str(manifest.get('seed')))} · "
        f"device {html_text(str(manifest.get('device')))} · git {html_text(str(manifest.get('git_sha')))}</p>"
    )
    parts.append(render_setup(manifest, test_set))
    stealth = [r for r in rows if r.get("stage") == "trigger"]
    if stealth:
        parts.append("<h2>Trigger stealth (poisoned vs clean inputs)</h2>")
        parts.append("<p>" + " · ".join(f"{html_text(r['metric'])} = {_fmt(r['value'])}" for r in stealth) + "</p>")
    parts.append(render_deltas(rows))
    parts.append("<h2>Results</h2>")
    parts.append(render_table(rows))
    report_grid = _as_grid(grid)
    if report_grid is not None:
        parts.append(render_grid(report_grid))
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [f"<p><img src='{html_text(p)}'></p>" for p in plots]
    parts.append(
        "<h2>Manifest</h2><details><summary>manifest.json: versions, seeds, components, stage keys and times"
        "</summary><pre>" + html_text(json.dumps(manifest, indent=1, default=str)) + "</pre></details>"
    )
    path = run_dir / "report.html"
    write_text(path, "\n".join(parts))
    return path
