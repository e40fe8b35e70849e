"""Shared setup of the diffpure benchmarks: Olivetti faces at 32×32 (grey replicated to RGB), a seeded
7/3 per-identity split, the cached small DDPM and the facenet-small victim."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "plugins/bd-plugin-diffpure/src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = ROOT / "../shared/data/faces-id/olivetti/olivettifaces.mat"
CACHE = ROOT / "benchmarks/.cache/diffpure"
SIZE = 32
SEED = 0


def load_faces() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images N×3×32×32 [0,1], train labels, test images, test labels)."""
    import torch.nn.functional as F
    from bd_plugin_diffpure.faces import load_olivetti_mat, stratified_split

    imgs, labels = load_olivetti_mat(DATA.resolve())
    x = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
    x = F.interpolate(x, size=(SIZE, SIZE), mode="area").repeat(1, 3, 1, 1)
    y = torch.from_numpy(labels).long()
    tr, te = stratified_split(labels, 0.7, SEED)
    return x[tr], y[tr], x[te], y[te]


DDPM_PARAMS = {"steps": 800, "batch_size": 16, "lr": 2e-3, "widths": (32, 64, 64), "t_max": 400, "seed": SEED}


def get_ddpm(log=print):
    from bd_plugin_diffpure.model import fit_or_load_ddpm

    xtr, _, _, _ = load_faces()
    t0 = time.time()
    unet = fit_or_load_ddpm(xtr, DDPM_PARAMS, CACHE, log=log)
    log(f"ddpm ready in {time.time() - t0:.0f}s")
    return unet
