"""AS-FIBA on the small U-Net restorer, on held-out real faces (shared/data/faces-hq), CPU, 1 thread.

Steps: clean victim (L1) → SF-I-Net fit (Eq. 3, hinged image term + channel noise) → backdoor training from
the clean victim (Eq. 5, pseudo triggers) → on the held-out faces (each with ``--test-degradations`` seeded
BFR degradations): ASR/BA (rule of §IV-A, distance 1 − MS-SSIM), the clean model's ASR on triggered inputs,
PSNR(I_p, I), and the Table IV low/high-frequency distances of AS-FIBA and FIBA (baselines ``fiba`` trigger
at its defaults, same trigger image). Prints one JSON object. Usage:

    PYTHONPATH=src:plugins/bd-plugin-asfiba/src:plugins/bd-plugin-baselines/src \\
        python benchmarks/asfiba_attack.py [--quick] [--attack-steps N] ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from bd_plugin_asfiba.attack import ASFIBA, asfiba_loss
from bd_plugin_asfiba.data import DegradedFaces
from bd_plugin_asfiba.degradation import degrade_01
from bd_plugin_asfiba.metrics import amplitude_band_distance, restored
from bd_plugin_asfiba.params import ASFIBAParams, DegradedFacesParams, SFINetParams, UNetRestorerParams
from bd_plugin_asfiba.sfinet import build_sfinet, count_parameters
from bd_plugin_asfiba.trigger import SFINetTrigger
from bd_plugin_asfiba.victims import UNetRestorer
from torch import Tensor

from bdcore.context import Context, derive_seed
from bdcore.data.loading import endless_batches
from bdcore.metrics.image import ms_ssim, psnr

DATA = Path(__file__).resolve().parents[1] / "../shared/data/faces-hq"
SIZE, BS = 64, 8


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run (tiny schedules)")
    ap.add_argument("--clean-steps", type=int, default=1500)
    ap.add_argument("--fit-steps", type=int, default=600)
    ap.add_argument("--attack-steps", type=int, default=3000)
    ap.add_argument("--clean-lr", type=float, default=2e-3)
    ap.add_argument("--attack-lr", type=float, default=5e-4)
    ap.add_argument("--victim-base", type=int, default=16)
    ap.add_argument("--victim-depth", type=int, default=2)
    ap.add_argument("--lambda1", type=float, default=0.75, help="Eq. 5 clean weight (paper 0.75)")
    ap.add_argument("--lambda2", type=float, default=0.125, help="Eq. 5 backdoor weight (paper 0.125)")
    ap.add_argument("--test-degradations", type=int, default=4, help="seeded LQ versions per held-out face")
    ap.add_argument("--eval-every", type=int, default=0, help="log ASR/BA every N attack steps (0: off)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--from-scratch",
        action="store_true",
        help="train the attacked victim with Eq. 5 from a fresh init (not the clean)",
    )
    ap.add_argument(
        "--target-psnr", type=float, default=40.0, help="SF-I-Net visibility target, dB (plugin default 40)"
    )
    ap.add_argument("--epsilon", type=float, default=4.0, help="SF-I-Net l-inf bound, in 1/255 (plugin default 4)")
    ap.add_argument("--cache", type=Path, default=None, help="reuse/save the clean victim and SF-I-Net here")
    ap.add_argument(
        "--reinit",
        action="append",
        default=[],
        metavar="PREFIX",
        help="fine-tuning ablation: re-initialise the clean victim's parameters under this module prefix "
        "(e.g. 'inc', 'downs.0', 'dec', 'out') before Eq. 5 training; repeatable",
    )
    ap.add_argument(
        "--freeze",
        action="append",
        default=[],
        metavar="PREFIX",
        help="fine-tuning ablation: keep the parameters under this module prefix fixed; repeatable",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the attack stage (batches, pseudo triggers)")
    ap.add_argument(
        "--probe",
        action="store_true",
        help="no training: how much of the trigger (vs benign, vs pseudo) reaches each layer of the clean victim, "
        "of fresh initialisations and of --probe-victim state dicts",
    )
    ap.add_argument("--probe-victim", type=Path, action="append", default=[], help="a victim state dict to probe")
    ap.add_argument("--save-victim", type=Path, default=None, help="save the attacked victim's state dict here")
    ap.add_argument(
        "--pool",
        type=int,
        default=0,
        metavar="K",
        help="train Eq. 5 on a fixed pool: every training face with K seeded degradations, triggered and "
        "pseudo-triggered once up front (cached with --cache); 0 = fresh degradations and triggers every step",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here, with the command line first")
    args = ap.parse_args()
    if args.quick:
        args.clean_steps, args.fit_steps, args.attack_steps, args.test_degradations = 60, 40, 60, 1
    return args


class _Fit:  # the parts of bdcore.context.FitContext that SFINetTrigger.fit uses
    def __init__(self, ctx: Context, train_set: Any, steps: int) -> None:
        self.ctx, self.train_set, self.steps, self.batch_size = ctx, train_set, steps, BS

    def batches(self, *, generator_salt: object = "fit", shuffle: bool = True) -> Iterator[dict[str, Tensor]]:  # noqa: ARG002
        return endless_batches(self.train_set, BS, seed=derive_seed(self.ctx.seed, "fit", generator_salt))


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    batches: Iterator[dict[str, Tensor]],
    steps: int,
    lr: float,
    every: int = 0,
    on_eval: Callable[[int], None] | None = None,
) -> float:
    """Adam for ``steps`` steps; returns the training wall time (s), evaluation callbacks excluded."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    spent = 0.0
    for step in range(steps):
        t0 = time.perf_counter()
        loss = loss_fn(next(batches))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        spent += time.perf_counter() - t0
        if every and on_eval is not None and (step + 1) % every == 0:
            model.eval()
            on_eval(step + 1)
            model.train()
    model.eval()
    return spent


