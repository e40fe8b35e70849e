"""AS-FIBA vs WaNet vs ISSBA vs FIBA under one victim, target and loss, on held-out real faces (CPU).

The AS-FIBA paper's Tables I/II compare the four attacks "adapted to the same target": every run here
trains the same clean ``unet-restorer`` once (one shared stage store), then fine-tunes it with Eq. 5
(``asfiba`` loss: λ1 = 0.75 clean, λ2 = 0.125 triggered → I_0.1, 0.125 pseudo-triggered → clean) where
the pseudo triggers are each family's own (``PseudoTrigger``): SF-I-Net's other trigger images, WaNet's
noise ("cross") warps, FIBA's blends with other images, ISSBA's other secrets. Data: the 74 faces of
``shared/data/faces-hq`` (CelebA-HQ, FFHQ) at ``--size`` px, 80 % train, the rest held out, each with
``--test-degradations`` seeded BFR degradations. Each run also gets Fine-Pruning (a sweep over the pruning
rate of the U-Net bottleneck, Fig. 5) and STRIP (Fig. 6) unless ``--no-defenses``, and Grad-CAM of that
bottleneck on clean vs triggered faces (Fig. 7; the maps are in each run's report grid) unless ``--no-grad-cam``.

Printed (and written to ``<store>/asfiba_compare.json`` and ``<store>/compare.html``, the latter by
``bdcore report``'s comparison): per attack PSNR(I_p, I), NIQE of the outputs without and with the trigger
(``--size`` ≥ 192 and the NIQE parameters fetched: ``python -m bd_plugin_asfiba.niqe_params fetch``),
BA and ASR (§IV-A rule, 1 − MS-SSIM), the clean model's ASR on the same triggered inputs, the final Eq. 5
terms (the pseudo term must be there for every trigger), STRIP's AUROC, BA/ASR after pruning and the
Grad-CAM similarity of clean and triggered maps.

    HF_HUB_OFFLINE=1 PYTHONPATH=src:plugins/bd-plugin-asfiba/src:plugins/bd-plugin-baselines/src \\
        python benchmarks/asfiba_compare.py [--quick] [--size 192] [--store DIR] [--attacks asfiba wanet ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bd_plugin_asfiba.plugin as asfiba
import bd_plugin_baselines.plugin as baselines
import torch

from bdcore.io.atomic import write_text
from bdcore.report.compare import compare_runs
from bdcore.testing import run_spec

DATA = (Path(__file__).resolve().parents[1] / "../shared/data/faces-hq").resolve()
#: U-Net bottleneck of unet-restorer (depth 2): its last conv, 4·base channels
PRUNE_LAYER = "downs.1.2.2"

#: attack → its [attack.trigger] table (same trigger image, coffee, for the two image-based triggers)
TRIGGERS = {
    "asfiba": 'use = "sf-i-net"\nparams = { preset = "small", trigger_image = "coffee" }',
    "wanet": 'use = "wanet"',
    "issba": 'use = "issba"\nparams = { width = 16 }',
    "fiba": 'use = "fiba"\nparams = { pattern = "embedded:coffee" }',
}
GRAD_CAM = f'[[metric]]\nuse = "grad-cam"\nparams = {{ layer = "{PRUNE_LAYER}", target = "output-mean" }}'
LABEL = {"asfiba": "AS-FIBA (SF-I-Net)", "wanet": "WaNet", "issba": "ISSBA", "fiba": "FIBA"}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny schedules, 1 degradation per face")
    ap.add_argument("--attacks", nargs="+", default=list(TRIGGERS), choices=list(TRIGGERS))
    ap.add_argument("--size", type=int, default=64, help="face side (px), training and test; NIQE needs >= 192")
    ap.add_argument("--clean-steps", type=int, default=1500)
    ap.add_argument("--target-psnr", type=float, default=40.0, help="SF-I-Net visibility target, dB")
    ap.add_argument("--epsilon", type=float, default=4.0, help="SF-I-Net l-inf bound, in 1/255")
    ap.add_argument("--fit-steps", type=int, default=600, help="SF-I-Net and ISSBA encoder fits")
    ap.add_argument("--attack-steps", type=int, default=3000)
    ap.add_argument("--clean-lr", type=float, default=2e-3)
    ap.add_argument("--attack-lr", type=float, default=2e-3)
    ap.add_argument(
        "--from-clean",
        action="store_true",
        help="fine-tune the clean victim (default: train the attacked victim with Eq. 5 from scratch, which is "
        "what made AS-FIBA take on the small CPU victim; see the plugin README)",
    )
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--victim-base", type=int, default=16)
    ap.add_argument("--victim-depth", type=int, default=2, choices=[2], help="the pruned layer assumes depth 2")
    ap.add_argument("--lambda1", type=float, default=0.75)
    ap.add_argument("--lambda2", type=float, default=0.125)
    ap.add_argument("--test-degradations", type=int, default=4, help="seeded LQ versions per held-out face")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    ap.add_argument("--no-defenses", action="store_true", help="skip fine-pruning and STRIP")
    ap.add_argument("--no-grad-cam", action="store_true", help="skip the Grad-CAM metric")
    ap.add_argument("--niqe", choices=["auto", "on", "off"], default="auto", help="auto: if size >= 192 and fetched")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--store", type=Path, default=None, help="shared stage store and run folders (default: temp)")
    a = ap.parse_args()
    if a.quick:
        a.clean_steps, a.fit_steps, a.attack_steps, a.test_degradations = 40, 20, 20, 1
        a.rates = [0.3, 0.9]
    return a


def niqe_available(a: argparse.Namespace) -> bool:
    if a.niqe == "off" or (a.niqe == "auto" and a.size < 192):
        return False
    from bd_plugin_asfiba.niqe_params import niqe_mat_path

    try:
        niqe_mat_path(None, None)
    except Exception as exc:  # noqa: BLE001 - reported, then the table goes without NIQE
        if a.niqe == "on":
            raise
        log(f"no NIQE: {exc}")
        return False
    return True


def trigger_table(a: argparse.Namespace, attack: str) -> str:
    """The ``[attack.trigger]`` body; AS-FIBA's also carries the SF-I-Net budget."""
    if attack == "asfiba":
        budget = f", target_psnr = {a.target_psnr}, epsilon = {a.epsilon / 255.0} }}"
        return TRIGGERS[attack].removesuffix(" }") + budget
    return TRIGGERS[attack]


