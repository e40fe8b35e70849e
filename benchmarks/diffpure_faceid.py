"""Face identification under PGD, purified by DDNM (Tables I/II of Lim, Hong & Lee) on the Olivetti/ORL faces.

Setting: 40 identities, 7 train / 3 test faces each (seeded per identity), 32×32, grey replicated to RGB.
Victim: facenet-small trained with CE. Attack: L∞ PGD against the bare victim (the attacker does not know the
purifier, as in the paper). Purifier: the small DDPM of diffpure_fit_ddpm.py, DDNM η = 0.85, σ_y = 0,
purification-style start t* (see --t-start) on a `--steps` grid.

Run: HF_HUB_OFFLINE=1 nice -n 10 .bdenv/base/bin/python benchmarks/diffpure_faceid.py [--eps 4 --alpha 1 --iters 10]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from diffpure_common import get_ddpm, load_faces, train_facenet


def acc(net, x, y):
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eps", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--t-start", type=int, default=300)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--select", action="store_true", help="also run the scale selection over {2,4,8}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from bd_plugin_diffpure import purify as P
    from bd_plugin_diffpure.model import eps_fn
    from bd_plugin_diffpure.pgd import pgd
    from bd_plugin_diffpure.schedule import alphas_cumprod

    xtr, ytr, xte, yte = load_faces()
    net = train_facenet(xtr, ytr, lowres_prob=0.0, tag="faceid")  # the plain victim: no low-res augmentation
    res: dict[str, float] = {"clean": acc(net, xte, yte)}
    print(f"clean accuracy {res['clean']:.4f} on {len(xte)} test faces")
    for e, al, it in [(0.5, 2.0, 40), (2.0, 0.5, 10), (4.0, 1.0, 10), (8.0, 2.0, 10)]:
        adv = pgd(net, xte, yte, eps=e / 255, alpha=al / 255, steps=it)
        res[f"pgd_eps{e}_alpha{al}_it{it}"] = acc(net, adv, yte)
        print(f"PGD eps {e}/255 alpha {al}/255 iters {it}: {res[f'pgd_eps{e}_alpha{al}_it{it}']:.4f}")
    adv = pgd(net, xte, yte, eps=a.eps / 255, alpha=a.alpha / 255, steps=a.iters)
    res["adv"] = acc(net, adv, yte)

    unet = get_ddpm()
    eps = eps_fn(unet)
    acp = alphas_cumprod(1000).float()
    kw = dict(steps=a.steps, eta=0.85, sigma_y=0.0, t_start=a.t_start, batch_size=128)

    def gen():
        return torch.Generator().manual_seed(1234)

    stages = {
        "sr": lambda v: P.purify_sr(v, a.scale, eps, acp, generator=gen(), **kw),
        "colorize": lambda v: P.purify_colorize(v, eps, acp, generator=gen(), **kw),
        "two_stage": lambda v: P.purify_two_stage(v, a.scale, eps, acp, generator=gen(), **kw),
    }
    with torch.no_grad():
        for name, fn in stages.items():
            t0 = time.time()
            pc = fn(xte)
            dt = time.time() - t0
            pa = fn(adv)
            res[f"{name}_clean"] = acc(net, pc, yte)
            res[f"{name}_adv"] = acc(net, pa, yte)
            res[f"{name}_images_per_s"] = len(xte) / dt
            print(
                f"{name:10s} purified clean {res[f'{name}_clean']:.4f}  purified adv {res[f'{name}_adv']:.4f}  "
                f"({len(xte) / dt:.1f} images/s, {a.threads} threads)"
            )
        if a.select:
            sel, table = P.select_scale(
                net,
                xtr[:80],
                ytr[:80],
                pgd(net, xtr[:80], ytr[:80], eps=a.eps / 255, alpha=a.alpha / 255, steps=a.iters),
                lambda v, s: P.purify_sr(v, s, eps, acp, generator=gen(), **kw),
                (2, 4, 8),
                0.03,
            )
            res["selected_scale"] = sel
            print("scale selection on 80 training faces:", table, "->", sel)
    res.update(vars(a))
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