def training_pool(train_set: Any, trig: Any, k: int, cache: Path | None, tkey: str) -> dict[str, Tensor]:
    """``--pool k``: every training face with ``k`` seeded degradations (and the split's seeded flips), their
    triggered and pseudo-triggered versions (one pseudo trigger image each, seeded) and I_0.1, computed once.
    A fixed finite training set instead of fresh degradations per step: the trigger network runs once, so a step
    costs the victim's three passes only (for ablations that compare schedules on equal data)."""
    path = None if cache is None else cache / f"pool_k{k}_{tkey}"
    if path is not None and path.is_file():
        return torch.load(path, weights_only=True)  # type: ignore[no-any-return]
    items = [train_set.get(i, 10_000 + s) for s in range(k) for i in range(len(train_set))]
    x = torch.stack([it["input"] for it in items])
    with torch.no_grad():
        xp = torch.cat([trig.inject_trigger(c) for c in x.split(32)])
        gen = torch.Generator().manual_seed(derive_seed(0, "pool-pseudo"))
        xpp = torch.cat([trig.pseudo_poison(c, gen) for c in x.split(32)])
    pool = {
        "input": x,
        "target": torch.stack([it["target"] for it in items]),
        "input_p": xp,
        "input_pp": xpp,
        "target_01": degrade_01(x),
    }
    if path is not None:
        torch.save(pool, path)
    return pool


