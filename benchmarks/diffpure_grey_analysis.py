"""Fig. 2 of Lim, Hong & Lee, measured: what grey conversion (and DDNM colorization) does to a PGD perturbation,
on grey faces (Olivetti, replicated to RGB) and on colour faces (CUFS photos as identities, ``face-views``),
under PGD at our budget (ε 4/255, α 1/255, 10 steps) and at the paper's (ε 0.5/255, α 2/255, 40 steps).

For the adversarial perturbation δ = x_adv − x on the evaluated test faces (32×32):
* energy: RMS per channel (×255); the share of ‖δ‖² in its grey part P_c δ (channel mean, replicated: what a
  grey conversion keeps and colorization's range space fixes) and in the cross-channel rest (I − P_c) δ (what
  grey conversion removes); the same for stage 1's range space P_s δ (per-channel 2×2 block means) and for
  both, P_c P_s δ (what survives an ideal two-stage that regenerates every null-space component from clean
  content).
* accuracy (top-1, %): clean and adversarial; after grey conversion only (Fig. 2(a): A⁺A x, the grey image
  replicated); after "oracle colorization" (grey of the input + the clean image's own chroma, i.e. x + P_c δ:
  the best any colorizer can do); after DDNM colorization (Fig. 2(b)); after DDNM SR (s = 2) and two-stage.

Victim: facenet-small (cosine head, low-resolution augmentation 0.5, on colour faces optionally random greyscale
``--colour-grey-prob``, 800 steps); prior: the small DDPM of
``diffpure_common`` fitted on each set's training faces (t ≤ 400); DDNM η 0.85, σ_y 0, t* 300 on a 50-step grid.
Prints and (``--out``) writes one JSON object, the command first.

Run: HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/diffpure_grey_analysis.py --out plugins/bd-plugin-diffpure/results/grey-analysis.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from diffpure_common import CACHE, DDPM_PARAMS, SEED, load_colour_faces, load_faces, train_facenet

BUDGETS = {"ours": (4.0, 1.0, 10), "paper": (0.5, 2.0, 40)}  # ε, α (in 1/255), iterations


def grey_projection(x: torch.Tensor) -> torch.Tensor:
    """P_c: the channel mean replicated to every channel (colorization's A⁺A)."""
    return x.mean(1, keepdim=True).expand_as(x)


def block_projection(x: torch.Tensor, s: int = 2) -> torch.Tensor:
    """P_s: per-channel s×s block means replicated (SR's A⁺A for average-pooling A)."""
    return torch.nn.functional.avg_pool2d(x, s).repeat_interleave(s, 2).repeat_interleave(s, 3)


def energy(delta: torch.Tensor) -> dict[str, float]:
    total = float(delta.pow(2).sum())
    grey = grey_projection(delta)
    both = grey_projection(block_projection(delta))
    return {
        "rms_x255": round(float(delta.pow(2).mean().sqrt()) * 255, 4),
        "rms_per_channel_x255": [round(float(c.pow(2).mean().sqrt()) * 255, 4) for c in delta.unbind(1)],
        "share_grey_part": round(float(grey.pow(2).sum()) / total, 4),
        "share_cross_channel_part": round(float((delta - grey).pow(2).sum()) / total, 4),
        "share_sr_range_part": round(float(block_projection(delta).pow(2).sum()) / total, 4),
        "share_two_stage_range_part": round(float(both.pow(2).sum()) / total, 4),
        "channel_correlation": round(float(torch.corrcoef(delta.transpose(0, 1).reshape(3, -1)).triu(1).sum() / 3), 4),
    }


def analyse_set(name: str, a: argparse.Namespace) -> dict:
    """Victim, prior, clean and adversarial accuracies and perturbation energies for one face set."""
    from bd_plugin_diffpure import purify as P
    from bd_plugin_diffpure.model import eps_fn, fit_or_load_ddpm
    from bd_plugin_diffpure.pgd import pgd
    from bd_plugin_diffpure.schedule import alphas_cumprod

    acp = alphas_cumprod(1000).float()
    kw = dict(steps=a.steps, eta=0.85, sigma_y=0.0, t_start=a.t_start, batch_size=128)
    t_set = time.time()
    xtr, ytr, xte, yte = load_faces() if name == "grey" else load_colour_faces()
    pick = torch.randperm(len(xte), generator=torch.Generator().manual_seed(SEED))[: a.eval_limit].sort().values
    xte, yte = xte[pick], yte[pick]
    t0 = time.time()
    net = train_facenet(xtr, ytr, tag=name, grey_prob=a.colour_grey_prob if name == "colour" else 0.0)
    victim_s = time.time() - t0
    t0 = time.time()
    unet = fit_or_load_ddpm(xtr, DDPM_PARAMS, CACHE, log=print)
    ddpm_s = time.time() - t0
    eps = eps_fn(unet)

    def acc(x: torch.Tensor) -> float:
        with torch.no_grad():
            return round(100 * float((net(x).argmax(1) == yte).float().mean()), 2)

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(1234)

    purifiers = {
        "ddnm_colorize": lambda v: P.purify_colorize(v, eps, acp, generator=gen(), **kw),
        "ddnm_sr": lambda v: P.purify_sr(v, a.scale, eps, acp, generator=gen(), **kw),
        "two_stage": lambda v: P.purify_two_stage(v, a.scale, eps, acp, generator=gen(), **kw),
    }
    out: dict = {
        "train_faces": len(xtr),
        "identities": int(ytr.max()) + 1,
        "test_faces_evaluated": len(xte),
        "chroma_rms_x255_of_clean_faces": round(float((xte - grey_projection(xte)).pow(2).mean().sqrt()) * 255, 3),
        "victim_train_s": round(victim_s, 1),
        "ddpm_fit_or_load_s": round(ddpm_s, 1),
    }
    clean = {"none": acc(xte), "grey_conversion": acc(grey_projection(xte))}
    seconds: dict[str, float] = {}
    with torch.no_grad():
        for p_name, fn in purifiers.items():
            t0 = time.time()
            clean[p_name] = acc(fn(xte))
            seconds[p_name] = round((time.time() - t0) / len(xte), 4)
    out["clean_accuracy"] = clean
    out["purify_s_per_image"] = seconds
    print(name, "clean", clean, flush=True)
    for budget, (e, al, it) in BUDGETS.items():
        t0 = time.time()
        adv = pgd(net, xte, yte, eps=e / 255, alpha=al / 255, steps=it)
        pgd_s = (time.time() - t0) / len(xte)
        delta = adv - xte
        row: dict = {"eps_x255": e, "alpha_x255": al, "iters": it, "pgd_s_per_image": round(pgd_s, 4)}
        row["perturbation"] = energy(delta)
        accs = {
            "none": acc(adv),
            "grey_conversion": acc(grey_projection(adv)),
            "oracle_colorization": acc((xte + grey_projection(delta)).clamp(0, 1)),
        }
        with torch.no_grad():
            for p_name, fn in purifiers.items():
                accs[p_name] = acc(fn(adv))
        row["adversarial_accuracy"] = accs
        out[f"pgd_{budget}"] = row
        print(name, budget, json.dumps(row), flush=True)
    out["set_s"] = round(time.time() - t_set, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["grey", "colour"], choices=["grey", "colour"])
    ap.add_argument("--eval-limit", type=int, default=120, help="test faces evaluated per set (seeded subset)")
    ap.add_argument("--t-start", type=int, default=300)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument(
        "--colour-grey-prob",
        type=float,
        default=0.0,
        help="random-greyscale augmentation of the colour-face victim (facenet-small grey_prob); the grey faces "
        "are grey already",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res: dict = {
        "command": "python benchmarks/diffpure_grey_analysis.py " + " ".join(sys.argv[1:]),
        "machine": f"CPU, {a.threads} thread(s), shared with other jobs (timings indicative only)",
        "settings": vars(a),
    }
    for name in a.sets:
        res[name] = analyse_set(name, a)
        if a.out:  # after every set: a long run keeps what it finished
            with open(a.out, "w") as fh:
                fh.write(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
