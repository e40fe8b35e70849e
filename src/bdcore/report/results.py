"""Results: ``results.jsonl`` (one JSON object per row) and ``results.csv``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from bdcore.io.atomic import write_text

COLUMNS = (
    "run",
    "stage",
    "defense",
    "setting",
    "split",
    "metric",
    "value",
    "higher_is_better",
    "victim",
    "trigger",
    "attack",
)


def write_results(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Write both files atomically; rows keep the order they were produced in."""
    write_text(run_dir / "results.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    write_text(run_dir / "results.csv", buf.getvalue())
    partial = run_dir / "results.partial.jsonl"
    if partial.exists():
        partial.unlink()


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "results.jsonl"
    if not path.is_file():
        partial = run_dir / "results.partial.jsonl"
        if partial.is_file():
            path = partial
        else:
            return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
