"""Which NR-IQA victim to attack on a CPU: short pilots on LIVEC, held-out PLCC/SROCC per CPU-minute.

Each candidate is trained from scratch (no downloaded weights) on BAIQA's official LIVEC split of the
627-JPEG subset (521 train / 106 test), with random crops and horizontal flips, for ``--cpu-minutes``
of training CPU time (the step count comes from a timed probe of 3 steps, so every candidate gets the
same budget), then evaluated on one centre ``--test-crop``² crop of each held-out image. CPU time is
the process's user+system time (the machine is shared, wall time is not comparable); one thread.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/baiqa_victim_pilot.py --cpu-minutes 6 \\
        --candidates cnniqa-color cnniqa-grey iqa-small-32 wadiqam --out out/victim-pilot
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import bd_plugin_baiqa.plugin as plugin
import torch

from bdcore.testing import run_spec

DATA = (Path(__file__).resolve().parents[1] / "../shared/data").resolve()

#: name → (victim, params, training crop, batch, lr)
CANDIDATES: dict[str, tuple[str, str, int, int, float]] = {
    "cnniqa-color": ("cnniqa", "{ color = true }", 128, 16, 1e-3),
    "cnniqa-grey": ("cnniqa", "{ color = false }", 128, 16, 1e-3),
    "iqa-small-32": ("iqa-small", "{ width = 32, depth = 4 }", 128, 16, 1e-3),
    "iqa-small-16": ("iqa-small", "{ width = 16, depth = 5 }", 128, 16, 1e-3),
    "wadiqam": ("wadiqam", "{}", 128, 16, 1e-4),
    "wadiqam-lr3e-4": ("wadiqam", "{}", 128, 16, 3e-4),
    "diqam": ("wadiqam", "{ weighted_average = false }", 128, 16, 1e-4),
}


def spec(name: str, steps: int, test_crop: int, seed: int) -> str:
    victim, params, crop, batch, lr = CANDIDATES[name]
    return f"""
[run]
name = "pilot-{name}"
seed = {seed}
device = "cpu"
[data]
use = "livec"
params = {{ root = "{DATA / "livec"}", split_index = "{DATA / "reference/baiqa/CLIVE_traintest_index.pkl"}", crop = {crop}, flip = true, test_crop = {test_crop} }}
[victim]
use = "{victim}"
params = {params}
[train]
steps = {steps}
batch_size = {batch}
lr = {lr}
optimizer = "adam"
[[metric]]
use = "plcc"
[[metric]]
use = "srocc"
[[metric]]
use = "rmse"
[eval]
batch_size = 4
"""


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def probe_step_seconds(name: str) -> float:
    """CPU seconds of one training step (mean of 3 after a warm-up), measured outside the engine."""
    victim, params, crop, batch, _ = CANDIDATES[name]
    import tomllib

    from bd_plugin_baiqa import params as P
    from bd_plugin_baiqa.pyiqa_victims import Wadiqam
    from bd_plugin_baiqa.victims import CnnIqa, SmallIqaNet

    kw = tomllib.loads(f"p = {params}")["p"]
    cls, pcls = {"cnniqa": (CnnIqa, P.CnnIqaParams), "iqa-small": (SmallIqaNet, P.SmallIqaParams)}.get(
        victim, (Wadiqam, P.WadiqamParams)
    )
    net = cls(pcls(**kw))
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    b = {"input": torch.rand(batch, 3, crop, crop), "target": torch.rand(batch) * 100}

    def step() -> None:
        opt.zero_grad()
        net.clean_loss(b)["loss"].backward()
        opt.step()

    step()
    c0 = cpu_seconds()
    for _ in range(3):
        step()
    return (cpu_seconds() - c0) / 3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", nargs="+", default=["cnniqa-color", "iqa-small-32", "wadiqam"], choices=CANDIDATES)
    ap.add_argument("--cpu-minutes", type=float, default=6.0, help="training CPU budget per candidate")
    ap.add_argument("--test-crop", type=int, default=480)
    ap.add_argument("--seed", type=int, default=919)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in a.candidates:
        per_step = probe_step_seconds(name)
        steps = max(10, round(a.cpu_minutes * 60 / per_step / 10) * 10)
        c0, t0 = cpu_seconds(), time.perf_counter()
        out = run_spec(spec(name, steps, a.test_crop, a.seed), a.out / name, plugins=[plugin], out=a.out / "runs")
        cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
        v = {m: out.value(m, stage="clean-victim", split="clean") for m in ("plcc", "srocc", "rmse")}
        rows.append((name, steps, cpu / 60, wall / 60, v))
        print(f"{name}: {steps} steps, cpu {cpu / 60:.1f} min, wall {wall / 60:.1f} min, {v}", flush=True)
    print(f"\nLIVEC (BAIQA split, JPEG subset, 521/106), seed {a.seed}, test crop {a.test_crop}, one thread")
    print(
        "| candidate | victim params | steps | CPU min (train+eval) | wall min | PLCC | SROCC | RMSE | PLCC / CPU-min |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, steps, cpu, wall, v in rows:
        vic, params, crop, batch, lr = CANDIDATES[name]
        print(
            f"| {name} | {vic} {params}, crop {crop}, batch {batch}, lr {lr:g} | {steps} | {cpu:.1f} | {wall:.1f} | "
            f"{v['plcc']:.3f} | {v['srocc']:.3f} | {v['rmse']:.2f} | {v['plcc'] / cpu:.4f} |"
        )


if __name__ == "__main__":
    main()
