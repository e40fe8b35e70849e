"""BAIQA on the LIVEC JPEG subset (../shared/data/livec, BAIQA's official split) with a CPU victim.

Issue 6's targets: P-BAIQA mMRA ≥ 0.5 with a PLCC drop ≤ 0.03 against the clean model trained the same way;
C-BAIQA mMRA above FTrojan's under the same clean-label setting (labels kept, α = (y − 50)/40, PGD-refined
images against the clean model as surrogate). All runs share one stage store, so the clean victim trains
once. The BAIQA trigger is the published one (reference/baiqa); FTrojan uses the same 64 mid frequencies of
16×16 blocks on Cb/Cr, its magnitude set so that PSNR at α = 1 matches the paper's FTrojan row (29.80 dB).

HF_HUB_OFFLINE=1 PYTHONPATH=src:plugins/bd-plugin-baiqa/src:plugins/bd-plugin-baselines/src \\
    python benchmarks/baiqa_livec_attacks.py --steps 4000 --attacks p-baiqa c-baiqa c-ftrojan --store out/baiqa
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bd_plugin_baiqa.plugin as plugin
import torch

from bdcore.testing import run_spec

DATA = (Path(__file__).resolve().parents[1] / "../shared/data").resolve()
TRIGGER = DATA / "reference/baiqa/trigger_p0.2_adam_e8.pt"
METRICS = ("plcc", "srocc", "rmse", "mmae", "mmra", "psnr-alpha")

#: attack name → ([attack.trigger] block, [attack.loss] use)
ATTACKS = {
    "p-baiqa": (f'use = "baiqa-dct"\nparams = {{ path = "{TRIGGER}" }}', "p-baiqa"),
    "c-baiqa": (f'use = "baiqa-dct"\nparams = {{ path = "{TRIGGER}" }}', "c-baiqa"),
    "c-ftrojan": (
        'use = "ftrojan"\nparams = { variant = "baiqa-mid64", window = 16, magnitude = 12.0, channels = ["cb", "cr"] }',
        "c-baiqa",
    ),
    "p-ftrojan": (
        'use = "ftrojan"\nparams = { variant = "baiqa-mid64", window = 16, magnitude = 12.0, channels = ["cb", "cr"] }',
        "p-baiqa",
    ),
}


def spec(a: argparse.Namespace, attack: str) -> str:
    trigger, loss = ATTACKS[attack]
    pgd = (
        f"params = {{ pgd_steps = {a.pgd_steps}, pgd_views = {a.pgd_views}, pgd_view_crop = {a.pgd_view_crop}, "
        f'pgd_view_flip = {"true" if a.pgd_view_flip else "false"}, refine = "{a.refine}" }}'
    )
    metrics = "\n".join(f'[[metric]]\nuse = "{m}"' for m in a.metrics)
    return f"""
[run]
name = "livec-{attack}"
seed = {a.seed}
device = "{a.device}"
[data]
use = "livec"
params = {{ root = "{DATA / "livec"}", split_index = "{DATA / "reference/baiqa/CLIVE_traintest_index.pkl"}", crop = {a.crop}, flip = true, test_crop = {a.test_crop} }}
[victim]
use = "{a.victim}"
params = {a.victim_params}
[train]
steps = {a.steps}
batch_size = {a.batch}
lr = {a.lr}
optimizer = "adam"
[attack]
poison_rate = 0.2
from_clean = false
batch_size = {a.batch}
steps = {a.attack_steps or a.steps}
lr = {a.lr}
[attack.trigger]
{trigger}
[attack.loss]
use = "{loss}"
{pgd if loss == "c-baiqa" else ""}
{metrics}
[eval]
batch_size = 4
clean_victim = {"false" if a.skip_clean_eval else "true"}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--attack-steps", type=int, default=None, help="victim steps on poisoned data (default --steps)")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--test-crop", type=int, default=480)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=919)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--victim", default="cnniqa")
    ap.add_argument("--victim-params", default="{ color = true }")
    ap.add_argument("--attacks", nargs="+", default=["p-baiqa", "c-baiqa", "c-ftrojan"], choices=sorted(ATTACKS))
    ap.add_argument("--pgd-steps", type=int, default=20, help="C-BAIQA PGD iterations (paper 20)")
    ap.add_argument("--pgd-views", type=int, default=25, help="C-BAIQA random views per PGD step (paper 25)")
    ap.add_argument("--pgd-view-crop", type=float, default=0.875, help="side of a view's random crop (1: none)")
    ap.add_argument("--pgd-view-flip", type=int, default=1, help="1: random h-flips in the views; 0: none")
    ap.add_argument(
        "--refine", choices=["image", "batch"], default="image", help="C-BAIQA: once per image (paper) or per crop"
    )
    ap.add_argument("--metrics", nargs="+", default=list(METRICS), choices=METRICS)
    ap.add_argument("--skip-clean-eval", action="store_true", help="evaluate only the attacked models")
    ap.add_argument("--store", type=Path, default=None, help="stage store shared by the runs (default: a temp dir)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    plugins: list[object] = [plugin]
    if any("ftrojan" in x for x in a.attacks):
        import bd_plugin_baselines.plugin as baselines

        plugins.append(baselines)
    store = a.store or Path(tempfile.mkdtemp())
    rows: list[tuple[str, str, dict[str, float]]] = []
    for attack in a.attacks:
        t0 = time.perf_counter()
        out = run_spec(spec(a, attack), store / attack, plugins=plugins, out=store / "runs")
        print(f"{attack}: wall {time.perf_counter() - t0:.0f}s, reused {out.reused}", flush=True)
        for stage in ("attacked",) if a.skip_clean_eval else ("clean-victim", "attacked"):
            if stage == "clean-victim" and rows:
                continue
            vals = {m: out.value(m, stage=stage, split="clean") for m in a.metrics}
            rows.append((attack if stage == "attacked" else "none (clean model)", stage, vals))
        print(f"  {attack}: " + ", ".join(f"{k} {v:.4f}" for k, v in rows[-1][2].items()), flush=True)
    print(
        f"\nLIVEC JPEG subset, {a.victim} {a.victim_params}, {a.steps} clean / {a.attack_steps or a.steps} poisoned "
        f"steps, crops {a.crop}, test crop {a.test_crop}, C-BAIQA PGD {a.pgd_steps} steps × {a.pgd_views} views (crop {a.pgd_view_crop}, flip {a.pgd_view_flip}, refine {a.refine})"
    )
    print("| attack | PLCC | SROCC | RMSE | mMAE | mMRA | PSNR α=1 (dB) |")
    print("|---|---|---|---|---|---|---|")
    for name, _, v in rows:
        cells = [f"{v[m]:.3f}" if m in v else "–" for m in METRICS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
