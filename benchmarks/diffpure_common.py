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


CUFS = ROOT / "../shared/data/face-sketch/cuhk_student"


def load_colour_faces() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CUFS photos as colour identities (bd-plugin-diffpure's ``face-views``: 188 identities × 10 seeded views,
    7 train / 3 test views each, 32×32 RGB): (train images, train labels, test images, test labels)."""
    from bd_plugin_diffpure.faces import FaceViews
    from bd_plugin_diffpure.params import FaceViewsParams

    from bdcore.context import Context

    params = FaceViewsParams(path=CUFS.resolve(), pattern="*_photo/*", size=SIZE, views=10, train_fraction=0.7)
    splits = FaceViews(params, Context(seed=SEED)).splits()

    def stack(ds) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
        items = [ds[i] for i in range(len(ds))]
        return torch.stack([s["input"] for s in items]), torch.tensor([s["target"] for s in items])

    return (*stack(splits["train"]), *stack(splits["test"]))


def train_facenet(xtr, ytr, *, steps=800, lowres_prob=0.5, grey_prob=0.0, tag="orl", log=print):  # noqa: ANN001, ANN201
    """facenet-small (cosine head) on ``xtr`` with flips, ±2 px shifts, the low-resolution augmentation of the
    ORL spec (``lowres_prob``) and random greyscale (``grey_prob``); Adam + one-cycle, batch 32; cached under
    ``CACHE`` by ``tag`` and settings."""
    import torch.nn.functional as F
    from bd_plugin_diffpure.facenet import FaceNetSmall
    from bd_plugin_diffpure.params import FaceNetParams

    n_cls = int(ytr.max()) + 1
    grey = f"-g{grey_prob:g}" if grey_prob else ""
    path = CACHE / f"facenet-small-{tag}-c{n_cls}-s{SEED}-{steps}-lr{lowres_prob:g}{grey}.pt"
    torch.manual_seed(SEED)
    net = FaceNetSmall(FaceNetParams(num_classes=n_cls, lowres_prob=lowres_prob, grey_prob=grey_prob))
    if path.is_file():
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(SEED)
    t0 = time.time()
    net.train()
    for step in range(steps):
        idx = torch.randint(0, len(xtr), (32,), generator=g)
        x = xtr[idx]
        flip = torch.rand(32, generator=g) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
        x = torch.roll(F.pad(x, (2, 2, 2, 2), mode="replicate"), shifts=(dy, dx), dims=(2, 3))[..., 2:-2, 2:-2]
        loss = net.clean_loss({"input": x, "target": ytr[idx]})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0:
            log(f"victim {tag} step {step} loss {loss.item():.3f} ({time.time() - t0:.0f}s)")
    net.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net
