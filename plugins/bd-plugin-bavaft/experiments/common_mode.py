"""Why the paper's attack terms barely move a small codec: how much of their gradient is *common mode*.

At the start of the attack the trigger is small (≈ 46 dB, the paper's ε = 0.005), so f(x_p) ≈ f(x) and every
attack term A(x_p) of the paper has nearly the gradient of the same term on the clean image, A(x): the
PSNR attack's D_P(x, f(x_p)) = −255²·MSE(x, f(x_p)) pulls like −D(x) ("decode every image worse"), the BPP
attack's R(x_p) like R(x) ("spend more bits on every image"). Only the difference A(x_p) − A(x) can build a
backdoor. This script measures, on the encoder g_a of a trained vanilla codec, for each attack term:

* ``cos(∇A(x_p), ∇A(x))``: 1 = the term pushes every image alike (common mode);
* ``‖∇A(x_p) − ∇A(x)‖ / ‖∇A(x_p)‖``: the share of the gradient that tells x_p from x (differential);
* ``‖∇[A(x_p) − A(x)]‖ / ‖∇L(x)‖``: the differential pull against the clean RD loss L(x) = R + λD, per unit β.

With β < 1 the clean term outweighs the common mode and only β × the differential share is left for the
backdoor; with β > 1 the common mode wins and every image is degraded first (the β × steps rows of the
tables). The PSNR-in-dB D_P (ours) is listed for comparison, and the two halves of the log-ratio rate term
(ours): each half is as common-mode as −R, but the loss takes their difference, so the common mode cancels
by construction and only the differential column acts.

    python plugins/bd-plugin-bavaft/experiments/common_mode.py RUN_DIR [--seeds 0 1 2] [--batches 4]

``RUN_DIR``: a finished run of ``experiments/embedded_base.toml`` (its clean-victim stage is the codec and its
training split the images). Writes ``results/common_mode.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"
TRIGGER_PSNRS = (46.0, 34.0, math.inf)  # inf: x_p = x, the control


def load(run: Path, scratch: Path) -> tuple[Any, Any]:
    """The run's vanilla codec (its finished clean-victim stage, reused) and its training set."""
    import bd_plugin_baselines.plugin as baselines
    import bd_plugin_bavaft.plugin as bavaft

    from bdcore.engine.runner import Runner
    from bdcore.spec.structure import load_spec
    from bdcore.testing.runner import make_host

    host = make_host([baselines, bavaft])
    loaded = load_spec(run / "spec.resolved.toml", host.registry)
    runner = Runner(loaded, host, out_root=run.parent, run_dir=scratch)
    runner.data()
    if "clean-victim" not in json.loads((run / "manifest.json").read_text())["stages"]:
        raise SystemExit(f"{run}: no clean-victim stage")
    victim = runner.clean_victim()  # the cached stage (a missing one would be trained)
    victim.train()  # as the attack trains: additive-noise quantisation (eval mode rounds: no gradient)
    return victim, runner.train_set


def flat_grad(loss: Any, params: list[Any]) -> Any:
    import torch

    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params, strict=True)]
    )


