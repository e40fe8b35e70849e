"""A sweep's results: every cell's rows, mean ± std over seeds, and the paper-shaped table.

Files written into the sweep folder (from ``sweep.json`` and each cell's ``results.jsonl``, so
``bdcore report SWEEP_DIR`` can rebuild them at any time):

* ``results.csv``: one row per cell × model × split × metric (the cell's axis values as columns);
* ``summary.csv``: one row per cell without its seed (a *config*) × model × split × metric:
  ``mean``, ``std`` (sample standard deviation, n − 1; empty for n = 1), ``n`` and the values;
* ``table.md``, ``table.csv``, ``table.tex``: the ``[sweep.table]`` pivot (mean ± std);
* ``report.html`` with the pivot, every cell's status and figures across cells
  (``plots/``: a metric against one axis, one line per value of the others, error bars = std).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs

from bdcore.io.atomic import write_text

RESULT_FIELDS = ("model", "split", "metric")


@attrs.frozen
class Stat:
    """Mean ± std of one quantity over the seeds of a config (``values`` in seed order)."""

    mean: float
    std: float | None
    n: int
    values: tuple[float, ...]

    def text(self, digits: int) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "nan"
        body = f"{self.mean:.{digits}f}" + (f" ± {self.std:.{digits}f}" if self.std is not None else "")
        return body


def stat(values: Sequence[float]) -> Stat:
    """Finite values → :class:`Stat` (non-finite ones are left out of mean, std and n)."""
    finite = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not finite:
        return Stat(float("nan"), None, 0, ())
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return Stat(statistics.fmean(finite), std, len(finite), finite)


def model_label(row: dict[str, Any]) -> str:
    """The model a result row is about: ``clean-victim``, ``attacked``, a defense (with its setting),
    ``trigger`` for the trigger's stealth rows."""
    if row.get("defense"):
        return str(row["defense"]) + (f" ({row['setting']})" if row.get("setting") else "")
    return str(row.get("stage") or "")


# -- rows ---------------------------------------------------------------------------------------


def long_rows(info: dict[str, Any], sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per finished cell × model × split × metric, axis values (labels) as columns."""
    from bdcore.report.results import read_results

    names = [a["name"] for a in info.get("axes", [])]
    out: list[dict[str, Any]] = []
    for cell in info.get("cells", []):
        if cell.get("status") != "done":
            continue
        for r in read_results(sweep_dir / "cells" / cell["name"]):
            row = {"cell": cell["name"], "config": cell["config"], "seed": cell.get("seed")}
            row.update({n: cell["labels"].get(n) for n in names})
            row.update(
                model=model_label(r),
                split=r.get("split") or "",
                metric=r["metric"],
                value=r["value"],
                higher_is_better=r.get("higher_is_better"),
            )
            out.append(row)
    return out


def summarize(rows: list[dict[str, Any]], axis_names: Sequence[str]) -> list[dict[str, Any]]:
    """Rows grouped by config × model × split × metric, with their :class:`Stat` under ``"stat"``."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["config"], r["model"], r["split"], r["metric"]), []).append(r)
    out = []
    for (config, model, split, metric), rs in groups.items():
        rs = sorted(rs, key=lambda r: (r["seed"] is None, r["seed"]))
        first = rs[0]
        out.append(
            {
                "config": config,
                **{n: first[n] for n in axis_names},
                "model": model,
                "split": split,
                "metric": metric,
                "stat": stat([r["value"] for r in rs]),
                "seeds": [r["seed"] for r in rs],
            }
        )
    return out


def _csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    return buf.getvalue()


def summary_csv(summary: list[dict[str, Any]], axis_names: Sequence[str], comment: str | None = None) -> str:
    flat = []
    for s in summary:
        st: Stat = s["stat"]
        flat.append(
            {
                **s,
                "mean": repr(st.mean),
                "std": "" if st.std is None else repr(st.std),
                "n": st.n,
                "values": ";".join(repr(v) for v in st.values),
            }
        )
    text = _csv(flat, ["config", *axis_names, "model", "split", "metric", "mean", "std", "n", "values"])
    return (f"# {comment}\n" if comment else "") + text


# -- the pivot ----------------------------------------------------------------------------------


@attrs.frozen
class Pivot:
    """A table of :class:`Stat` s: ``row_keys`` × ``col_keys`` (tuples of labels of ``row_fields`` /
    ``col_fields``)."""

    row_fields: tuple[str, ...]
    col_fields: tuple[str, ...]
    row_keys: tuple[tuple[str, ...], ...]
    col_keys: tuple[tuple[str, ...], ...]
    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], Stat]
    digits: int = 3

    def header(self, key: tuple[str, ...]) -> str:
        return " · ".join(key) if key else "value"


