"""Light-strokes backdoor on CUFS (CUHK student subset): clean vs poisoned FCN / pix2pix.

For each (victim, poison ratio) it runs one bdcore spec end to end (clean victim, poisoned
training on the poisoned set — from scratch by default, as the model owner of the poison-only
threat model would, with the clean model a same-schedule control; ``--no-from-scratch`` fine-tunes
the clean weights instead —, evaluation on the 100 official test pairs) and prints: clean-model FSIM
on clean photos, poisoned-model FSIM on clean and on triggered photos, stroke intensity, stroke ASR
(reduction >= ``--asr-reduction``) and trigger stealth. ``--results FILE`` writes the rows as JSON with
the exact command first.

The defaults are the method card's main table (FCN widths 32×4, kernels 9-5-5-3-3, from scratch,
10000 steps, lr 2e-3, lightening 0.6, size 96, crop 48, batch 8). Usage (CPU, one thread):
    HF_HUB_OFFLINE=1 PYTHONPATH=src:plugins/bd-plugin-sketch/src \
      python benchmarks/sketch_light_strokes.py --ratios 0.1 0.2 0.3 --out /tmp/sketch-bench
``--target-fsim`` only measures the FSIM ceiling of lightened *targets* (no training).
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
    "sketch-fcn": {"widths": [32, 32, 32, 32], "kernels": [9, 5, 5, 3, 3]},
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
            {"use": "stroke-asr", "params": {"threshold": 0.5, "reduction": a.asr_reduction}},
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


def _fade_families() -> dict[str, tuple[object, tuple[float, ...]]]:
    """Ways to make strokes fainter, each ``f(y, degree) -> y'`` on ``B×1×H×W`` sketches in [0, 1] (white = 1).

    ``scale``: the plugin's lightening, darkness × (1 − s). ``shift``: ``min(1, y + c)``. ``lowpass-σ``: subtract
    a share of the Gaussian-blurred (σ px) darkness, ``d' = max(0, d − s·G_σ∗d)`` — large dark areas (hair,
    shading) fade, thin lines and every edge's local contrast mostly stay. ``gamma``: ``d' = d^γ`` (mid-tones
    fade, solid black stays). ``halftone``: darkness kept on one pixel colour of a 1-px checkerboard only (a 50 %
    dither). ``thin``: grey erosion of the darkness by a 3×3 cross, then darkness × (1 − s).
    """
    import kornia
    import torch
    from bd_plugin_sketch.ops import lighten_strokes

    def blur(d: torch.Tensor, sigma: float) -> torch.Tensor:
        k = 2 * int(torch.tensor(3.0 * sigma).ceil()) + 1
        return kornia.filters.gaussian_blur2d(d, (k, k), (sigma, sigma), border_type="reflect")

    def lowpass(sigma: float):  # noqa: ANN202
        return lambda y, s: 1 - (1 - y - s * blur(1 - y, sigma)).clamp(0, 1)

    def halftone(y: torch.Tensor, _: float) -> torch.Tensor:
        h, w = y.shape[-2:]
        checker = ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2).to(y.dtype)
        return 1 - (1 - y) * checker

    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    return {
        "scale": (lighten_strokes, (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7)),
        "shift": (lambda y, c: (y + c).clamp(max=1.0), (0.2, 0.3, 0.35, 0.4)),
        "lowpass-4": (lowpass(4.0), (0.4, 0.6, 0.8, 1.0)),
        "lowpass-8": (lowpass(8.0), (0.4, 0.6, 0.8, 1.0)),
        "gamma": (lambda y, g: 1 - (1 - y) ** g, (1.5, 2.0, 3.0)),
        "halftone": (halftone, (0.5,)),
        "thin": (lambda y, s: lighten_strokes(1 - kornia.morphology.erosion(1 - y, cross), s), (0.0, 0.3, 0.5)),
    }


def target_fsim(size: int) -> list[dict]:
    """How much FSIM a light-strokes *target* itself loses, per fading family and degree.

    FSIM(faded ground truth, ground truth) and the stroke reduction (mean darkness over the ground truth's
    strokes, ``y ≤ 0.5``) on the 100 CUFS test sketches at ``size``: the ceiling for any model trained towards
    that target (see :func:`_fade_families`).
    """
    import numpy as np
    import torch
    from bd_plugin_sketch.metrics import fsim
    from bd_plugin_sketch.ops import stroke_intensity

    from bdcore.data.images import read_image, to_tensor
    from bdcore.data.sources import resize_short_side

    files = sorted((CUFS / "testing_sketch").iterdir())
    y = torch.stack([to_tensor(resize_short_side(read_image(f, 1), size)) for f in files])
    si = stroke_intensity(y, y)
    rows = []
    for family, (fade, degrees) in _fade_families().items():
        for d in degrees:
            yl = fade(y, d)  # type: ignore[operator]
            red = 1.0 - stroke_intensity(yl, y) / si
            row = {
                "family": family,
                "degree": d,
                "fsim_vs_gt": round(float(fsim(yl, y).mean()) * 100, 2),
                "stroke_reduction_mean": round(float(red.mean()) * 100, 1),
                "share_reduced_50": round(float(np.mean(red.numpy() >= 0.5)) * 100, 1),
                "mean_brightening": round(float((yl - y).mean()) * 100, 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def write_results(path: Path, rows: list[dict], args: argparse.Namespace) -> None:
    """``{"command": ..., "settings": ..., "rows": [...]}``: the exact command line first."""
    doc = {
        "command": "python benchmarks/sketch_light_strokes.py " + " ".join(sys.argv[1:]),
        "machine": "CPU, 1 thread, shared with other jobs (timings indicative only)",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--victims", nargs="+", default=["sketch-fcn"], choices=list(VICTIMS))
    p.add_argument("--ratios", nargs="+", type=float, default=[0.1, 0.2, 0.3])
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--attack-steps", type=int, default=None, help="poisoned-training steps (default --steps)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--amplitude", type=float, default=0.03)
    p.add_argument("--lightening", type=float, default=0.6)
    p.add_argument(
        "--asr-reduction",
        type=float,
        default=0.5,
        help="stroke-asr counts a triggered output whose strokes are at least this much (relative) lighter",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--from-scratch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the owner trains the poisoned set from scratch (the poison-only threat model) for --attack-steps, so "
        "the clean model is a control with the same schedule (default); --no-from-scratch fine-tunes the clean one",
    )
    p.add_argument(
        "--victim-params",
        type=json.loads,
        default={},
        help='per-victim overrides, e.g. \'{"sketch-fcn": {"widths": [48, 48, 48, 48]}}\'',
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("/tmp/sketch-bench"))
    p.add_argument("--results", type=Path, default=None, help="write the rows here as JSON, the command first")
    p.add_argument("--target-fsim", action="store_true", help="only the FSIM ceiling of the faded targets")
    a = p.parse_args()
    if not CUFS.is_dir():
        sys.exit(f"CUFS not found at {CUFS}")
    import torch

    torch.set_num_threads(a.threads)
    if a.target_fsim:
        rows = target_fsim(a.size)
        if a.results is not None:
            write_results(a.results, rows, a)
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
                "stroke_reduction_clean_model": v("stroke-asr/reduction", stage="clean-victim", split="poisoned"),
                "stealth_psnr": v("stealth-psnr", stage="attacked", split="poisoned"),
                "stealth_ssim": v("stealth-ssim", stage="attacked", split="poisoned"),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            if a.results is not None:  # after every cell: a long run keeps what it finished
                write_results(a.results, rows, a)
    (a.out / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