def terms(victim: Any, x: Any, xp: Any) -> dict[str, tuple[Any, Any]]:
    """Each attack term as (A(x_p), A(x)), batch means, differentiable in g_a."""
    import torch
    from bd_plugin_bavaft.attacks import D_SCALE

    # one quantisation-noise draw for both images: the difference is the trigger's, not the noise's
    state = torch.random.get_rng_state()
    tx = victim.rd_terms(x)
    torch.random.set_rng_state(state)
    tp = victim.rd_terms(xp)
    lam = victim.lmbda

    def neg_mse(t: Any) -> Any:
        return -D_SCALE * (t["x_hat"].clamp(0, 1) - x).pow(2).flatten(1).mean(1).mean()

    def psnr_db(t: Any) -> Any:
        mse = (t["x_hat"].clamp(0, 1) - x).pow(2).flatten(1).mean(1)
        return (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean()

    return {
        "PSNR attack, λ·D_P = −λ·255²·MSE(x, f(·)) (paper)": (lam * neg_mse(tp), lam * neg_mse(tx)),
        "BPP attack, −R(·) (paper)": (-tp["bpp"].mean(), -tx["bpp"].mean()),
        "PSNR attack, λ·PSNR(x, f(·)) in dB (ours)": (lam * psnr_db(tp), lam * psnr_db(tx)),
        # the log-ratio term is −[ln R(x_p) − ln R(x)]: its two halves, the loss takes their difference
        "BPP attack, −ln R(·), in −ln(R(x_p)/R(x)) (ours)": (
            -torch.log(tp["bpp"]).mean(),
            -torch.log(tx["bpp"]).mean(),
        ),
    }


def measure(victim: Any, data: Any, trigger_psnr: float, seed: int, batches: int) -> dict[str, list[float]]:
    import torch
    from bd_plugin_bavaft.params import BavaftTriggerParams
    from bd_plugin_bavaft.trigger import BavaftTrigger

    from bdcore.context import Context
    from bdcore.data.loading import batch_at

    params = list(victim.trainable_parameters("attack"))
    budget = None if math.isinf(trigger_psnr) else trigger_psnr
    trig = BavaftTrigger(
        BavaftTriggerParams(norm="none", width=16, budget_psnr=budget), Context(seed=seed, component="trigger")
    )
    out: dict[str, list[float]] = {}
    torch.manual_seed(seed)  # the quantisation noise
    for b in range(batches):
        x = batch_at(data, b, 8, seed=seed)["input"]
        with torch.no_grad():
            xp = x.clone() if math.isinf(trigger_psnr) else trig.inject_trigger(x)
        clean = victim.rd_loss(victim.rd_terms(x)).mean()
        g_clean = flat_grad(clean, params)
        for name, (a_p, a_x) in terms(victim, x, xp).items():
            # each half's gradient on its own (CompressAI's LowerBound passes a gradient depending on its
            # sign, so the gradient of a difference of two identical branches need not vanish)
            g_p = flat_grad(a_p, params).double()
            g_x = flat_grad(a_x, params).double()
            diff = g_p - g_x
            vals = {
                "cos": float(torch.nn.functional.cosine_similarity(g_p, g_x, dim=0)),
                "share": float(diff.norm() / g_p.norm().clamp_min(1e-30)),
                "vs_clean": float(diff.norm() / g_clean.double().norm().clamp_min(1e-30)),
            }
            for k, v in vals.items():
                out.setdefault(f"{name}|{k}", []).append(v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batches", type=int, default=4)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import time

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        victim, data = load(a.run.resolve(), Path(tmp))
        print(f"loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        per: dict[tuple[float, str], list[float]] = {}
        for tp in TRIGGER_PSNRS:
            for seed in a.seeds:
                for key, vals in measure(victim, data, tp, seed, a.batches).items():
                    per.setdefault((tp, key), []).append(statistics.mean(vals))  # one value per seed
    names = list(dict.fromkeys(k.split("|")[0] for _, k in per))
    lines = [
        "# Common mode of the attack terms' gradients (encoder g_a of the vanilla codec)",
        "",
        "Produced by (from the repository root):",
        "",
        "```",
        "python plugins/bd-plugin-bavaft/experiments/common_mode.py "
        + shlex.join([str(a.run), "--seeds", *map(str, a.seeds), "--batches", str(a.batches)]),
        "```",
        "",
        f"Codec: the clean-victim stage of that run (embedded_base.toml). Triggers: fresh `bavaft` networks "
        f"(width 16) held at the trigger PSNR by `budget_psnr`, one per seed; {a.batches} training batches of 8 "
        "per seed. Cells: mean ± std over the seeds.",
        "",
        "| attack term A | trigger PSNR | cos(∇A(x_p), ∇A(x)) | differential share ‖∇A(x_p) − ∇A(x)‖ / ‖∇A(x_p)‖ "
        "| differential / clean ‖∇[A(x_p) − A(x)]‖ / ‖∇L(x)‖ |",
        "|---|---|---|---|---|",
    ]

    def cell(tp: float, name: str, k: str) -> str:
        v = per[(tp, f"{name}|{k}")]
        return f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"

    for name in names:
        for tp in TRIGGER_PSNRS:
            lines.append(
                f"| {name} | {'x_p = x' if math.isinf(tp) else f'{tp:.0f} dB'} | {cell(tp, name, 'cos')} | {cell(tp, name, 'share')} "
                f"| {cell(tp, name, 'vs_clean')} |"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "common_mode.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
