"""Observer overhead: the README demo (``examples/demo.toml``) with and without trackers, in one process.

    python benchmarks/observe_overhead.py [--train-steps 60] [--attack-steps 40] [--repeats 3] [--out FILE]

Three settings, interleaved in each repeat so machine load hits all of them alike:

* ``off``: no tracker (the console's plain progress lines and ``run.log`` are always on);
* ``on``: ``tensorboard`` and ``mlflow`` (local SQLite store, created before timing), scalars
  every ``[run] log_every`` = 10 steps (the default);
* ``on, log_every=1``: the same trackers receiving every step's scalars (the worst case).

Each run gets a fresh output root, so the clean and attack trainings run every time (nothing is
reused from the stage store); the MLflow store is shared, as a user's would be. Reported: the
training time (``stage_seconds`` of ``clean-victim`` + ``attack`` in the manifest), the whole
run (which adds the trackers' fixed costs: uploading artifacts) and the whole run's CPU time in
this process (less sensitive than wall time to other jobs on a shared machine), medians over
the repeats, and the ratios on / off; plus the CPU cost of one logged step in each tracker alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "off": [],
    "on": ['run.observers=["tensorboard", {use = "mlflow", params = {tracking_uri = "TRACKING"}}]'],
    "on, log_every=1": [
        'run.observers=["tensorboard", {use = "mlflow", params = {tracking_uri = "TRACKING"}}]',
        "run.log_every=1",
    ],
}


def one_run(name: str, overrides: list[str], tracking: Path, host: object) -> tuple[float, float, float]:
    """(training seconds, whole-run seconds, whole-run CPU seconds of this process) of one run of the demo."""
    from bdcore.engine.run import execute
    from bdcore.spec.structure import load_spec

    sets = [o.replace("TRACKING", str(tracking)) for o in overrides]
    loaded = load_spec(ROOT / "examples" / "demo.toml", host.registry, overrides=sets)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        result = execute(loaded, host, out_root=Path(tmp) / "runs")  # type: ignore[arg-type]
        whole, cpu = time.perf_counter() - t0, time.process_time() - c0
        seconds = json.loads((result.run_dir / "manifest.json").read_text())["stage_seconds"]
    return seconds["clean-victim"] + seconds["attack"], whole, cpu


def event_cost(n: int = 20000) -> float:
    """Microseconds per training-step progress event through the always-on observers (console
    plain lines through logging, run.log), at the default cadence (no line is due)."""
    from bdcore.observe.bus import EventBus
    from bdcore.observe.progress import LogProgress, RunLog

    with tempfile.TemporaryDirectory() as tmp:
        bus = EventBus([("run.log", RunLog(Path(tmp) / "run.log")), ("console", LogProgress())])
        with bus.stage("attack", n) as stage:
            callback = stage.train_callback()
            t0 = time.perf_counter()
            for step in range(1, n + 1):
                callback(step, {})
            return (time.perf_counter() - t0) / n * 1e6


def tracker_cost(n: int = 2000) -> dict[str, float]:
    """CPU microseconds per logged training step (4 scalars, as the demo's attack logs) through
    each tracker alone, writing included: what the trainer pays every ``log_every`` steps. Opening
    the store is excluded (a fixed cost, in the whole-run times)."""
    from bdcore.context import Context
    from bdcore.observe.events import RunStarted, Scalars
    from bdcore.observe.mlflow_observer import MlflowObserver
    from bdcore.observe.params import MlflowParams, TensorBoardParams
    from bdcore.observe.tensorboard_observer import TensorBoardObserver

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "run").mkdir()
        start = RunStarted("bench", root / "run", root, {"train": {"steps": n}}, {"bdcore": "bench"})
        for name, observer in (
            ("tensorboard", TensorBoardObserver(TensorBoardParams(), Context(spec_dir=root))),
            ("mlflow", MlflowObserver(MlflowParams(), Context(spec_dir=root))),
        ):
            observer.on_event(start)
            values = {"loss": 0.5, "psnr": 30.0, "bpp": 0.7, "lr": 3e-4}
            # CPU time of this process (the trackers' writer threads included), not wall time:
            # the machine is shared, and CPU time is what a logged step takes from training
            t0 = time.process_time()
            for step in range(1, n + 1):
                observer.on_event(Scalars("attack", step, values))
            observer.close()  # drains the queues: their writing counts
            out[name] = (time.process_time() - t0) / n * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--attack-steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = ap.parse_args()

    from bdcore.observe.mlflow_observer import open_tracking
    from bdcore.observe.params import MlflowParams
    from bdcore.plugins import load_plugins

    host = load_plugins()
    steps = [f"train.steps={args.train_steps}", f"attack.steps={args.attack_steps}", "run.progress_every=1e9"]
    times: dict[str, list[tuple[float, float, float]]] = {k: [] for k in SETTINGS}
    with tempfile.TemporaryDirectory() as tracking_tmp:
        tracking = Path(tracking_tmp) / "mlruns"
        open_tracking(MlflowParams(tracking_uri=str(tracking)), Path(tracking_tmp), Path(tracking_tmp))
        one_run("warm-up", [*steps[2:], "train.steps=2", "attack.steps=2"], tracking, host)
        for _ in range(args.repeats):
            for name, overrides in SETTINGS.items():
                times[name].append(one_run(name, [*steps, *overrides], tracking, host))
                train, whole, cpu = times[name][-1]
                print(f"{name}: training {train:.2f} s, whole run {whole:.2f} s, CPU {cpu:.2f} s", flush=True)

    lines = [
        "# python " + " ".join(["benchmarks/observe_overhead.py", *sys.argv[1:]]),
        f"# demo with train.steps={args.train_steps}, attack.steps={args.attack_steps}; "
        f"torch threads {torch.get_num_threads()}; {args.repeats} interleaved repeats; medians",
    ]
    lines.append(f"progress event per training step (console + run.log observers): {event_cost():.1f} µs")
    costs = tracker_cost()
    off_train = statistics.median(r[0] for r in times["off"])
    off_whole = statistics.median(r[1] for r in times["off"])
    off_cpu = statistics.median(r[2] for r in times["off"])
    step_cpu = off_cpu / (args.train_steps + args.attack_steps)  # an upper bound: evaluation included
    lines.append(
        f"CPU per logged step (4 scalars): tensorboard {costs['tensorboard']:.0f} µs, mlflow {costs['mlflow']:.0f} µs; "
        f"whole-run CPU per training step of the demo (off) {step_cpu * 1e3:.0f} ms"
    )
    for name, runs in times.items():
        train = statistics.median(r[0] for r in runs)
        whole = statistics.median(r[1] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        lines.append(
            f"{name:16s} training {train:7.2f} s (x{train / off_train:.3f})   whole run {whole:7.2f} s "
            f"(x{whole / off_whole:.3f})   whole-run CPU {cpu:7.2f} s (x{cpu / off_cpu:.3f})"
        )
        lines.append(
            f"{'':16s} runs (training/whole/CPU s): " + ", ".join(f"{t:.1f}/{w:.1f}/{c:.1f}" for t, w, c in runs)
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
