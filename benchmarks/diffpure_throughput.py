"""Purification throughput of the DDNM defenses (images/s), batched vs one image at a time.

The reference is how DDNM's own scripts purify: one image per sampler run (their configs default to a
batch of 1 for restoration). bdcore purifies a whole batch per model call. Throughput does not depend on
the prior's weights, so the benchmark times the ≈1 M-parameter UNet2DModel of the fit stage (widths
(32, 64, 64)) at its initialisation — or a trained prior given with --ddpm (a diffusers folder).

Setting: 32×32 RGB faces (random here: the sampler's cost is content-independent), t* = 300 on a 50-step
grid (15 model calls per stage), η = 0.85, σ_y = 0, scale 2.

Run: HF_HUB_OFFLINE=1 .bdenv/all/bin/python benchmarks/diffpure_throughput.py [--n 64 --threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="images per measurement")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ddpm", type=Path, default=None, help="a trained diffusers UNet folder (optional)")
    ap.add_argument("--reference-n", type=int, default=8, help="images for the one-at-a-time reference")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from bd_plugin_diffpure import purify as P
    from bd_plugin_diffpure.model import eps_fn, load_unet, small_unet
    from bd_plugin_diffpure.schedule import alphas_cumprod

    torch.manual_seed(0)
    unet = (load_unet(a.ddpm) if a.ddpm else small_unet(a.size)).to(a.device).eval()
    eps = eps_fn(unet)
    acp = alphas_cumprod(1000).to(a.device, torch.float32)
    x = torch.rand(a.n, 3, a.size, a.size, generator=torch.Generator().manual_seed(0)).to(a.device)
    kw = dict(steps=50, eta=0.85, sigma_y=0.0, t_start=300)
    stages = {
        "sr": lambda v, bs: P.purify_sr(
            v, 2, eps, acp, generator=torch.Generator().manual_seed(1), batch_size=bs, **kw
        ),
        "colorize": lambda v, bs: P.purify_colorize(
            v, eps, acp, generator=torch.Generator().manual_seed(1), batch_size=bs, **kw
        ),
        "two_stage": lambda v, bs: P.purify_two_stage(
            v, 2, eps, acp, generator=torch.Generator().manual_seed(1), batch_size=bs, **kw
        ),
    }

    def rate(fn, v: torch.Tensor, bs: int) -> float:
        fn(v[:1], 1)  # warm-up
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(v, bs)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return len(v) / (time.perf_counter() - t0)

    res: dict[str, float | str] = {
        "device": a.device,
        "threads": a.threads,
        "params": sum(p.numel() for p in unet.parameters()),
    }
    with torch.no_grad():
        for name, fn in stages.items():
            batched = rate(fn, x, a.n)
            single = rate(fn, x[: a.reference_n], 1)
            res[f"{name}_images_per_s"] = batched
            res[f"{name}_one_at_a_time_images_per_s"] = single
            res[f"{name}_speedup"] = batched / single
            print(
                f"{name:10s} batched {batched:8.1f} img/s   one at a time {single:7.1f} img/s   ×{batched / single:.1f}"
            )
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
