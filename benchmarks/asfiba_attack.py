"""AS-FIBA on the small U-Net restorer, on held-out real faces (shared/data/faces-hq), CPU.

Steps: clean victim (L1) → SF-I-Net fit (Eq. 3) → backdoor training from the clean victim (Eq. 5, pseudo
triggers) → ASR/BA (rule of §IV-A, distance 1 − MS-SSIM) on the held-out faces, PSNR(I_p, I) and the
SF-I-Net parameter counts / training images/s. Usage:

    PYTHONPATH=src:plugins/bd-plugin-asfiba/src python benchmarks/asfiba_attack.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from bd_plugin_asfiba.attack import ASFIBA
from bd_plugin_asfiba.data import DegradedFaces
from bd_plugin_asfiba.metrics import restored
from bd_plugin_asfiba.params import ASFIBAParams, DegradedFacesParams, SFINetParams, UNetRestorerParams
from bd_plugin_asfiba.sfinet import build_sfinet, count_parameters
from bd_plugin_asfiba.trigger import SFINetTrigger
from bd_plugin_asfiba.victims import UNetRestorer

from bdcore.context import Context, derive_seed
from bdcore.data.loading import endless_batches, eval_batches
from bdcore.metrics.image import ms_ssim, psnr

QUICK = "--quick" in sys.argv
DATA = Path(__file__).resolve().parents[1] / "../shared/data/faces-hq"
SIZE, BS = 64, 8
STEPS_CLEAN, STEPS_FIT, STEPS_ATTACK = (60, 40, 60) if QUICK else (1500, 600, 1500)


class _Fit:  # the parts of bdcore.context.FitContext that SFINetTrigger.fit uses
    def __init__(self, ctx: Context, train_set, steps: int) -> None:
        self.ctx, self.train_set, self.steps, self.batch_size = ctx, train_set, steps, BS

    def batches(self, *, generator_salt: object = "fit", shuffle: bool = True):
        return endless_batches(self.train_set, BS, seed=derive_seed(self.ctx.seed, "fit", generator_salt))


def train(model, loss_fn, batches, steps: int, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(next(batches))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return time.perf_counter() - t0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ctx = Context(seed=0)
    src = DegradedFaces(
        DegradedFacesParams(path=DATA, size=SIZE, crop=SIZE, flip=True, train_fraction=0.8, test_crops=1), ctx
    )
    splits = src.splits()
    train_set, test_set = splits["train"], splits["test"]
    out: dict[str, object] = {
        "train_faces": len(train_set.inner.loaders),
        "test_faces": len(test_set.inner.loaders),
        "size": SIZE,
    }
    for preset in ("small", "paper"):
        g, d = build_sfinet(preset, 4 / 255)
        out[f"sfinet_{preset}_params"] = count_parameters(g)
        out[f"decoder_{preset}_params"] = count_parameters(d)

    log("data ready")
    victim = UNetRestorer(UNetRestorerParams(base=16, depth=2))
    t = train(victim, victim.clean_loss, endless_batches(train_set, BS, seed=1), STEPS_CLEAN, 2e-3)
    out["clean_train_s"] = round(t, 1)
    clean = UNetRestorer(UNetRestorerParams(base=16, depth=2))
    clean.load_state_dict(victim.state_dict())
    clean.eval()

    log("clean victim trained")
    trig = SFINetTrigger(SFINetParams(preset="small", steps=STEPS_FIT), Context(seed=0, component="trigger:sf-i-net"))
    trig.fit(_Fit(ctx, train_set, STEPS_FIT))  # type: ignore[arg-type]
    out["sfinet_fit"] = trig.fit_stats

    log("sf-i-net fitted")
    attack = ASFIBA(ASFIBAParams(), Context(seed=0, trigger=trig, component="attack:asfiba"))

    def attack_loss(batch):
        with torch.no_grad():
            poisoned = attack.poison(batch, trig)
        return attack.attack_loss(victim, batch, poisoned)

    t = train(victim, attack_loss, endless_batches(train_set, BS, seed=2), STEPS_ATTACK, 5e-4)
    out["attack_train_s"] = round(t, 1)

    log("attacked")
    dist = lambda a, b: 1.0 - ms_ssim(a.clamp(0, 1), b.clamp(0, 1))  # noqa: E731
    ba, asr, asr_clean_model, pseudo_ok, ps, n = 0, 0, 0, 0, [], 0
    with torch.no_grad():
        for batch in eval_batches(test_set, 16):
            x = batch["input"]
            xp = trig.inject_trigger(x)
            hq = clean(x)
            ba += int(restored(victim(x), hq, x, dist).sum())
            asr += int((~restored(victim(xp), hq, x, dist)).sum())
            asr_clean_model += int((~restored(clean(xp), hq, x, dist)).sum())
            pseudo_ok += int(
                restored(victim(trig.pseudo_poison(x, torch.Generator().manual_seed(0))), hq, x, dist).sum()
            )
            ps.append(psnr(xp, x))
            n += x.shape[0]
    ps_all = torch.cat(ps)
    out.update(
        {
            "BA_%": 100 * ba / n,
            "ASR_%": 100 * asr / n,
            "ASR_clean_model_%": 100 * asr_clean_model / n,
            "pseudo_trigger_restored_%": 100 * pseudo_ok / n,
            "psnr_poisoned_vs_lq_mean": float(ps_all.mean()),
            "psnr_poisoned_vs_lq_min": float(ps_all.min()),
            "n_test": n,
            "distance": "1 - MS-SSIM",
            "steps": [STEPS_CLEAN, STEPS_FIT, STEPS_ATTACK],
        }
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
