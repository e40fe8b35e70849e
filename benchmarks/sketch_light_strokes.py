"""Light-strokes backdoor on CUFS (CUHK student subset): clean vs poisoned FCN / pix2pix.

For each (victim, poison ratio) it runs one bdcore spec end to end (clean victim, poisoned
training on the poisoned set — from the clean weights, or from scratch with ``--from-scratch``
as the model owner of the poison-only threat model would —, evaluation on the 100 official test
pairs) and prints: clean-model FSIM on clean photos, poisoned-model FSIM on clean and on
triggered photos, stroke intensity, stroke ASR (reduction >= 50 %) and trigger stealth.

Usage (CPU, one thread):
    HF_HUB_OFFLINE=1 PYTHONPATH=src:plugins/bd-plugin-sketch/src \
      python benchmarks/sketch_light_strokes.py --victims sketch-fcn sketch-pix2pix --ratios 0.1 0.3 \
      --steps 300 --size 96 --crop 48 --out /tmp/sketch-bench
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CUFS = (REPO / "../shared/data/face-sketch/cuhk_student").resolve()

VICTIMS = {
    "sketch-fcn": {"widths": [32, 32, 32], "kernels": [5, 5, 3, 3]},
    "sketch-pix2pix": {"base": 32, "depth": 4, "d_base": 32, "d_layers": 3},
}


def spec(victim: str, ratio: float, a: argparse.Namespace) -> dict:
    train = {"steps": a.steps, "batch_size": a.batch_size, "lr": a.lr}
    return {
        "run": {"name": f"cufs-{victim}-p{ratio}", "seed": a.seed},
        "data": {
            "use": "cufs",
            "params": {"root": str(CUFS), "size": a.size, "crop": a.crop, "flip": True, "repeats": 4, "test_crops": 1},
        },
        "victim": {"use": victim, "params": {**VICTIMS[victim], **a.victim_params.get(victim, {})}},
        "train": train,
        "attack": {
            **train,
            "steps": a.attack_steps or a.steps,
            "poison_rate": ratio,
            "from_clean": not a.from_scratch,
            "trigger": {"use": "sketch-pattern", "params": {"amplitude": a.amplitude, "period": 4}},
            "loss": {"use": "light-strokes", "params": {"lightening": a.lightening}},
        },
        "metric": [
            {"use": "fsim"},
            {"use": "ssim"},
            {"use": "stroke-intensity", "params": {"threshold": 0.5}},
            {"use": "stroke-asr", "params": {"threshold": 0.5, "reduction": 0.5}},
            {
                "use": "psnr",
                "label": "stealth-psnr",
                "params": {"between": ["input", "clean_input"], "splits": ["poisoned"]},
            },
            {
                "use": "ssim",
                "label": "stealth-ssim",
                "params": {"between": ["input", "clean_input"], "splits": ["poisoned"]},
            },
        ],
        "eval": {"batch_size": 10, "grid": 0, **({"limit": a.limit} if a.limit else {})},
    }


def target_fsim(size: int) -> None:
    """How much FSIM a light-strokes *target* itself loses, per lightening family and degree.

    FSIM(lightened ground truth, ground truth) and the stroke reduction on the 100 CUFS test
    sketches at ``size``: the ceiling for any model trained towards that target. ``scale`` is the
    plugin's lightening (darkness × (1 − s)); ``shift`` brightens every pixel by a constant
    (``min(1, y + c)``), the other obvious way to make strokes faint.
    """
    import numpy as np
    import torch
    from bd_plugin_sketch.metrics import fsim
    from bd_plugin_sketch.ops import lighten_strokes, stroke_intensity

    from bdcore.data.images import read_image, to_tensor
    from bdcore.data.sources import resize_short_side

    files = sorted((CUFS / "testing_sketch").iterdir())
    y = torch.stack([to_tensor(resize_short_side(read_image(f, 1), size)) for f in files])
    si = stroke_intensity(y, y)
    for family, degrees in (("scale", (0.3, 0.5, 0.6, 0.7)), ("shift", (0.2, 0.3, 0.35, 0.4))):
        for d in degrees:
            yl = lighten_strokes(y, d) if family == "scale" else (y + d).clamp(max=1.0)
            red = 1.0 - stroke_intensity(yl, y) / si
            row = {
                "family": family,
                "degree": d,
                "fsim_vs_gt": round(float(fsim(yl, y).mean()) * 100, 2),
                "stroke_reduction_mean": round(float(red.mean()) * 100, 1),
                "share_reduced_50": round(float(np.mean(red.numpy() >= 0.5)) * 100, 1),
            }
            print(json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--victims", nargs="+", default=list(VICTIMS))
    p.add_argument("--ratios", nargs="+", type=float, default=[0.1, 0.3])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--attack-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--amplitude", type=float, default=0.03)
    p.add_argument("--lightening", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="the owner trains the poisoned set from scratch (the poison-only threat model) for --attack-steps "
        "(default --steps), so the clean model is a control with the same schedule; default: fine-tune the clean one",
    )
    p.add_argument(
        "--victim-params",
        type=json.loads,
        default={},
        help='per-victim overrides, e.g. \'{"sketch-fcn": {"widths": [48, 48, 48, 48]}}\'',
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("/tmp/sketch-bench"))
    p.add_argument("--target-fsim", action="store_true", help="only the FSIM ceiling of the lightened targets")
    a = p.parse_args()
    if not CUFS.is_dir():
        sys.exit(f"CUFS not found at {CUFS}")
    import torch

    torch.set_num_threads(a.threads)
    if a.target_fsim:
        target_fsim(a.size)
        return
    import bd_plugin_sketch.plugin as plugin

    from bdcore.testing.runner import run_spec

    rows = []
    for victim in a.victims:
        for ratio in a.ratios:
            t0 = time.time()
            # one stage store for every ratio: the clean victim is trained once per victim
            o = run_spec(spec(victim, ratio, a), a.out / f"{victim}-p{ratio}", plugins=[plugin], out=a.out / "runs")
            v = o.value
            si_clean = v("stroke-intensity", stage="attacked", split="clean")
            si_trig = v("stroke-intensity", stage="attacked", split="poisoned")
            row = {
                "victim": victim,
                "ratio": ratio,
                "seconds": round(time.time() - t0, 1),
                "fsim_clean_model": v("fsim", stage="clean-victim", split="clean"),
                "fsim_poisoned_model_clean": v("fsim", stage="attacked", split="clean"),
                "fsim_poisoned_model_triggered": v("fsim", stage="attacked", split="poisoned"),
                "ssim_clean_model": v("ssim", stage="clean-victim", split="clean"),
                "ssim_poisoned_model_triggered": v("ssim", stage="attacked", split="poisoned"),
                "stroke_clean_model": v("stroke-intensity", stage="clean-victim", split="clean"),
                "stroke_poisoned_clean": si_clean,
                "stroke_poisoned_triggered": si_trig,
                "stroke_asr": v("stroke-asr", stage="attacked", split="poisoned"),
                "stroke_reduction_mean": v("stroke-asr/reduction", stage="attacked", split="poisoned"),
                "stroke_asr_clean_model": v("stroke-asr", stage="clean-victim", split="poisoned"),
                "stealth_psnr": v("stealth-psnr", stage="attacked", split="poisoned"),
                "stealth_ssim": v("stealth-ssim", stage="attacked", split="poisoned"),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    (a.out / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
