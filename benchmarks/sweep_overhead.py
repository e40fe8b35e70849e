"""Sweep overhead: the same grid through ``bdcore sweep`` (local and Ray executors) and through
``bdcore run`` one cell after another, as a shell loop would run it. Prints one JSON object.

    python benchmarks/sweep_overhead.py [--cells 6] [--clean-steps 300] [--attack-steps 30] [--repeats 1]

The grid: ``--cells`` attacks (``attack.loss.params.clean_weight``) of the toy denoiser that all
share one clean victim. Every side is a fresh ``bdcore`` process per command, with the toy plugin
registered by a two-line wrapper (the toy is not installed as a plugin):

* ``loop``: ``bdcore run SPEC --set ...`` per cell into one output root: ``bdcore run``'s own stage
  store already lets later runs load the clean victim (what a careful user gets from a bash loop);
* ``loop-unshared``: the same with a fresh output root per cell (every run trains its clean victim:
  the saving from shared stages is this against the sweep);
* ``sweep-local``: ``bdcore sweep SPEC`` (cells in order, in one process);
* ``sweep-ray``: ``bdcore sweep SPEC --executor ray`` (starts a local Ray, ``num_cpus`` = 2).

Per-cell overhead = (sweep wall − loop wall) / cells; the executor's own cost per cell =
(sweep wall − Σ cell seconds in sweep.json) / cells (driver, workers, Ray start-up). Sides are
interleaved within each repeat; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = """
[run]
name = "overhead"
checkpoint_every = 1000
[data]
use = "toy-smooth"
params = {{ count = 64, size = 32 }}
[victim]
use = "toy-denoiser"
params = {{ width = 24 }}
[train]
steps = {clean_steps}
batch_size = 8
[attack]
poison_rate = 0.2
steps = {attack_steps}
batch_size = 8
from_clean = true
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert-controlled"
[[metric]]
use = "psnr"
[eval]
limit = 8
grid = 0
[sweep]
[sweep.axes]
"attack.loss.params.clean_weight" = {weights}
"""

# `bdcore` with the toy plugin: the CLI's own entry point, plugins from bdcore.testing.make_host.
WRAPPER = (
    "import sys; import bdcore.cli as cli; from bdcore.testing import make_host; from bdcore.sweep import cell; "
    "cli._host = lambda strict=False: make_host(); cell.default_host = make_host; "
    "sys.argv[0] = 'bdcore'; cli.main()"
)


def bdcore(*args: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", WRAPPER, *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def cell_overrides(spec: Path) -> list[list[str]]:
    from bdcore.sweep.load import load_sweep
    from bdcore.testing import make_host

    sweep = load_sweep(spec, make_host().registry)
    return [list(c.overrides) for c in sweep.grid.cells]


def run_loop(spec: Path, out: Path, cells: list[list[str]], shared: bool) -> float:
    total = 0.0
    for i, overrides in enumerate(cells):
        root = out if shared else out / f"cell{i}"
        sets = [a for o in overrides for a in ("--set", o)]
        total += bdcore("run", str(spec), "--out", str(root), "-q", *sets)
    return total


def run_sweep(spec: Path, out: Path, *extra: str) -> tuple[float, float]:
    """(wall seconds, Σ cell seconds recorded in sweep.json)."""
    wall = bdcore("sweep", str(spec), "--out", str(out), "-q", *extra)
    (info,) = [json.loads(p.read_text()) for p in out.glob("overhead-*/sweep.json")]
    return wall, sum(c["seconds"] for c in info["cells"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=6)
    ap.add_argument("--clean-steps", type=int, default=300)
    ap.add_argument("--attack-steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = ap.parse_args()
    try:
        import ray  # noqa: F401

        has_ray = not args.no_ray
    except ImportError:
        has_ray = False
    weights = [round(0.1 + 0.1 * i, 3) for i in range(args.cells)]
    times: dict[str, list[float]] = {}
    cell_secs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = tmp / "overhead.toml"
        spec.write_text(
            SPEC.format(clean_steps=args.clean_steps, attack_steps=args.attack_steps, weights=json.dumps(weights))
        )
        cells = cell_overrides(spec)
        for r in range(args.repeats):
            sides: list[tuple[str, Any]] = [
                ("loop", lambda d: (run_loop(spec, d, cells, shared=True), None)),
                ("loop-unshared", lambda d: (run_loop(spec, d, cells, shared=False), None)),
                ("sweep-local", lambda d: run_sweep(spec, d)),
            ]
            if has_ray:
                sides.append(("sweep-ray", lambda d: run_sweep(spec, d, "--executor", "ray", "--jobs", "2")))
            for name, side in sides:
                wall, inside = side(tmp / f"{name}-{r}")
                times.setdefault(name, []).append(wall)
                if inside is not None:
                    cell_secs.setdefault(name, []).append(inside)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = args.cells
    report: dict[str, Any] = {
        "cells": n,
        "clean_steps": args.clean_steps,
        "attack_steps": args.attack_steps,
        "repeats": args.repeats,
        "seconds": {k: round(v, 2) for k, v in med.items()},
        "per_cell_vs_bdcore_run_loop_s": {
            k: round((med[k] - med["loop"]) / n, 2) for k in med if k.startswith("sweep")
        },
        "ratio_vs_bdcore_run_loop": {k: round(med[k] / med["loop"], 3) for k in med if k.startswith("sweep")},
        "executor_overhead_per_cell_s": {
            k: round((med[k] - statistics.median(cell_secs[k])) / n, 2) for k in cell_secs
        },
        "shared_stages_saving": {
            "clean_trainings": {"loop-unshared": n, "sweep-local": 1},
            "seconds_unshared_loop": round(med["loop-unshared"], 2),
            "seconds_sweep_local": round(med["sweep-local"], 2),
            "ratio": round(med["sweep-local"] / med["loop-unshared"], 3),
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