def pool_batches(pool: dict[str, Tensor], seed: int) -> Iterator[dict[str, Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    n = pool["input"].shape[0]
    while True:
        idx = torch.randint(0, n, (BS,), generator=gen)
        yield {k: v[idx] for k, v in pool.items()}


PROBE_LAYERS = ("inc", "downs.0", "downs.1", "dec.1", "dec.0", "out")


def trigger_probe(net: torch.nn.Module, x: Tensor, xp: Tensor, xq: Tensor) -> dict[str, dict[str, float]]:
    """How much of the trigger reaches each layer of ``net``: for the activations a(·) of every block (and the
    input), ``‖a(I_p) − a(I)‖ / ‖a(I)‖`` (triggered vs benign) and ``‖a(I_p) − a(I'_p)‖ / ‖a(I)‖`` (triggered
    vs pseudo-triggered: what Eq. 5 must tell apart), over the test inputs."""
    acts: dict[str, list[Tensor]] = {}
    mods = dict(net.named_modules())
    handles = [
        mods[name].register_forward_hook(lambda _m, _i, o, name=name: acts.setdefault(name, []).append(o.detach()))
        for name in PROBE_LAYERS
    ]
    with torch.no_grad():
        for batch in (x, xp, xq):
            net(batch)
    for h in handles:
        h.remove()
    rows = {"input": (x, xp, xq), **{name: tuple(acts[name]) for name in PROBE_LAYERS}}
    return {
        name: {
            "trigger_vs_benign": round(float((b - a).norm() / a.norm()), 5),
            "trigger_vs_pseudo": round(float((b - c).norm() / a.norm()), 5),
        }
        for name, (a, b, c) in rows.items()
    }


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def test_inputs(test_set: Any, k: int) -> Tensor:
    """``N·k×3×H×W``: every held-out face with ``k`` seeded degradations (seed None = the split's own)."""
    seeds: list[int | None] = [None, *range(1, k)]
    return torch.stack([test_set.get(i, s)["input"] for s in seeds for i in range(len(test_set))])


def fiba_trigger() -> Any:
    from bd_plugin_baselines.params_triggers import FIBAParams
    from bd_plugin_baselines.triggers.fiba import FIBA

    return FIBA(FIBAParams(), Context(seed=0, component="trigger:fiba"))


def freq_distances(poisoned: Tensor, benign: Tensor) -> dict[str, float]:
    """Table IV distances, two readings: amplitude spectrum (this plugin's ``asfiba-freq-distance``) and
    band-limited pixel difference (bd-plugin-baselines' ``freq-distance``); both MSE on 0–255, β = 0.1."""
    lo, hi = amplitude_band_distance(poisoned, benign)
    out = {"amplitude_low": float(lo.mean()), "amplitude_high": float(hi.mean())}
    try:
        from bd_plugin_baselines.metrics.functional import freq_distance
    except ImportError:
        return out
    lo, hi = freq_distance(poisoned, benign)
    return {**out, "bandpass_low": float(lo.mean()), "bandpass_high": float(hi.mean())}


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    wall0 = time.perf_counter()
    ctx = Context(seed=0)
    src = DegradedFaces(
        DegradedFacesParams(path=DATA, size=SIZE, crop=SIZE, flip=True, train_fraction=0.8, test_crops=1), ctx
    )
    splits = src.splits()
    train_set, test_set = splits["train"], splits["test"]
    x_test = test_inputs(test_set, args.test_degradations)
    out: dict[str, Any] = {
        "train_faces": len(train_set),
        "test_faces": len(test_set),
        "test_degradations_per_face": args.test_degradations,
        "n_test": int(x_test.shape[0]),
        "size": SIZE,
        "batch": BS,
        "threads": args.threads,
        "victim": f"unet-restorer base={args.victim_base} depth={args.victim_depth}",
    }
    for preset in ("small", "paper"):
        g, d = build_sfinet(preset, 4 / 255)
        out[f"sfinet_{preset}_params"] = count_parameters(g)
        out[f"decoder_{preset}_params"] = count_parameters(d)

    log(f"data ready: {out['train_faces']} train faces, {out['n_test']} test inputs")
    vp = UNetRestorerParams(base=args.victim_base, depth=args.victim_depth)
    victim = UNetRestorer(vp)
    out["victim_params"] = count_parameters(victim)
    vkey = f"victim_b{args.victim_base}_d{args.victim_depth}_c{args.clean_steps}_{args.clean_lr:g}.pt"
    tkey = f"sfinet_f{args.fit_steps}.pt"
    if (args.target_psnr, args.epsilon) != (40.0, 4.0):
        tkey = f"sfinet_f{args.fit_steps}_t{args.target_psnr:g}_e{args.epsilon:g}.pt"
    trig = SFINetTrigger(
        SFINetParams(preset="small", steps=args.fit_steps, target_psnr=args.target_psnr, epsilon=args.epsilon / 255.0),
        Context(seed=0, component="trigger:sf-i-net"),
    )
    if args.cache is not None and (args.cache / vkey).is_file():
        state = torch.load(args.cache / vkey, weights_only=True)
        victim.load_state_dict(state["victim"])
        out["clean_train_s"] = float(state["seconds"])
        log(f"loaded the clean victim from {args.cache / vkey}")
    else:
        t = train(victim, victim.clean_loss, endless_batches(train_set, BS, seed=1), args.clean_steps, args.clean_lr)
        out["clean_train_s"] = round(t, 1)
        log(f"clean victim trained ({t:.0f} s)")
        if args.cache is not None:
            args.cache.mkdir(parents=True, exist_ok=True)
            torch.save({"victim": victim.state_dict(), "seconds": t}, args.cache / vkey)
    if args.cache is not None and (args.cache / tkey).is_file():
        state = torch.load(args.cache / tkey, weights_only=True)
        trig.load_state_dict(state["trigger"])
        trig.fit_stats = {k: float(v) for k, v in state["fit_stats"].items()}
        fit_s = float(state["seconds"])
        log(f"loaded SF-I-Net from {args.cache / tkey}")
    else:
        t0 = time.perf_counter()
        trig.fit(_Fit(ctx, train_set, args.fit_steps))  # type: ignore[arg-type]
        fit_s = round(time.perf_counter() - t0, 1)
        if args.cache is not None:
            args.cache.mkdir(parents=True, exist_ok=True)
            state = {"trigger": trig.state_dict(), "fit_stats": trig.fit_stats, "seconds": fit_s}
            torch.save(state, args.cache / tkey)
    victim.eval()
    trig.eval()
    clean = UNetRestorer(vp)
    clean.load_state_dict(victim.state_dict())
    clean.eval()
    out["sfinet_fit"] = {**trig.fit_stats, "seconds": fit_s}
    log(f"sf-i-net fitted: {trig.fit_stats}")

    dist = lambda a, b: 1.0 - ms_ssim(a.clamp(0, 1), b.clamp(0, 1))  # noqa: E731
    with torch.no_grad():
        xp_test = torch.cat([trig.inject_trigger(x) for x in x_test.split(32)])
        xq_test = torch.cat(
            [trig.pseudo_poison(x, torch.Generator().manual_seed(i)) for i, x in enumerate(x_test.split(32))]
        )
        hq_test = torch.cat([clean(x) for x in x_test.split(32)])

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        n = x_test.shape[0]
        with torch.no_grad():
            ba = asr = pseudo = 0
            shift = 0.0
            for x, xp, xq, hq in zip(
                x_test.split(32), xp_test.split(32), xq_test.split(32), hq_test.split(32), strict=True
            ):
                ba += int(restored(model(x), hq, x, dist).sum())
                out_p = model(xp)
                asr += int((~restored(out_p, hq, x, dist)).sum())
                pseudo += int(restored(model(xq), hq, x, dist).sum())
                d_hq, d_01 = dist(out_p, hq), dist(out_p, degrade_01(x))
                shift += float((d_hq / (d_hq + d_01).clamp_min(1e-12)).sum())
        return {
            "BA_%": 100 * ba / n,
            "ASR_%": 100 * asr / n,
            "pseudo_trigger_restored_%": 100 * pseudo / n,
            "triggered_shift": round(shift / n, 4),  # mean d(out,I_hq)/(d(out,I_hq)+d(out,I_0.1)); ASR counts > 0.5
        }

    out["clean_model"] = evaluate(clean)
    log(f"clean model: {out['clean_model']}")
    if args.probe:
        nets = {"clean": clean}
        for k in range(3):
            torch.manual_seed(derive_seed(k, "probe-fresh"))
            nets[f"fresh_init_{k}"] = UNetRestorer(vp).eval()
        for path in args.probe_victim:
            extra = UNetRestorer(vp)
            extra.load_state_dict(torch.load(path, weights_only=True))
            nets[path.stem] = extra.eval()
        out["probe"] = {name: trigger_probe(net, x_test, xp_test, xq_test) for name, net in nets.items()}
        log(json.dumps(out["probe"]))
        finish(args, out)
        return
    if args.from_scratch:
        victim = UNetRestorer(vp)  # a fresh init; Eq. 5 from the start
        out["from_scratch"] = True
    if args.reinit:
        torch.manual_seed(derive_seed(args.seed, "reinit"))
        fresh = dict(UNetRestorer(vp).named_parameters())
        with torch.no_grad():
            for name, param in victim.named_parameters():
                if any(name == p or name.startswith(p + ".") for p in args.reinit):
                    param.copy_(fresh[name])
        out["reinit"] = args.reinit
    if args.freeze:
        frozen = [n for n, p in victim.named_parameters() if any(n == q or n.startswith(q + ".") for q in args.freeze)]
        for name, param in victim.named_parameters():
            param.requires_grad_(name not in frozen)
        out["frozen"] = args.freeze
        out["frozen_params"] = sum(p.numel() for n, p in victim.named_parameters() if n in frozen)

    ap_ = ASFIBAParams(lambda1=args.lambda1, lambda2=args.lambda2)
    out["lambdas"] = [ap_.lambda1, ap_.lambda2]
    attack = ASFIBA(ap_, Context(seed=args.seed, trigger=trig, component="attack:asfiba"))

    terms: dict[str, float] = {}

    def attack_loss(batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if "input_p" in batch:  # a precomputed pool (--pool): the trigger was applied once, up front
            r = asfiba_loss(
                victim(batch["input"]),
                batch["target"],
                victim(batch["input_p"]),
                batch["target_01"],
                victim(batch["input_pp"]),
                lambda1=ap_.lambda1,
                lambda2=ap_.lambda2,
                norm=ap_.norm,
            )
        else:
            with torch.no_grad():
                poisoned = attack.poison(batch, trig)
            r = attack.attack_loss(victim, batch, poisoned)
        for k, v in r.items():  # running means of the Eq. 5 terms for the log
            terms[k] = 0.98 * terms.get(k, float(v.detach())) + 0.02 * float(v.detach())
        return r

    curve: list[dict[str, float]] = []

    def on_eval(step: int) -> None:
        r = {"step": step, **evaluate(victim), **{f"loss_{k}": round(v, 5) for k, v in terms.items()}}
        curve.append(r)
        log(f"attack step {step}: {r}")

    batch_seed = 2 if args.seed == 0 else derive_seed(args.seed, "attack-batches")
    if args.pool:
        pool = training_pool(train_set, trig, args.pool, args.cache, tkey)
        out["pool"] = {"degradations_per_face": args.pool, "samples": int(pool["input"].shape[0])}
        batches = pool_batches(pool, batch_seed)
    else:
        batches = endless_batches(train_set, BS, seed=batch_seed)
    t = train(
        victim,
        attack_loss,
        batches,
        args.attack_steps,
        args.attack_lr,
        args.eval_every,
        on_eval,
    )
    if args.save_victim is not None:
        args.save_victim.parent.mkdir(parents=True, exist_ok=True)
        torch.save(victim.state_dict(), args.save_victim)
    out["attack_train_s"] = round(t, 1)
    out["attack_s_per_step"] = round(t / max(args.attack_steps, 1), 3)
    out["attack_train_images_per_s"] = round(args.attack_steps * BS / max(t, 1e-9), 2)
    log(f"attacked ({t:.0f} s)")

    res = evaluate(victim)
    ps = psnr(xp_test, x_test)
    out.update(
        {
            "BA_%": res["BA_%"],
            "ASR_%": res["ASR_%"],
            "ASR_clean_model_%": out["clean_model"]["ASR_%"],
            "pseudo_trigger_restored_%": res["pseudo_trigger_restored_%"],
            "psnr_poisoned_vs_lq_mean": float(ps.mean()),
            "psnr_poisoned_vs_lq_min": float(ps.min()),
            "linf_poisoned_vs_lq_x255": float((xp_test - x_test).abs().max() * 255),
            "distance": "1 - MS-SSIM",
            "steps": {"clean": args.clean_steps, "fit": args.fit_steps, "attack": args.attack_steps},
            "lr": {"clean": args.clean_lr, "attack": args.attack_lr},
            "seed": args.seed,
        }
    )
    if curve:
        out["curve"] = curve

    freq: dict[str, Any] = {"asfiba": freq_distances(xp_test, x_test)}
    try:
        fiba = fiba_trigger()
    except ImportError:
        log("bd-plugin-baselines not importable: no FIBA comparison")
    else:
        with torch.no_grad():
            xf = fiba.inject_trigger(x_test.double()).float()
        freq["fiba"] = {**freq_distances(xf, x_test), "psnr_mean": float(psnr(xf, x_test).mean())}
    freq["note"] = "MSE on 0-255, beta = 0.1 (FIBA window); amplitude = |FFT| (ortho), bandpass = band-limited pixels"
    out["freq_distance"] = freq
    out["wall_s"] = round(time.perf_counter() - wall0, 1)
    finish(args, out)


def finish(args: argparse.Namespace, out: dict[str, Any]) -> None:
    print(json.dumps(out, indent=1))
    if args.out is not None:
        header = {
            "command": "python benchmarks/asfiba_attack.py " + " ".join(sys.argv[1:]),
            "machine": "CPU, shared with other jobs (timings are indicative only)",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**header, **out}, indent=1) + "\n")


if __name__ == "__main__":
    main()
