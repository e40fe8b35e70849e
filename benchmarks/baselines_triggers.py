"""Batched bdcore triggers vs per-image loops in the style of the official code (CPU).

    PYTHONPATH=src:plugins/bd-plugin-baselines/src python benchmarks/baselines_triggers.py [--threads 1]

256×256 RGB, batch 64, float32. Reference loops: FTrojan = BackdoorBench ``ftrojann.py``
(cv2 YCrCb + per-block ``cv2.dct``/``cv2.idct``), FIBA = ``Fourier_pattern`` per image (numpy FFT in
place of cupy), SIG/Blended/BadNets = BackdoorBench-style per-image numpy, WaNet = per-image
``grid_sample`` (BackdoorBench's per-image transform). Prints images/s and the speed-up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from bd_plugin_baselines import params_triggers as P
from bd_plugin_baselines.triggers import FIBA, SIG, BadNets, Blended, FTrojan, WaNet

from bdcore.context import Context


def ref_ftrojan(img_u8: np.ndarray, magnitude=30.0, pos=((15, 15), (31, 31)), window=32) -> np.ndarray:
    import cv2

    x = cv2.cvtColor(img_u8, cv2.COLOR_RGB2YCrCb).astype(np.float64).transpose(2, 0, 1)
    h, w = x.shape[1:]
    for ch in (1, 2):
        for i in range(0, h, window):
            for j in range(0, w, window):
                blk = cv2.dct(x[ch][i : i + window, j : j + window])
                for u, v in pos:
                    blk[u, v] += magnitude
                x[ch][i : i + window, j : j + window] = cv2.idct(blk)
    return cv2.cvtColor(x.transpose(1, 2, 0).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def ref_fiba(img: np.ndarray, trg: np.ndarray, alpha=0.15, beta=0.1) -> np.ndarray:
    fft_trg = np.fft.fft2(trg, axes=(-2, -1))
    amp_trg = np.fft.fftshift(np.abs(fft_trg), axes=(-2, -1))
    fft_src = np.fft.fft2(img, axes=(-2, -1))
    amp, pha = np.abs(fft_src), np.angle(fft_src)
    amp = np.fft.fftshift(amp, axes=(-2, -1))
    _, h, w = img.shape
    b = int(np.floor(min(h, w) * beta))
    ch, cw = h // 2, w // 2
    amp[:, ch - b : ch + b + 1, cw - b : cw + b + 1] = (
        amp[:, ch - b : ch + b + 1, cw - b : cw + b + 1] * (1 - alpha)
        + amp_trg[:, ch - b : ch + b + 1, cw - b : cw + b + 1] * alpha
    )
    amp = np.fft.ifftshift(amp, axes=(-2, -1))
    return np.clip(np.real(np.fft.ifft2(amp * np.exp(1j * pha), axes=(-2, -1))), 0, 255)


def ref_sig(img_u8: np.ndarray, delta=20.0, f=6.0) -> np.ndarray:
    _h, w, _c = img_u8.shape
    pattern = np.zeros_like(img_u8, dtype=np.float64)
    for j in range(w):  # BackdoorBench builds the signal column by column
        pattern[:, j] = delta * np.sin(2 * np.pi * j * f / w)
    return np.uint8(np.clip(img_u8.astype(np.float64) + pattern, 0, 255))


def ref_blended(img_u8: np.ndarray, pattern: np.ndarray, alpha=0.2) -> np.ndarray:
    return np.uint8(np.clip((1 - alpha) * img_u8.astype(np.float64) + alpha * pattern, 0, 255))


def ref_badnets(img_u8: np.ndarray, trigger: np.ndarray) -> np.ndarray:
    out = img_u8.copy()
    mask = trigger > 0
    out[mask] = trigger[mask]
    return out


def ref_wanet(img: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(img[None], grid, align_corners=True).clamp(0, 1)[0]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:  # pragma: no cover
        pass
    n, s = args.batch, args.size
    x = torch.rand(n, 3, s, s, generator=torch.Generator().manual_seed(0))
    x = torch.round(x * 255) / 255
    u8 = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy().copy()
    ctx = Context(seed=0)

    ftro = FTrojan(P.FTrojanParams(), ctx)
    fiba_t = FIBA(P.FIBAParams(), ctx)
    trg = fiba_t.trigger_for(x)[0].double().numpy() * 255
    sig_t = SIG(P.SigParams(), ctx)
    blend_t = Blended(P.BlendedParams(seed=0), ctx)
    pat = blend_t.pattern_for(x)[0].permute(1, 2, 0).double().numpy() * 255
    bad_t = BadNets(P.BadNetsParams(), ctx)
    trig_img = (bad_t.inject_trigger(torch.zeros(1, 3, s, s))[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    wan_t = WaNet(P.WaNetParams(seed=0), ctx)
    from bd_plugin_baselines.triggers.wanet import wanet_grid

    grid = wanet_grid(wan_t.field, s, s, s=0.5)

    cases = {
        "ftrojan": (lambda: ftro.inject_trigger(x), lambda: [ref_ftrojan(im) for im in u8]),
        "fiba": (
            lambda: fiba_t.inject_trigger(x),
            lambda: [ref_fiba(im.transpose(2, 0, 1).astype(np.float64), trg) for im in u8],
        ),
        "sig": (lambda: sig_t.inject_trigger(x), lambda: [ref_sig(im) for im in u8]),
        "wanet": (lambda: wan_t.inject_trigger(x), lambda: [ref_wanet(im, grid) for im in x]),
        "badnets": (lambda: bad_t.inject_trigger(x), lambda: [ref_badnets(im, trig_img) for im in u8]),
        "blended": (lambda: blend_t.inject_trigger(x), lambda: [ref_blended(im, pat) for im in u8]),
    }
    # The physical floor of an image-to-image trigger: one read of the batch and one write of a
    # fresh output (an out-of-place add of a fixed pattern).
    pattern = torch.rand(1, 3, s, s)
    floor = best_of(lambda: torch.add(x, pattern), args.repeats)
    print(f"CPU, {args.threads} thread(s), batch {n}, {s}×{s}, float32; best of {args.repeats}")
    print(f"memory floor (out-of-place add): {n / floor:.1f} img/s")
    print(f"{'trigger':<9} {'bdcore img/s':>13} {'per-image img/s':>16} {'speed-up':>9} {'time/floor':>11}")
    for name, (batched, loop) in cases.items():
        batched()  # warm-up (caches, allocator)
        tb = best_of(batched, args.repeats)
        tl = best_of(loop, max(1, args.repeats - 1))
        print(f"{name:<9} {n / tb:>13.1f} {n / tl:>16.1f} {tl / tb:>8.1f}× {tb / floor:>10.2f}×")


if __name__ == "__main__":
    main()
