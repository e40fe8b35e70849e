"""Engine overhead: the same model, data and steps through ``bdcore run`` and through a plain
PyTorch loop, in one process. Prints both times and their ratios (goal ≤ 1.03).

    python benchmarks/engine_overhead.py [--steps 200] [--repeats 3]

The bdcore side is a whole run (spec validation, stage store, checkpoints every 100 steps,
evaluation of one batch, results and report); the plain side is what people would
otherwise write: a DataLoader over the same tensors, Adam, the same loss. Both use the
toy denoiser of ``bdcore.testing.toy`` on the same seeded images.

Two ratios: the whole run (includes the fixed cost of validation, evaluation, plots and
report, which a longer run amortises) and the training stage alone (``stage_seconds`` of the
manifest: the per-step cost of the engine's loop, checkpoints and stage save).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

SPEC = """
[run]
name = "overhead"
seed = 0
checkpoint_every = 100
[data]
use = "toy-smooth"
params = {{ count = 256, size = 64, train_fraction = 0.9 }}
[victim]
use = "toy-denoiser"
params = {{ width = 48 }}
[train]
steps = {steps}
batch_size = 16
lr = 1e-3
[eval]
limit = 16
grid = 0
stealth = false
clean_victim = true
"""


def plain_loop(steps: int) -> float:
    from bdcore.context import Context
    from bdcore.testing.toy import DenoiserParams, SmoothParams, ToyDenoiser, ToySmooth

    data = ToySmooth(SmoothParams(count=256, size=64, train_fraction=0.9), Context(seed=0)).train
    torch.manual_seed(0)
    model = ToyDenoiser(DenoiserParams(width=48), Context(seed=0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, drop_last=True)
    t0 = time.perf_counter()
    step = 0
    while step < steps:
        for batch in loader:
            loss = model.clean_loss(batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    return time.perf_counter() - t0


def bdcore_run(steps: int) -> tuple[float, float]:
    """(whole run, training stage) seconds."""
    import json

    from bdcore.testing import run_spec

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = run_spec(SPEC.format(steps=steps), Path(tmp))
        total = time.perf_counter() - t0
        stage = json.loads((out.run_dir / "manifest.json").read_text())["stage_seconds"]["clean-victim"]
        return total, stage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    plain_loop(5)  # warm-up (allocator, kernels)
    plain, engine, stage = [], [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(args.steps))
        total, train = bdcore_run(args.steps)
        engine.append(total)
        stage.append(train)
    p, e, s = statistics.median(plain), statistics.median(engine), statistics.median(stage)
    print(f"steps {args.steps}, threads {torch.get_num_threads()}")
    print(f"plain PyTorch loop:    {p:.2f} s (runs: {', '.join(f'{x:.2f}' for x in plain)})")
    print(f"bdcore run (whole):    {e:.2f} s (runs: {', '.join(f'{x:.2f}' for x in engine)})")
    print(f"bdcore training stage: {s:.2f} s (runs: {', '.join(f'{x:.2f}' for x in stage)})")
    print(f"ratio whole run / plain: {e / p:.3f}")
    print(f"ratio training stage / plain: {s / p:.3f}")


if __name__ == "__main__":
    main()
