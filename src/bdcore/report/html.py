"""``report.html``: a self-contained page with the results table, plots and image grids."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bdcore.io.atomic import write_text
from bdcore.text import html_text

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.grid td{border:none;padding:2px;text-align:center;font-size:11px}
img.px{image-rendering:pixelated;width:128px;height:128px;object-fit:contain}
.meta{color:#666;font-size:12px}
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


def write_report(
    run_dir: Path,
    *,
    title: str,
    rows: list[dict[str, Any]],
    manifest: dict[str, Any],
    grid: dict[str, list[str]] | None,
    plots: list[str],
) -> Path:
    parts = [f"<!doctype html><meta charset=utf-8><title>{html_text(title)}</title><style>{_CSS}</style>"]
    parts.append(f"<h1>{html_text(title)}</h1>")
    comps = manifest.get("components", {})
    desc = ", ".join(f"{k}: {v['name']} ({v['distribution']} {v['version']})" for k, v in comps.items())
    parts.append(
        f"<p class=meta>bdcore {html_text(manifest.get('bdcore'))} · "
        f"torch {html_text(manifest.get('libraries', {}).get('torch'))} · seed {html_text(manifest.get('seed'))} · "
        f"device {html_text(manifest.get('device'))} · git {html_text(manifest.get('git_sha'))}<br>{html_text(desc)}</p>"
    )
    stealth = [r for r in rows if r.get("stage") == "trigger"]
    if stealth:
        parts.append("<h2>Trigger stealth (poisoned vs clean inputs)</h2>")
        parts.append("<p>" + " · ".join(f"{html_text(r['metric'])} = {_fmt(r['value'])}" for r in stealth) + "</p>")
    parts.append("<h2>Results</h2>")
    parts.append(render_table(rows))
    if grid:
        parts.append("<h2>Examples</h2><table class=grid><tr>")
        parts.append("".join(f"<td><b>{html_text(c)}</b></td>" for c in grid))
        parts.append("</tr>")
        n = max(len(v) for v in grid.values())
        for i in range(n):
            parts.append(
                "<tr>"
                + "".join(
                    f"<td><img class=px src='{html_text(files[i])}'></td>" if i < len(files) else "<td></td>"
                    for files in grid.values()
                )
                + "</tr>"
            )
        parts.append("</table>")
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [f"<p><img src='{html_text(p)}'></p>" for p in plots]
    parts.append("<h2>Manifest</h2><pre>" + html_text(json.dumps(manifest, indent=1, default=str)) + "</pre>")
    path = run_dir / "report.html"
    write_text(path, "\n".join(parts))
    return path