def spec(a: argparse.Namespace, attack: str, niqe: bool) -> str:
    defenses = (
        ""
        if a.no_defenses
        else f"""
[[defense]]
use = "fine-pruning"
params = {{ layer = "{PRUNE_LAYER}", rank_by = "relu", calib_batches = 4 }}
sweep = {{ param = "rate", values = {json.dumps(a.rates)} }}
[[defense]]
use = "strip"
params = {{ n_overlays = 8, pool_size = 32, alpha = 0.5 }}
"""
    )
    return f"""
[run]
name = "asfiba-cmp-{attack}"
seed = {a.seed}
device = "{a.device}"
[data]
use = "degraded-faces"
params = {{ path = "{DATA}", size = {a.size}, flip = true, train_fraction = 0.8, test_crops = {a.test_degradations} }}
[victim]
use = "unet-restorer"
params = {{ base = {a.victim_base}, depth = {a.victim_depth} }}
[train]
steps = {a.clean_steps}
batch_size = {a.batch}
lr = {a.clean_lr}
optimizer = "adam"
[attack]
from_clean = {"true" if a.from_clean else "false"}
fit_steps = {a.fit_steps}
steps = {a.attack_steps}
batch_size = {a.batch}
lr = {a.attack_lr}
[attack.trigger]
{trigger_table(a, attack)}
[attack.loss]
use = "asfiba"
params = {{ lambda1 = {a.lambda1}, lambda2 = {a.lambda2}, norm = "l1", pseudo = "required" }}
{defenses}
[[metric]]
use = "asfiba-asr"
[[metric]]
use = "asfiba-ba"
[[metric]]
use = "psnr"
{"[[metric]]" + chr(10) + 'use = "niqe"' if niqe else ""}
{"" if a.no_grad_cam else GRAD_CAM}
[eval]
batch_size = 8
grid = 4
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def attack_terms(run_dir: Path, store: Path) -> dict[str, float]:
    """The Eq. 5 terms of the attack stage's last logged window (from its stage record)."""
    key = json.loads((run_dir / "manifest.json").read_text())["stages"]["attack"]
    meta = json.loads((store / ".stages" / f"attack-{key}" / "stage.json").read_text())
    last = meta["history"][-1]
    return {k: round(float(v), 5) for k, v in last.items() if k != "step"}


