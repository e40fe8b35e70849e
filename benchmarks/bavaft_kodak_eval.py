"""Kodak real-bitstream evaluation: bd-plugin-bavaft's batched ``predict`` vs CompressAI's own
``compressai.utils.eval_model`` on the same codec.

Both sides read the 24 PNGs, pad to a multiple of 64, entropy-code (``compress``/``decompress``), and
compute real BPP from the byte strings plus PSNR and MS-SSIM of the decoded image. The reference is
CompressAI's evaluation loop (one image at a time, its own metrics); bdcore codes ``coding_batch`` images
per call, grouped by shape (Kodak has landscape and portrait images), and also reports the likelihood
bpp (the entropy-model part of a forward pass on the latents ``compress`` computed) — the "estimated vs
real" columns.

The codec is initialised, not trained (timing does not depend on training; the BPP of an untrained
codec is meaningless, so the script only checks both sides agree on it). ``--checkpoint`` times a
trained one instead.

Run: HF_HUB_OFFLINE=1 .bdenv/all/bin/python benchmarks/bavaft_kodak_eval.py [--model bmshj2018-hyperprior --quality 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

KODAK = (Path(__file__).resolve().parents[1] / "../shared/data/kodak").resolve()


def bdcore_eval(victim, files: list[Path]) -> dict[str, float]:
    from bdcore.data.images import read_image, to_tensor
    from bdcore.metrics.image import ms_ssim, psnr

    groups: dict[tuple[int, ...], list[torch.Tensor]] = defaultdict(list)
    for f in files:
        x = to_tensor(read_image(f, channels=3))
        groups[tuple(x.shape)].append(x)
    sums: dict[str, float] = defaultdict(float)
    for imgs in groups.values():
        x = torch.stack(imgs)
        out = victim.predict(x)
        y = (out["output"] * 255).round() / 255  # CompressAI measures 8-bit-quantised decodes too
        sums["psnr-rgb"] += float(psnr(y, x).sum())
        sums["ms-ssim-rgb"] += float(ms_ssim(y, x).sum())
        sums["bpp"] += float(out["bpp"].sum())
        sums["bpp_est"] += float(out["bpp_est"].sum())
    return {k: v / len(files) for k, v in sums.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bmshj2018-hyperprior")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--coding-batch", type=int, default=8, help="images per compress call (bdcore side)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from bd_plugin_bavaft.codec import CompressAIVictim
    from bd_plugin_bavaft.params import CodecParams
    from compressai.utils.eval_model.__main__ import eval_model

    files = sorted(KODAK.glob("kodim*.png"))[: a.limit]
    victim = CompressAIVictim(CodecParams(model=a.model, quality=a.quality, coding_batch=a.coding_batch))
    if a.checkpoint:
        victim.load_checkpoint(str(a.checkpoint))
    victim.eval()
    victim.ensure_updated()
    net = victim.net  # the very same modules for CompressAI's loop

    t_ref, t_bd = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        ref = eval_model(net, Path("/tmp"), KODAK, files, architecture=a.model, half=False, per_image=False)
        t_ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = bdcore_eval(victim, files)
        t_bd.append(time.perf_counter() - t0)
    r, b = statistics.median(t_ref), statistics.median(t_bd)
    res = {
        "images": len(files),
        "model": f"{a.model} q{a.quality}",
        "compressai_eval_model_s": round(r, 2),
        "bdcore_s": round(b, 2),
        "speedup": round(r / b, 2),
        "bpp_compressai": ref["bpp"],
        "bpp_bdcore": ours["bpp"],
        "psnr_compressai": ref["psnr-rgb"],
        "psnr_bdcore": ours["psnr-rgb"],
        "ms_ssim_compressai": ref["ms-ssim-rgb"],
        "ms_ssim_bdcore": ours["ms-ssim-rgb"],
        "bpp_est_bdcore": ours["bpp_est"],
        "threads": a.threads,
        "coding_batch": a.coding_batch,
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
