"""C-BAIQA's PGD refinement (Remark 2): what one clean-label cell of the LIVEC table spends on it.

Three ways to refine, at the table's settings (colour CNNIQA surrogate, 500² LIVEC images, 128² training
crops, 20 PGD steps × 25 EOT views, poison rate 0.2 of 521 training images, 3000 training steps of 16):

* ``official``: the official code's loop (``PGD_demo.py``): one image at a time, the 25 views each a
  forward of one crop, their losses summed, one backward per step; once per poisoned image.
* ``image`` (``refine = "image"``, the default): the same PGD once per poisoned image, all views of
  ``pgd_batch`` images in one forward.
* ``batch`` (``refine = "batch"``): PGD on the poisoned training crops of every step (≈ 3.2 crops of 112²
  views per step), redone at every training step.

Each is timed on a few PGD steps here and scaled to a whole cell (the PGD steps are identical in cost).

Run: PYTHONPATH=src:plugins/bd-plugin-baiqa/src python benchmarks/c_baiqa_refine_cost.py \
        --out benchmarks/results/c-baiqa-refine-cost.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch
from bd_plugin_baiqa.attacks import pgd_targeted, random_views
from bd_plugin_baiqa.params import CnnIqaParams
from bd_plugin_baiqa.util import scores
from bd_plugin_baiqa.victims import CnnIqa


def official_step(
    net: torch.nn.Module, x0: torch.Tensor, x: torch.Tensor, gen: torch.Generator, a: argparse.Namespace
) -> torch.Tensor:
    """One step of the official per-image loop: 25 single-crop forwards, summed, one backward."""
    x = x.detach().requires_grad_(True)
    loss = x.new_zeros(())
    for _ in range(a.views):
        view = random_views(x, 1, size=a.crop, flip=True, generator=gen)
        loss = loss + (scores(net, view) - 50.0).pow(2).sum()
    (g,) = torch.autograd.grad(loss, x)
    eps, step = 2 / 255, 1.6 / 255
    return (x0 + (x.detach() - step * g.sign() - x0).clamp(-eps, eps)).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timed-steps", type=int, default=2, help="PGD steps timed per way")
    ap.add_argument("--images", type=int, default=521, help="training images")
    ap.add_argument("--poison-rate", type=float, default=0.2)
    ap.add_argument("--side", type=int, default=500)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--pgd-steps", type=int, default=20)
    ap.add_argument("--views", type=int, default=25)
    ap.add_argument("--pgd-batch", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = a.device
    net = CnnIqa(CnnIqaParams(color=True)).to(dev).eval()
    for q in net.parameters():
        q.requires_grad_(False)
    poisoned = round(a.poison_rate * a.images)
    crops_per_step = a.batch_size * a.poison_rate

    def timed(fn: object) -> float:
        fn()  # type: ignore[operator]  # warm-up
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / a.timed_steps

    gen = torch.Generator().manual_seed(0)
    one = torch.rand(1, 3, a.side, a.side, device=dev)

    def run_official() -> None:
        x = one
        for _ in range(a.timed_steps):
            x = official_step(net, one, x, gen, a)

    many = torch.rand(a.pgd_batch, 3, a.side, a.side, device=dev)
    crops = torch.rand(max(1, round(crops_per_step)), 3, a.crop, a.crop, device=dev)
    kw = {"steps": a.timed_steps, "views": a.views, "generator": gen}
    per_step = {
        "official": timed(run_official),
        "image": timed(lambda: pgd_targeted(lambda z: scores(net, z), many, 50.0, view_size=a.crop, **kw)),
        "batch": timed(lambda: pgd_targeted(lambda z: scores(net, z), crops, 50.0, view_crop=0.875, **kw)),
    }
    cell_s = {
        "official": per_step["official"] * a.pgd_steps * poisoned,
        "image": per_step["image"] * a.pgd_steps * math.ceil(poisoned / a.pgd_batch),
        # a fractional crop count per step: scale the measured round(crops_per_step) crops linearly
        "batch": per_step["batch"] * a.pgd_steps * a.train_steps * crops_per_step / crops.shape[0],
    }
    result = {
        "command": "python " + " ".join(shlex.quote(x) for x in sys.argv),
        "device": dev if dev != "cpu" else f"cpu, {a.threads} thread(s), shared build machine",
        "settings": vars(a) | {"out": str(a.out) if a.out else None, "poisoned_images": poisoned},
        "seconds_per_pgd_step": {k: round(v, 4) for k, v in per_step.items()},
        "refinement_seconds_per_cell": {k: round(v, 1) for k, v in cell_s.items()},
        "image_vs_official_speedup": round(cell_s["official"] / cell_s["image"], 2),
        "batch_vs_image_cost": round(cell_s["batch"] / cell_s["image"], 1),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
