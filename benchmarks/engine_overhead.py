"""Engine overhead: the same model, data and optimizer steps through ``bdcore run`` and through a plain
PyTorch loop, interleaved in one process. Prints both times and their ratios (goal: training stage ≤ 1.03).

    python benchmarks/engine_overhead.py [--steps 120] [--repeats 3] [--width 32]

The bdcore side is a whole run (spec validation, stage store, the engine's DataLoader with its
step sampler, a checkpoint every 100 steps, stage save, evaluation of one batch, results and report);
the plain side is what people would otherwise write: a DataLoader over the same tensors (shuffled,
last partial batch dropped), Adam, the same loss, the same number of steps. Both use the toy denoiser
of ``bdcore.testing.toy`` on the same seeded images, one thread, fp32.

Two ratios: the training stage alone (``stage_seconds`` of the manifest: the per-step cost of the
engine's loop, loader, checkpoints and stage save: the number the goal is about) and the whole run (adds
the fixed cost of validation, evaluation, plots and report, which a longer run amortises). Each is given
as the ratio of medians and of minima over the repeats, in wall-clock time and in CPU time of the process
(on a shared machine the CPU time is the steadier: waiting for a core does not count). Finishes in well
under 2 minutes on an idle core with the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

SPEC = """
[run]
name = "overhead"
seed = 0
checkpoint_every = 100
[data]
use = "toy-smooth"
params = {{ count = 256, size = {size}, train_fraction = 0.9 }}
[victim]
use = "toy-denoiser"
params = {{ width = {width} }}
[train]
steps = {steps}
batch_size = {batch}
lr = 1e-3
[eval]
limit = 16
grid = 0
stealth = false
clean_victim = true
"""


def plain_loop(steps: int, width: int, size: int, batch: int) -> tuple[float, float]:
    """(wall, CPU) seconds for ``steps`` optimizer steps of a hand-written loop (model and loader creation
    included)."""
    from bdcore.context import Context
    from bdcore.testing.toy import DenoiserParams, SmoothParams, ToyDenoiser, ToySmooth

    data = ToySmooth(SmoothParams(count=256, size=size, train_fraction=0.9), Context(seed=0)).train
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    model = ToyDenoiser(DenoiserParams(width=width), Context(seed=0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
    model.train()
    step = 0
    while step < steps:
        for batch_ in loader:
            loss = model.clean_loss(batch_)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    return time.perf_counter() - t0, time.process_time() - c0


@contextlib.contextmanager
def stage_cpu_seconds(into: dict[str, float]) -> Iterator[None]:
    """Record each stage's CPU seconds next to the wall-clock ``stage_seconds`` the engine reports."""
    from bdcore.engine.runner import Runner

    original = Runner.timed

    @contextlib.contextmanager
    def timed(self: Runner, stage: str) -> Iterator[None]:
        c0 = time.process_time()
        with original(self, stage):
            yield
        into[stage] = into.get(stage, 0.0) + time.process_time() - c0

    Runner.timed = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        Runner.timed = original  # type: ignore[method-assign]


def bdcore_run(steps: int, width: int, size: int, batch: int) -> tuple[float, float, float, float]:
    """(whole run, training stage) wall-clock seconds, then the same in CPU seconds."""
    from bdcore.testing import run_spec

    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, stage_cpu_seconds(cpu):
        t0, c0 = time.perf_counter(), time.process_time()
        out = run_spec(SPEC.format(steps=steps, width=width, size=size, batch=batch), Path(tmp))
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        stage = json.loads((out.run_dir / "manifest.json").read_text())["stage_seconds"]["clean-victim"]
        return total, stage, total_cpu, cpu["clean-victim"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    shape = (args.steps, args.width, args.size, args.batch)
    plain_loop(5, *shape[1:])  # warm-up (allocator, kernels)
    bdcore_run(2, *shape[1:])  # warm-up (imports, plugin discovery)
    runs: dict[str, list[float]] = {k: [] for k in ("plain", "whole", "stage", "plain cpu", "whole cpu", "stage cpu")}
    for _ in range(args.repeats):  # interleaved, so a change of machine load hits both sides
        wall, cpu = plain_loop(*shape)
        runs["plain"].append(wall)
        runs["plain cpu"].append(cpu)
        for key, value in zip(("whole", "stage", "whole cpu", "stage cpu"), bdcore_run(*shape), strict=True):
            runs[key].append(value)
    print(
        f"steps {args.steps}, batch {args.batch}×3×{args.size}², width {args.width}, threads {torch.get_num_threads()}"
    )
    labels = {"plain": "plain PyTorch loop", "whole": "bdcore run (whole)", "stage": "bdcore training stage"}
    for clock in ("", " cpu"):
        for key, label in labels.items():
            xs = runs[key + clock]
            print(f"{label + clock:27s} {statistics.median(xs):7.2f} s (runs: {', '.join(f'{x:.2f}' for x in xs)})")
    for clock, name in (("", "wall-clock"), (" cpu", "CPU time")):
        p = runs["plain" + clock]
        for key, label in (("stage", "training stage"), ("whole", "whole run")):
            xs = runs[key + clock]
            med, low = statistics.median(xs) / statistics.median(p), min(xs) / min(p)
            print(f"ratio {label} / plain ({name}): {med:.3f} (medians), {low:.3f} (minima)")


if __name__ == "__main__":
    main()
