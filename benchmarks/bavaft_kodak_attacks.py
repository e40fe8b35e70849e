"""BAvAFT / BAvAFT++ on Kodak with a small codec trained here: the issue's numbers.

One vanilla codec (bmshj2018-hyperprior, small widths) is trained on random crops of the LIVEC
photographs (``../shared/data/livec``: 627 real photographs, none of them Kodak) and cached as a
bdcore stage; every attack then fine-tunes its encoder from those weights. Evaluation is on the 24
whole Kodak images (``../shared/data/kodak``) with real entropy-coded bitstreams, under no defense,
JPEG quality 50 and Gaussian blur σ = 0.6 (bd-plugin-baselines), i.e. Table V's columns.

Printed per attack (one JSON line each, and ``summary.json``):
vanilla clean PSNR/BPP, attacked clean PSNR/BPP (real), triggered PSNR/BPP, trigger PSNR, and the
same attack numbers after each preprocessing.

Usage (CPU):
    HF_HUB_OFFLINE=1 python benchmarks/bavaft_kodak_attacks.py --attacks psnr bpp psnr++ \
      --vanilla-steps 3000 --attack-steps 1500 --out /tmp/bavaft-kodak

The settings behind the numbers in plugins/bd-plugin-bavaft/README.md ("Measured on Kodak") are given
there per attack (e.g. the BPP attack with ``--loss-params '{"r_p": "log-ratio", ...}'``). Run attacks
one at a time on a 2-core CPU: two runs side by side each took 7 s per step instead of 1.7 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / "../shared/data").resolve()

#: attack name → (loss component, loss params, trigger params)
ATTACKS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "psnr": ("bavaft-psnr", {}, {}),
    "bpp": ("bavaft-bpp", {}, {}),
    "psnr++": ("bavaft-psnr", {}, {"selection": "robust"}),
    "bpp++": ("bavaft-bpp", {}, {"selection": "robust"}),
}

DEFENSES = [
    {"use": "jpeg", "label": "jpeg50", "params": {"quality": 50}},
    {"use": "gaussian-blur", "label": "blur0.6", "params": {"sigma": 0.6}},
]


def spec(attack: str, a: argparse.Namespace) -> dict[str, Any]:
    loss, loss_params, trigger_params = ATTACKS[attack]
    loss_params = {"beta": a.beta, "gamma": a.gamma, **loss_params, **a.loss_params}
    if attack.endswith("++"):
        loss_params["robust_stage2_after"] = int(a.attack_steps * a.stage2_fraction)
    return {
        "run": {"name": f"kodak-{attack}", "seed": a.seed, "device": "cpu", "checkpoint_every": 250},
        "data": {
            "use": "image-folder",
            "params": {
                "path": str(DATA / "livec/Images"),
                "test_path": str(DATA / "kodak"),
                "crop": a.crop,
                "test_crop": 0,
                "flip": True,
                **({"limit": a.limit} if a.limit else {}),
            },
        },
        "victim": {
            "use": "compressai",
            "params": {"model": a.model, "quality": a.quality, "n": a.n, "m": a.m, "coding_batch": 1},
        },
        "train": {"steps": a.vanilla_steps, "batch_size": a.batch_size, "lr": a.lr, "grad_clip": a.grad_clip},
        "attack": {
            "from_clean": True,
            "steps": a.attack_steps,
            "batch_size": a.batch_size,
            "lr": a.attack_lr,
            "grad_clip": a.grad_clip,
            "trigger": {
                "use": "bavaft",
                "params": {
                    "k": 16,
                    "norm": "none",
                    **trigger_params,
                    **a.trigger_params,
                    **({"init_psnr": a.init_psnr} if a.init_psnr is not None else {}),
                    **({"budget_psnr": a.budget_psnr} if a.budget_psnr is not None else {}),
                },
            },
            "loss": {"use": loss, "params": loss_params},
        },
        "defense": DEFENSES,
        "metric": [
            {"use": "psnr"},
            {"use": "ms-ssim"},
            {"use": "bpp"},
            {"use": "bpp-est"},
            {
                "use": "psnr",
                "label": "trigger-psnr",
                "params": {"between": ["input", "clean_input"], "splits": ["poisoned"]},
            },
        ],
        "eval": {"batch_size": 1, "grid": 4},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--attacks", nargs="+", default=["psnr", "bpp", "psnr++"], choices=list(ATTACKS))
    p.add_argument("--model", default="bmshj2018-hyperprior")
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--m", type=int, default=96)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--vanilla-steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--grad-clip", type=float, default=1.0, help="max grad norm (CompressAI's train.py default)")
    p.add_argument("--attack-steps", type=int, default=1500)
    p.add_argument("--attack-lr", type=float, default=1e-4)
    p.add_argument("--beta", type=float, default=0.01)
    p.add_argument("--gamma", type=float, default=1e4, help="visibility weight (paper 1e4)")
    p.add_argument("--stage2-fraction", type=float, default=0.5, help="BAvAFT++: share of attack steps in stage 1")
    p.add_argument("--init-psnr", type=float, default=None, help="trigger init_psnr (dB); default: none")
    p.add_argument("--budget-psnr", type=float, default=None, help="trigger budget_psnr (dB); default: none")
    p.add_argument(
        "--loss-params",
        type=json.loads,
        default={},
        help='extra attack-loss params, e.g. \'{"dynamic": false, "alpha": 0}\' (static Eq. 5 without D(x_p))',
    )
    p.add_argument(
        "--trigger-params",
        type=json.loads,
        default={},
        help='extra bavaft trigger params, e.g. \'{"channels": "y"}\' (a luma-only trigger)',
    )
    p.add_argument("--limit", type=int, default=None, help="images per folder (quick checks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("/tmp/bavaft-kodak"))
    a = p.parse_args()
    if not (DATA / "kodak").is_dir() or not (DATA / "livec/Images").is_dir():
        sys.exit(f"Kodak or LIVEC not found under {DATA}")
    import torch

    torch.set_num_threads(a.threads)
    import bd_plugin_baselines.plugin as baselines
    import bd_plugin_bavaft.plugin as bavaft

    from bdcore.testing.runner import run_spec

    rows = []
    for attack in a.attacks:
        t0 = time.time()
        o = run_spec(spec(attack, a), a.out / attack, plugins=[baselines, bavaft], out=a.out / "runs")

        def v(
            metric: str, stage: str = "attacked", split: str = "poisoned", defense: str | None = None, o: Any = o
        ) -> float:
            return float(o.value(metric, stage=stage, split=split, defense=defense))

        row: dict[str, Any] = {
            "attack": attack,
            "seconds": round(time.time() - t0, 1),
            "reused": o.reused,
            "vanilla_clean_psnr": v("psnr", "clean-victim", "clean"),
            "vanilla_clean_bpp": v("bpp", "clean-victim", "clean"),
            "vanilla_clean_bpp_est": v("bpp-est", "clean-victim", "clean"),
            "attacked_clean_psnr": v("psnr", split="clean"),
            "attacked_clean_bpp": v("bpp", split="clean"),
            "attacked_clean_bpp_est": v("bpp-est", split="clean"),
            "triggered_psnr": v("psnr"),
            "triggered_bpp": v("bpp"),
            "triggered_bpp_est": v("bpp-est"),
            "vanilla_triggered_psnr": v("psnr", "clean-victim"),
            "vanilla_triggered_bpp": v("bpp", "clean-victim"),
            "trigger_psnr": v("trigger-psnr"),
        }
        for d in ("jpeg50", "blur0.6"):
            row[f"{d}_clean_psnr"] = v("psnr", "defended", "clean", d)
            row[f"{d}_clean_bpp"] = v("bpp", "defended", "clean", d)
            row[f"{d}_triggered_psnr"] = v("psnr", "defended", "poisoned", d)
            row[f"{d}_triggered_bpp"] = v("bpp", "defended", "poisoned", d)
        rows.append(row)
        print(json.dumps(row), flush=True)
    (a.out / "summary.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    """Table I-style markdown: PSNR (dB) / real BPP, vanilla vs attacked, clean vs triggered, per defense."""
    lines = [
        "| attack | vanilla clean | attacked clean | attacked triggered | trigger PSNR | JPEG 50 clean / triggered "
        "| blur 0.6 clean / triggered |",
        "|---|---|---|---|---|---|---|",
    ]

    def pb(r: dict[str, Any], prefix: str) -> str:
        return f"{r[prefix + '_psnr']:.2f} / {r[prefix + '_bpp']:.3f}"

    for r in rows:
        lines.append(
            f"| {r['attack']} | {pb(r, 'vanilla_clean')} | {pb(r, 'attacked_clean')} | {pb(r, 'triggered')} "
            f"| {r['trigger_psnr']:.1f} | {pb(r, 'jpeg50_clean')} → {pb(r, 'jpeg50_triggered')} "
            f"| {pb(r, 'blur0.6_clean')} → {pb(r, 'blur0.6_triggered')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