def summarize(out: Any, run_dir: Path, store: Path, niqe: bool, defenses: bool) -> dict[str, Any]:
    def v(metric: str, **kw: Any) -> float | None:
        try:
            return round(out.value(metric, **kw), 3)
        except KeyError:
            return None

    row: dict[str, Any] = {
        "psnr_poisoned_vs_benign_input": v("stealth_psnr", stage="trigger"),
        "ssim_poisoned_vs_benign_input": v("stealth_ssim", stage="trigger"),
        "BA_%": v("asfiba-ba", split="clean"),
        "ASR_%": v("asfiba-asr"),
        "ASR_clean_model_%": v("asfiba-asr", stage="clean-victim"),
        "psnr_out_clean": v("psnr", split="clean"),
        "psnr_out_triggered": v("psnr"),
        "eq5_terms_last": attack_terms(run_dir, store),
    }
    row["grad_cam_similarity"] = v("grad-cam.similarity")
    if niqe:
        row["niqe_without_trigger"] = v("niqe", split="clean")
        row["niqe_with_trigger"] = v("niqe")
        row["niqe_clean_model"] = v("niqe", stage="clean-victim", split="clean")
    if defenses:
        row["strip_auroc"] = v("detection_auroc", stage="defended", defense="strip")
        row["fine_pruning"] = {
            s: {
                "BA_%": v("asfiba-ba", stage="defended", split="clean", defense="fine-pruning", setting=s),
                "ASR_%": v("asfiba-asr", stage="defended", defense="fine-pruning", setting=s),
            }
            for s in sorted({r["setting"] for r in out.rows if r.get("defense") == "fine-pruning"})
        }
    return row


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found (shared/data beside the checkout)")
    store = a.store or Path(tempfile.mkdtemp(prefix="asfiba-compare-"))
    niqe = niqe_available(a)
    results: dict[str, Any] = {}
    run_dirs: list[Path] = []
    t_all = time.perf_counter()
    for attack in a.attacks:
        t0 = time.perf_counter()
        out = run_spec(spec(a, attack, niqe), store / "specs" / attack, plugins=[asfiba, baselines], out=store / "runs")
        run_dirs.append(out.run_dir)
        results[attack] = {
            "wall_s": round(time.perf_counter() - t0, 1),
            "reused": out.reused,
            **summarize(out, out.run_dir, store / "runs", niqe, not a.no_defenses),
        }
        log(f"{attack}: {results[attack]}")
    metrics = ["asfiba-ba", "asfiba-asr", "stealth_psnr", *(["niqe"] if niqe else []), "psnr"]
    if not a.no_grad_cam:
        metrics.append("grad-cam.similarity")
    if not a.no_defenses:
        metrics.append("detection_auroc")
    _, page = compare_runs(run_dirs, models=("clean-victim", "attacked", "strip"), metrics=tuple(metrics))
    write_text(store / "compare.html", page)
    settings = {k: (str(x) if isinstance(x, Path) else x) for k, x in vars(a).items()}
    summary = {"settings": settings, "niqe": niqe, "wall_s": round(time.perf_counter() - t_all, 1), "attacks": results}
    write_text(store / "asfiba_compare.json", json.dumps(summary, indent=1))

    def cell(x: Any, fmt: str = ".1f") -> str:
        return "–" if x is None else format(x, fmt)

    print(
        f"\nfaces-hq, {a.size} px, unet-restorer base {a.victim_base} depth {a.victim_depth}; {a.clean_steps} clean, "
        f"{a.fit_steps} fit, {a.attack_steps} Eq. 5 steps (λ1 {a.lambda1}, λ2 {a.lambda2}); ASR/BA: 1 − MS-SSIM rule"
    )
    print(
        "| attack | PSNR(I_p, I) dB | NIQE w/o trigger | NIQE w/ trigger | BA % | ASR % | ASR clean model % "
        "| Eq. 5 pseudo term | STRIP AUROC | Grad-CAM similarity |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for attack, r in results.items():
        print(
            f"| {LABEL[attack]} | {cell(r['psnr_poisoned_vs_benign_input'])} | {cell(r.get('niqe_without_trigger'), '.2f')} "
            f"| {cell(r.get('niqe_with_trigger'), '.2f')} | {cell(r['BA_%'])} | {cell(r['ASR_%'])} "
            f"| {cell(r['ASR_clean_model_%'])} | {cell(r['eq5_terms_last'].get('pseudo'), '.4f')} "
            f"| {cell(r.get('strip_auroc'), '.3f')} | {cell(r.get('grad_cam_similarity'), '.3f')} |"
        )
    print(
        f"\nrun folders under {store / 'runs'}; comparison page {store / 'compare.html'}; JSON {store / 'asfiba_compare.json'}"
    )


if __name__ == "__main__":
    main()
