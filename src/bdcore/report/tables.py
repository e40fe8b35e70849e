"""Tables for the command line that never lose a column or a digit: ``--format table|csv|json|markdown``.

``table`` is for people: a rich table when stdout is a terminal, with every column at least as wide as its
longest word and its longest number (wider than the terminal: the terminal wraps the lines, nothing is
cut), and plain aligned text when it is not (CI logs, ``| tee``, files). ``csv`` and ``json`` are for
programs and keep full float precision; ``markdown`` is for READMEs and issues.

Why not rich alone: rich fits a table to the console width (80 columns when the output is not a
terminal) by cutting cells to ``…``, whatever ``min_width`` and ``no_wrap`` say.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import attrs

from bdcore.text import printable

FORMATS = ("table", "csv", "json", "markdown")
_GAP = "  "  # between the columns of the plain text table


def cell_text(value: Any) -> str:
    """A value as the human formats show it: floats with 4 significant digits, None as empty, user text
    with control characters and undecodable bytes escaped (:func:`bdcore.text.printable`)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return printable(str(value))


@attrs.frozen
class TextTable:
    """A title, column names and rows of plain values (``str``, ``int``, ``float`` or ``None``).

    ``numeric[i]`` right-aligns column ``i`` and keeps its cells on one line.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    numeric: tuple[bool, ...]

    @classmethod
    def build(
        cls, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] | None = None
    ) -> TextTable:
        body = tuple(tuple(r) for r in rows)
        for r in body:
            if len(r) != len(columns):
                raise ValueError(f"row {r!r} has {len(r)} cells for {len(columns)} columns")
        if numeric is None:  # a column is numeric when every value in it is a number (or missing)
            numeric = [
                all(r[i] is None or (isinstance(r[i], int | float) and not isinstance(r[i], bool)) for r in body)
                and any(r[i] is not None for r in body)
                for i in range(len(columns))
            ]
        return cls(title, tuple(columns), body, tuple(numeric))

    def text_rows(self) -> list[list[str]]:
        return [[cell_text(v) for v in r] for r in self.rows]


def render(table: TextTable, fmt: str) -> str:
    """``table`` as text in one of :data:`FORMATS` (``table``: the plain aligned form)."""
    if fmt == "table":
        return render_plain(table)
    if fmt == "csv":
        return render_csv(table)
    if fmt == "json":
        return render_json(table)
    if fmt == "markdown":
        return render_markdown(table)
    raise ValueError(f"unknown table format {fmt!r}; formats: {', '.join(FORMATS)}")


def render_plain(table: TextTable) -> str:
    """Aligned columns separated by two spaces, a dashed rule under the header, the title above."""
    cells = table.text_rows()
    widths = [max([len(printable(c)), *(len(r[i]) for r in cells)]) for i, c in enumerate(table.columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if table.numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return _GAP.join(parts).rstrip()

    out = [printable(table.title)] if table.title else []
    out += [line([printable(c) for c in table.columns]), _GAP.join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out) + "\n"


def _plain_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Infinity
    return value


def render_json(table: TextTable) -> str:
    """A JSON array with one object per row, keyed by column name; full precision, missing = null."""
    records = [{c: _plain_value(v) for c, v in zip(table.columns, r, strict=True)} for r in table.rows]
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


def render_csv(table: TextTable) -> str:
    """A header row, then the rows; floats at full precision (``repr``), missing values empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    for r in table.rows:
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in r])
    return buf.getvalue()


def _md(text: str) -> str:
    return printable(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(table: TextTable) -> str:
    """A GitHub pipe table (numbers right-aligned), the title as a bold line above it."""
    out = [f"**{_md(table.title)}**", ""] if table.title else []
    out.append("| " + " | ".join(_md(c) for c in table.columns) + " |")
    out.append("|" + "|".join("---:" if n else "---" for n in table.numeric) + "|")
    out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in table.text_rows()]
    return "\n".join(out) + "\n"


def column_widths(table: TextTable, available: int) -> list[int]:
    """Widths for a terminal table of ``available`` cell characters (borders and padding excluded).

    Each column gets at least its longest unbreakable piece (a number; a word of a name or header),
    so nothing is ever cut; the space left is shared in proportion to what each column would use on
    one line. When even the minimums do not fit, the minimums are returned (the caller prints wider).
    """
    cells = table.text_rows()
    mins, maxs = [], []
    for i, raw in enumerate(table.columns):
        col = printable(raw)
        values = [r[i] for r in cells]
        words = [w for v in [col, *([] if table.numeric[i] else values)] for w in v.split()]
        unbreakable = [len(v) for v in values] if table.numeric[i] else []
        mins.append(max([1, *map(len, words), *unbreakable]))
        maxs.append(max([len(col), *(len(v) for v in values), mins[-1]]))
    widths = list(mins)
    spare = available - sum(mins)
    want = [mx - mn for mn, mx in zip(mins, maxs, strict=True)]
    if spare <= 0 or sum(want) == 0:
        return widths
    if spare >= sum(want):
        return maxs
    for i, w in enumerate(want):
        widths[i] += (w * spare) // sum(want)
    return widths


def rich_table(table: TextTable, console_width: int) -> tuple[Any, int]:
    """A rich Table that fits ``console_width`` without cutting anything, and the width to print it at
    (``console_width``, or more when the minimum widths do not fit)."""
    from rich.table import Table
    from rich.text import Text

    n = len(table.columns)
    chrome = 3 * n + 1  # "│ " before each cell, " " after, and the closing "│"
    widths = column_widths(table, console_width - chrome)
    out = Table(title=Text(printable(table.title)) if table.title else None)
    for i, col in enumerate(table.columns):
        out.add_column(
            Text(printable(col)), justify="right" if table.numeric[i] else "left", width=widths[i], overflow="fold"
        )
    for r in table.text_rows():
        out.add_row(*(Text(c) for c in r))  # Text: user strings are never read as rich markup
    return out, max(console_width, sum(widths) + chrome)
