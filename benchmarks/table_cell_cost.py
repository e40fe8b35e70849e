"""CPU time per cell of a table spec (``[sweep]``), extrapolated from one short cell.

Runs one cell of the spec through ``bdcore run`` with its training schedules cut to ``--fraction`` of their
length (clean victim ``train.steps``, ``attack.steps``, ``attack.fit_steps``; evaluation unchanged), reads the
stage seconds from the run's manifest and scales each training stage back to its full length (the per-step
cost does not depend on the step count; evaluation and data loading are counted once). The ``[sweep]``
table is dropped from the copy that runs, so this works with or without ``bdcore sweep``.

    python benchmarks/table_cell_cost.py plugins/bd-plugin-asfiba/tables/comparison.toml --fraction 0.02 \\
        --set 'attack.trigger={ use = "wanet" }' --out plugins/bd-plugin-asfiba/results/cell-cost-wanet.json

Prints one JSON object (``--out`` also writes it, the command first). The machine is shared: stage
seconds are wall-clock (an upper bound for a quiet machine); ``estimated_full_cell_cpu_s`` scales them by the
share of a core the cell actually got (its CPU time over its wall time), the number to plan with.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

SCHEDULES = (
    ("clean-victim", ("train", "steps")),
    ("attack", ("attack", "steps")),
    ("trigger-fit", ("attack", "fit_steps")),
)


def _get(doc: dict, path: tuple[str, ...]) -> int | None:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc if isinstance(doc, int) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", type=Path)
    ap.add_argument("--fraction", type=float, default=0.05, help="share of every training schedule to run")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="the cell's --set values")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="run folder root (default: a temp folder)")
    a = ap.parse_args()

    doc = tomllib.loads(a.spec.read_text())
    sweep = doc.pop("sweep", None)
    full: dict[str, int] = {}
    short_sets = []
    for stage, path in SCHEDULES:
        n = _get(doc, path)
        if n:
            full[stage] = n
            short_sets.append(f"{'.'.join(path)}={max(1, round(n * a.fraction))}")
    root = a.keep or Path(tempfile.mkdtemp(prefix="cell-cost-"))
    # the copy sits next to the spec so its relative data paths still resolve
    copy = a.spec.with_name(f".cell-cost-{os.getpid()}-{a.spec.name}")
    copy.write_text(tomli_w.dumps(doc))
    cmd = [sys.executable, "-m", "bdcore.cli", "run", str(copy), "--out", str(root), "-q"]
    for s in [*a.overrides, *short_sets]:
        cmd += ["--set", s]
    t0 = time.time()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        copy.unlink(missing_ok=True)
    wall = time.time() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    share = cpu / max(wall, 1e-9)  # the share of a core the cell got on the shared machine
    if proc.returncode != 0:
        sys.exit(f"the cell failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    manifest = json.loads(max(root.rglob("manifest.json"), key=lambda p: p.stat().st_mtime).read_text())
    seconds: dict[str, float] = manifest["stage_seconds"]
    estimate = {}
    for stage, sec in seconds.items():
        if stage in full:
            short = max(1, round(full[stage] * a.fraction))
            estimate[stage] = round(sec * full[stage] / short, 1)
        else:
            estimate[stage] = round(sec, 1)
    res = {
        "command": "python benchmarks/table_cell_cost.py " + " ".join(sys.argv[1:]),
        "machine": "CPU, 1 thread, shared with other jobs (wall seconds are an upper bound for a quiet machine)",
        "spec": str(a.spec),
        "cell": a.overrides,
        "full_schedules": full,
        "fraction": a.fraction,
        "measured_stage_seconds": seconds,
        "estimated_full_cell_seconds": estimate,
        "estimated_full_cell_total_s": round(sum(estimate.values()), 1),
        "cpu_s_of_the_short_cell": round(cpu, 1),
        "core_share": round(share, 3),
        "estimated_full_cell_cpu_s": round(sum(estimate.values()) * share, 1),
        "shared_stages_note": "clean-victim (and trigger-fit where its key matches) are trained once per seed "
        "and shared by the cells that differ only downstream (see bdcore sweep --dry-run)",
        "sweep_cells": None if sweep is None else "see bdcore sweep --dry-run",
        "wall_s": round(wall, 1),
    }
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