def _resolve_field(ref: str, axes: list[dict[str, Any]]) -> str:
    for a in axes:
        if ref in (a["key"], a["name"]):
            return str(a["name"])
    return ref


def filter_summary(summary: list[dict[str, Any]], table: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary rows ``[sweep.table] values/models/splits`` keep (all when those are empty)."""
    keep = summary
    for field, key in (("metric", "values"), ("model", "models"), ("split", "splits")):
        wanted = list(table.get(key) or ())
        if wanted:
            keep = [s for s in keep if s[field] in wanted]
    return keep


def make_pivot(summary: list[dict[str, Any]], axes: list[dict[str, Any]], table: dict[str, Any]) -> Pivot:
    """The ``[sweep.table]`` pivot of ``summary``; fields that vary but are placed nowhere are added
    (axes to the rows, model/split/metric to the columns) so every table cell is one quantity."""
    rows_f = [_resolve_field(r, axes) for r in table.get("rows") or ()]
    cols_f = [_resolve_field(c, axes) for c in table.get("columns") or ()]
    keep = filter_summary(summary, table)
    order = _orders(keep, axes, table)
    for a in axes:
        if a.get("follows") or a["name"] in rows_f + cols_f:
            continue  # an axis of a zip group moves with the group's first axis
        if len({s[a["name"]] for s in keep}) > 1:
            rows_f.append(a["name"])
    for f in RESULT_FIELDS:
        if f not in rows_f + cols_f and len({s[f] for s in keep}) > 1:
            cols_f.append(f)

    def key_of(s: dict[str, Any], fields: list[str]) -> tuple[str, ...]:
        return tuple(str(s[f]) for f in fields)

    def sort(keys: set[tuple[str, ...]], fields: list[str]) -> tuple[tuple[str, ...], ...]:
        return tuple(sorted(keys, key=lambda k: tuple(order[f].get(v, 10**6) for f, v in zip(fields, k))))

    cells = {(key_of(s, rows_f), key_of(s, cols_f)): s["stat"] for s in keep}
    return Pivot(
        tuple(rows_f),
        tuple(cols_f),
        sort({k[0] for k in cells}, rows_f),
        sort({k[1] for k in cells}, cols_f),
        cells,
        int(table.get("digits", 3)),
    )


def _orders(keep: list[dict[str, Any]], axes: list[dict[str, Any]], table: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Display order of every field's values: axes as declared, filters as listed, else first seen."""
    order: dict[str, dict[str, int]] = {a["name"]: {str(x): i for i, x in enumerate(a["labels"])} for a in axes}
    for field, key in (("metric", "values"), ("model", "models"), ("split", "splits")):
        listed = [str(x) for x in table.get(key) or ()]
        seen = list(dict.fromkeys([*listed, *(str(s[field]) for s in keep)]))
        order[field] = {v: i for i, v in enumerate(seen)}
    return order


def _grid(p: Pivot) -> tuple[list[str], list[list[str]]]:
    head = [" / ".join(p.row_fields) or "", *(p.header(c) for c in p.col_keys)]
    body = []
    for rk in p.row_keys:
        cells = [p.cells[(rk, ck)].text(p.digits) if (rk, ck) in p.cells else "" for ck in p.col_keys]
        body.append([" · ".join(rk) or "all", *cells])
    return head, body


def _n_note(p: Pivot) -> str:
    ns = sorted({s.n for s in p.cells.values()})
    if not ns:  # no cell finished (every one failed): an empty table, said so
        return "no finished cell: nothing to average"
    if ns == [1]:
        return "one seed per cell (no std)"
    return "mean ± std over " + (f"{ns[0]} seeds" if len(ns) == 1 else f"{ns[0]}–{ns[-1]} seeds (n differs)")


def render_markdown(p: Pivot, title: str | None = None) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    head, body = _grid(p)
    lines = ([f"**{esc(title)}**", ""] if title else []) + [
        "| " + " | ".join(esc(h) for h in head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    legend = f" Columns: {' · '.join(p.col_fields)}." if p.col_fields else ""
    return "\n".join(lines) + f"\n\n{_n_note(p).capitalize()}.{legend}\n"


def render_csv(p: Pivot) -> str:
    """The pivot as CSV: ``mean`` and ``std`` columns per table column, plus ``n``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = [*p.row_fields]
    for ck in p.col_keys:
        name = p.header(ck)
        head += [f"{name} mean", f"{name} std", f"{name} n"]
    w.writerow(head)
    for rk in p.row_keys:
        line: list[Any] = list(rk)
        for ck in p.col_keys:
            s = p.cells.get((rk, ck))
            line += ["", "", ""] if s is None else [repr(s.mean), "" if s.std is None else repr(s.std), s.n]
        w.writerow(line)
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def render_latex(p: Pivot) -> str:
    """A ``tabular`` (booktabs rules) with ``mean $\\pm$ std`` cells."""
    head, body = _grid(p)
    cols = "l" + "r" * (len(head) - 1)
    lines = [
        f"\\begin{{tabular}}{{{cols}}}",
        "\\toprule",
        " & ".join(tex_escape(h) for h in head) + r" \\",
        "\\midrule",
    ]
    for row in body:
        cells = [tex_escape(row[0]), *(tex_escape(c).replace(" ± ", r" $\pm$ ") for c in row[1:])]
        lines.append(" & ".join(cells) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}", f"% {_n_note(p)}"]
    return "\n".join(lines) + "\n"


def render_html(p: Pivot) -> str:
    head, body = _grid(p)
    out = ["<table><tr>" + "".join(f"<th class=l>{html.escape(h)}</th>" for h in head[:1])]
    out[0] += "".join(f"<th>{html.escape(h)}</th>" for h in head[1:]) + "</tr>"
    for row in body:
        out.append(
            f"<tr><td class=l>{html.escape(row[0])}</td>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in row[1:])
            + "</tr>"
        )
    out.append(f"</table><p class=meta>{html.escape(_n_note(p))}</p>")
    return "\n".join(out)


# -- figures ------------------------------------------------------------------------------------


def x_axis(axes: list[dict[str, Any]], table: dict[str, Any]) -> dict[str, Any] | None:
    """The axis the figures put on x: ``[sweep.table] x``, else the first numeric axis, else the first
    axis with two or more values (None: no axis varies)."""
    if table.get("x"):
        name = _resolve_field(str(table["x"]), axes)
        return next((a for a in axes if a["name"] == name), None)
    varying = [a for a in axes if len(a["values"]) > 1 and not a.get("follows")]
    numeric = [a for a in varying if all(_is_number(v) for v in a["values"])]
    chosen = numeric or varying
    return chosen[0] if chosen else None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def plot_figures(
    summary: list[dict[str, Any]], axes: list[dict[str, Any]], table: dict[str, Any], folder: Path, limit: int = 24
) -> list[Path]:
    """One PNG per metric × split: the metric against the x axis, one line per value of the other
    axes and model, error bars = std over seeds."""
    axis = x_axis(axes, table)
    if axis is None:
        return []
    from bdcore.report.plots import _plt

    keep = filter_summary(summary, table)
    xname = axis["name"]
    numeric = all(_is_number(v) for v in axis["values"])
    xpos = {lab: (float(v) if numeric else i) for i, (lab, v) in enumerate(zip(axis["labels"], axis["values"]))}
    others = [a["name"] for a in axes if a["name"] != xname and len(a["values"]) > 1 and not a.get("follows")]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in keep:
        groups.setdefault((s["metric"], s["split"]), []).append(s)
    folder.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    out: list[Path] = []
    for (metric, split), rows in list(groups.items())[:limit]:
        lines: dict[str, list[tuple[float, Stat]]] = {}
        models = {r["model"] for r in rows}
        for r in rows:
            label = " · ".join([*(f"{o}={r[o]}" for o in others), *([r["model"]] if len(models) > 1 else [])])
            lines.setdefault(label or metric, []).append((xpos[str(r[xname])], r["stat"]))
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for label, pts in sorted(lines.items()):
            pts.sort(key=lambda p: p[0])
            ax.errorbar(
                [p[0] for p in pts],
                [p[1].mean for p in pts],
                yerr=[p[1].std or 0.0 for p in pts],
                marker="o",
                capsize=3,
                label=label,
            )
        if not numeric:
            ax.set_xticks(list(xpos.values()), list(xpos))
        ax.set_xlabel(xname)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric}" + (f" [{split}]" if split else ""), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        from bdcore.sweep.grid import slug

        path = folder / f"{slug(metric)}{'-' + slug(split) if split else ''}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out


# -- everything ---------------------------------------------------------------------------------


def write_outputs(sweep_dir: Path, *, export: Path | None = None, table: dict[str, Any] | None = None) -> Pivot:
    """(Re)write ``results.csv``, ``summary.csv``, the table files and ``report.html`` of a sweep
    folder; with ``export``, also ``EXPORT.md`` and ``EXPORT.csv``, headed by the command that started
    the sweep (recorded in ``sweep.json``) and, in the markdown, how many times
    ``--resume`` continued it. ``table`` replaces the ``[sweep.table]`` settings recorded in ``sweep.json``."""
    info = json.loads((sweep_dir / "sweep.json").read_text())
    axes = info.get("axes", [])
    names = [a["name"] for a in axes]
    table = table if table is not None else info.get("table", {})
    rows = long_rows(info, sweep_dir)
    write_text(
        sweep_dir / "results.csv",
        _csv(rows, ["cell", "config", "seed", *names, "model", "split", "metric", "value", "higher_is_better"]),
    )
    summary = summarize(rows, names)
    write_text(sweep_dir / "summary.csv", summary_csv(summary, names))
    pivot = make_pivot(summary, axes, table)
    title = f"{info.get('name')}: {len(info.get('cells', []))} cells"
    write_text(sweep_dir / "table.md", render_markdown(pivot))
    write_text(sweep_dir / "table.csv", render_csv(pivot))
    write_text(sweep_dir / "table.tex", render_latex(pivot))
    plots = plot_figures(summary, axes, table, sweep_dir / "plots")
    write_text(sweep_dir / "report.html", _report_html(info, pivot, plots, sweep_dir, title))
    if export is not None:
        command = info.get("command")
        head = f"Produced by `{command}`" if command else "Produced by bdcore sweep"
        resumes = int(info.get("resumes", 0))
        resumed = f", continued {_times(resumes)} with `--resume`" if resumes else ""
        cells = info.get("cells", [])
        done = sum(c.get("status") == "done" for c in cells)
        if done == len(cells):
            count = f"{len(cells)} cells"
        elif info.get("status") == "running":  # exported while the sweep runs (a table of what is in so far)
            count = f"{done} of {len(cells)} cells finished so far, sweep still running"
        else:
            count = f"{done} of {len(cells)} cells finished, sweep {info.get('status')}: `--resume` completes it"
        md = (
            f"# {info.get('name')}\n\n{head} (bdcore {info.get('bdcore')}, sweep started {info.get('created')}"
            f"{resumed}; "
            f"{count}, {info.get('seconds', 0):.0f} s).\n\n" + render_markdown(pivot)
        )
        write_text(export.parent / f"{export.name}.md", md)
        write_text(export.parent / f"{export.name}.csv", summary_csv(summary, names, comment=head.replace("`", "")))
    return pivot


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _report_html(info: dict[str, Any], pivot: Pivot, plots: list[Path], sweep_dir: Path, title: str) -> str:
    from bdcore.report.html import _CSS

    cells = info.get("cells", [])
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.get("status", "pending")] = counts.get(c.get("status", "pending"), 0) + 1
    plan = info.get("plan", {})
    parts = [
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style>",
        f"<h1>bdcore sweep: {html.escape(str(info.get('name')))}</h1>",
        "<p class=meta>"
        + html.escape(
            f"spec {info.get('spec')} · overrides {' '.join(info.get('overrides', [])) or '(none)'} · "
            f"executor {info.get('executor')} · bdcore {info.get('bdcore')} · {info.get('created')}"
        )
        + "<br>"
        + html.escape(
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + f" · {plan.get('trainings_needed', '?')} trainings for {plan.get('stage_computations', '?')} stage uses"
            + f" · {info.get('seconds', 0):.0f} s"
        )
        + "</p>",
        "<h2>Table</h2>",
        render_html(pivot),
    ]
    if plots:
        parts.append("<h2>Across cells</h2>")
        parts += [f"<p><img src='{html.escape(quote(p.relative_to(sweep_dir).as_posix()))}'></p>" for p in plots]
    parts.append("<h2>Cells</h2><table><tr><th class=l>cell</th><th class=l>status</th><th>seconds</th>")
    parts[-1] += "<th class=l>trained</th><th class=l>reused</th><th class=l>error</th></tr>"
    for c in cells:
        name = html.escape(c["name"])
        run = c.get("run_dir")
        href = quote(f"cells/{c['name']}/{run}/report.html")
        link = f"<a href='{html.escape(href)}'>{name}</a>" if run and c.get("status") == "done" else name
        parts.append(
            f"<tr><td class=l>{link}</td><td class=l>{html.escape(str(c.get('status')))}</td>"
            f"<td>{c.get('seconds') or 0:.1f}</td><td class=l>{html.escape(', '.join(c.get('trained', [])))}</td>"
            f"<td class=l>{html.escape(', '.join(c.get('reused', [])))}</td>"
            f"<td class=l>{html.escape(str(c.get('error') or ''))}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>sweep.json</h2><pre>"
        + html.escape(json.dumps({k: v for k, v in info.items() if k != "cells"}, indent=1, default=str))
        + "</pre>"
    )
    return "\n".join(parts)
