"""Regenerate the results tables of the method cards (README.md files) from committed sweep exports.

Usage (from the repository root)::

    python tools/results_tables.py            # rewrite every generated table in README.md files
    python tools/results_tables.py --check    # exit 1 if one is out of date (tests/test_results_tables.py)

A generated table sits between two HTML comments; the first holds its recipe as TOML::

    <!-- results-table
    source = "results/comparison.csv"      # a `bdcore sweep` export (summary CSV), relative to the README
    rows = ["faces", "model"]              # CSV columns whose values make a row, in order of appearance
    headers = ["faces", "defense"]         # the headings of those row columns (default: their names)
    where = { split = "clean" }            # only the CSV rows that match make rows and cells (default: all)
    scale = 100                            # every value times this (default 1)
    digits = 1                             # decimals (default 2)
    [rename]                               # row values as printed (default: as in the CSV)
    attacked = "no defense"
    [[column]]
    title = "clean"
    where = { split = "clean", metric = "accuracy", pgd = "4/255 x 10 (ours)" }
    [[column]]                             # several parts joined by `join` (" / "): "23.75 ± 0.67 / 0.355"
    title = "clean PSNR / bpp"
    parts = [{ where = { metric = "psnr" } }, { where = { metric = "bpp" }, digits = 3, std = false }]
    -->
    | generated: do not edit by hand |
    <!-- end results-table -->

A cell is ``mean ± std`` of the one CSV row that matches the row's values and the column's ``where``
(``scale``, ``digits`` and ``std`` may also be set per column or part); "–" where no row matches, an error
where several do (the recipe is ambiguous). A row shows only if one of its cells has a value. Where a cell
has fewer seeds than the table's most, it says so: "(n = 2)". Written by hand because the tables mix
values of several CSV rows in one cell, which no table library's pivot does.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- results-table\n(?P<recipe>.*?)-->\n)(?P<table>.*?)(<!-- end results-table -->)", re.DOTALL)
MISSING = "–"


class RecipeError(ValueError):
    """A results-table recipe that cannot be rendered (names the README and the problem)."""


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int


def read_summary(path: Path) -> list[dict[str, str]]:
    """The rows of a sweep export (``#`` comment lines skipped)."""
    with path.open(newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def _match(row: dict[str, str], where: dict[str, Any], source: str) -> bool:
    for key, want in where.items():
        if key not in row:
            raise RecipeError(f"{source}: no column {key!r} (columns: {', '.join(row)})")
        if row[key] != str(want):
            return False
    return True


def _one(rows: list[dict[str, str]], where: dict[str, Any], source: str) -> Stat | None:
    found = [r for r in rows if _match(r, where, source)]
    if len(found) > 1:
        raise RecipeError(f"{source}: {len(found)} rows match {where}: add a key that tells them apart")
    if not found:
        return None
    r = found[0]
    return Stat(float(r["mean"]), float(r["std"] or 0.0), int(r["n"]))


def _format(stat: Stat | None, scale: float, digits: int, with_std: bool, n_max: int) -> str:
    if stat is None:
        return MISSING
    text = f"{stat.mean * scale:.{digits}f}"
    if with_std and stat.n > 1:
        text += f" ± {stat.std * abs(scale):.{digits}f}"
    if stat.n < n_max:
        text += f" (n = {stat.n})"
    return text


def render(recipe: dict[str, Any], rows: list[dict[str, str]], source: str) -> str:
    """The Markdown table of one recipe over the export's rows."""
    rows = [r for r in rows if _match(r, dict(recipe.get("where", {})), source)]
    row_keys: list[str] = list(recipe["rows"])
    headers: list[str] = list(recipe.get("headers", row_keys))
    if len(headers) != len(row_keys):
        raise RecipeError(f"{source}: {len(headers)} headers for {len(row_keys)} row columns")
    rename: dict[str, str] = dict(recipe.get("rename", {}))
    columns: list[dict[str, Any]] = list(recipe.get("column", []))
    if not columns:
        raise RecipeError(f"{source}: a results-table needs at least one [[column]]")

    def parts_of(column: dict[str, Any]) -> list[dict[str, Any]]:
        if "parts" in column:
            return [
                {**column, **part, "where": {**column.get("where", {}), **part.get("where", {})}}
                for part in column["parts"]
            ]
        return [column]

    keys: list[tuple[str, ...]] = []
    for r in rows:
        for key in row_keys:
            if key not in r:
                raise RecipeError(f"{source}: no column {key!r} (columns: {', '.join(r)})")
        k = tuple(r[key] for key in row_keys)
        if k not in keys:
            keys.append(k)

    cells: dict[tuple[str, ...], list[list[Stat | None]]] = {}
    for k in keys:
        fixed = dict(zip(row_keys, k, strict=True))
        cells[k] = [[_one(rows, {**part["where"], **fixed}, source) for part in parts_of(c)] for c in columns]
    shown = [k for k in keys if any(s is not None for col in cells[k] for s in col)]
    n_max = max((s.n for k in shown for col in cells[k] for s in col if s is not None), default=0)

    lines = ["| " + " | ".join([*headers, *(str(c["title"]) for c in columns)]) + " |"]
    lines.append("|" + "---|" * (len(headers) + len(columns)))
    for k in shown:
        texts = []
        for column, stats in zip(columns, cells[k], strict=True):
            texts.append(
                str(column.get("join", " / ")).join(
                    _format(
                        stat,
                        float(part.get("scale", recipe.get("scale", 1))),
                        int(part.get("digits", recipe.get("digits", 2))),
                        bool(part.get("std", recipe.get("std", True))),
                        n_max,
                    )
                    for part, stat in zip(parts_of(column), stats, strict=True)
                )
            )
        lines.append("| " + " | ".join([*(rename.get(v, v) for v in k), *texts]) + " |")
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def regenerate(readme: Path) -> str:
    """The README's text with every results-table block rendered again from its source."""
    text = readme.read_text()

    def one(m: re.Match[str]) -> str:
        try:
            recipe = tomllib.loads(m["recipe"])
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"{_shown(readme)}: a results-table recipe is not valid TOML: {exc}") from None
        if "source" not in recipe or "rows" not in recipe:
            raise RecipeError(f"{_shown(readme)}: a results-table recipe needs `source` and `rows`")
        source = readme.parent / recipe["source"]
        if not source.is_file():
            raise RecipeError(f"{_shown(readme)}: results-table source {recipe['source']} does not exist")
        table = render(recipe, read_summary(source), f"{_shown(readme)} (source {recipe['source']})")
        return m.group(1) + table + m.group(4)

    opened, closed = text.count("<!-- results-table\n"), len(BLOCK.findall(text))
    if opened != closed:
        raise RecipeError(
            f"{_shown(readme)}: {opened} results-table blocks open, {closed} end with <!-- end results-table -->"
        )
    return BLOCK.sub(one, text)


def readmes(root: Path = ROOT) -> list[Path]:
    """Every README.md of the repository that holds a results-table block."""
    found = [root / "README.md", *sorted(root.glob("plugins/*/README.md"))]
    return [p for p in found if p.is_file() and "<!-- results-table" in p.read_text()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated table is out of date")
    args = parser.parse_args(argv)
    stale = []
    try:
        for readme in readmes():
            new = regenerate(readme)
            if new != readme.read_text():
                stale.append(readme.relative_to(ROOT))
                if not args.check:
                    readme.write_text(new)
    except RecipeError as exc:
        print(f"results_tables: {exc}", file=sys.stderr)
        return 2
    verb = "out of date" if args.check else "rewritten"
    for path in stale:
        print(f"{path}: {verb}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
