"""BAvAFT multi-trigger attack (Eq. 10-11): the loss against the single-objective losses, gradient
isolation between sub-triggers, encoder-only training, and evaluating each trigger of one trained model."""

from __future__ import annotations

import pytest
import torch
from bd_plugin_bavaft.attacks import AttackSetupError, BppAttack, MultiAttack, PsnrAttack, visibility
from bd_plugin_bavaft.codec import CompressAIVictim
from bd_plugin_bavaft.params import (
    AttackParams,
    BavaftTriggerParams,
    CodecParams,
    MultiAttackParams,
    MultiTriggerParams,
)
from bd_plugin_bavaft.trigger import BavaftTrigger, MultiBavaftTrigger

from bdcore.context import Context
from bdcore.testing.contracts import AttackLossContract, TriggerContract

torch.set_num_threads(1)

OBJECTIVES = ("psnr", "bpp")


class TestMultiTriggerContract(TriggerContract):
    params_cls = MultiTriggerParams
    sizes = ((32, 32),)

    def make(self):
        return MultiBavaftTrigger(MultiTriggerParams(norm="none", scale=2000.0), Context(seed=0))

    def test_gradcheck(self):  # each sub-trigger is a BavaftTrigger, gradchecked in test_trigger.py
        pass


class TestMultiAttackContract(AttackLossContract):
    params_cls = MultiAttackParams

    def make(self):
        return MultiAttack(MultiAttackParams())

    def victim(self):  # the attack needs this plugin's codec and multi trigger, not the suite's toy defaults
        return CompressAIVictim(CodecParams(model="bmshj2018-factorized", quality=1, n=8, m=12), Context(seed=0))

    def trigger(self):
        return MultiBavaftTrigger(MultiTriggerParams(norm="none", scale=2000.0), Context(seed=0))


def _setup(weights=(3.0, 0.5), **attack_kw):
    """Tiny codec in the attack phase (noise re-seeded per forward, so two passes draw the same
    quantisation noise), a two-objective trigger and the multi attack."""
    v = CompressAIVictim(CodecParams(model="bmshj2018-factorized", quality=1, n=16, m=24), Context(seed=0))
    v.trainable_parameters("attack")
    forward = v.rd_terms

    def seeded(x):
        torch.manual_seed(0)
        return forward(x)

    v.rd_terms = seeded
    trig = MultiBavaftTrigger(MultiTriggerParams(norm="none", scale=1000.0), Context(seed=0, component="t"))
    atk = MultiAttack(MultiAttackParams(weights=weights, **attack_kw), Context(seed=0, trigger=trig))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return v, trig, atk, x


def _poisoned(trig, x):
    xps = {o: trig.inject(o, x) for o in OBJECTIVES}
    return {"input": xps["psnr"], "clean_input": x, "strength": torch.ones(2), "objective_inputs": xps}


def _hand_terms(v, trig, x, single: AttackParams):
    """Per objective ``A^o`` (batch mean, from PsnrAttack/BppAttack.objective) and ``vis^o``."""
    tc = v.rd_terms(x)
    r_x, d_x = tc["bpp"], 255.0**2 * tc["mse"]
    parts = {"psnr": PsnrAttack(single), "bpp": BppAttack(single)}
    out = {}
    for o in OBJECTIVES:
        xp = trig.inject(o, x)
        tp = v.rd_terms(xp)
        attack, _ = parts[o].objective(v, x, xp, tp, r_x, d_x)
        out[o] = (attack.mean(), visibility(x, xp, single.gamma, single.eps).mean())
    return v.rd_loss(tc).mean(), out


@pytest.mark.parametrize("dynamic", [True, False])
def test_loss_is_the_sum_of_the_single_objective_losses(dynamic):
    kw = {"dynamic": dynamic, "beta": 0.3, "alpha": None if dynamic else 0.5, "d_p": "psnr" if dynamic else "neg-mse"}
    v, trig, atk, x = _setup(**kw)
    out = atk.attack_loss(v, {"input": x}, _poisoned(trig, x))
    clean, terms = _hand_terms(v, trig, x, atk.params.single())
    want = clean + 3.0 * terms["psnr"][0] + 0.5 * terms["bpp"][0] + terms["psnr"][1] + terms["bpp"][1]
    torch.testing.assert_close(out["loss"], want, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(out["psnr/visibility"], terms["psnr"][1].detach())
    assert {"psnr/mse_poisoned", "bpp/d_poisoned", "bpp/bpp_poisoned", "clean_rd"} <= set(out)


@pytest.mark.parametrize("exact", [True, False])
def test_each_trigger_gets_its_own_eq11_gradient_and_only_g_a_trains(exact):
    v, trig, atk, x = _setup(exact_trigger_grad=exact)
    out = atk.attack_loss(v, {"input": x}, _poisoned(trig, x))
    out["loss"].backward()
    enc = [p for n, p in v.net.named_parameters() if n.startswith("g_a.")]
    assert all(p.grad is not None for p in enc)
    assert all(p.grad is None for n, p in v.net.named_parameters() if not n.startswith("g_a."))

    clean, terms = _hand_terms(v, trig, x, atk.params.single())
    weights = dict(zip(OBJECTIVES, (3.0, 0.5), strict=True))
    for o in OBJECTIVES:
        own = list(trig.triggers[o].parameters())
        other = list(trig.triggers["bpp" if o == "psnr" else "psnr"].parameters())
        a, vis = terms[o]
        # another objective's terms never reach this sub-trigger
        assert all(g is None for g in torch.autograd.grad(a + vis, other, retain_graph=True, allow_unused=True))
        # Eq. 11: ∂[A^o + γ·vis^o] (exact) or ∂[α^o·A^o + γ·vis^o] (plain gradient of the summed loss)
        want = torch.autograd.grad((1.0 if exact else weights[o]) * a + vis, own, retain_graph=True)
        for p, g in zip(own, want, strict=True):
            torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
        assert sum(float(p.grad.abs().sum()) for p in own) > 0
    # Eq. 10 (clean RD counted once): the encoder sees L(x) + Σ α^o·A^o
    want = torch.autograd.grad(clean + sum(weights[o] * terms[o][0] for o in OBJECTIVES), enc)
    for p, g in zip(enc, want, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_trigger_structure_seeds_and_eval_objective():
    ctx = Context(seed=0, component="trigger:bavaft-multi")
    trig = MultiBavaftTrigger(MultiTriggerParams(norm="none", eval_objective="bpp"), ctx)
    keys = trig.state_dict().keys()
    assert any(k.startswith("triggers.psnr.") for k in keys) and any(k.startswith("triggers.bpp.") for k in keys)
    a, b = (trig.triggers[o].weight.out.weight for o in OBJECTIVES)
    assert not torch.equal(a, b)  # seeded differently
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(trig.inject_trigger(x), trig.inject("bpp", x))
    assert not torch.equal(trig.inject("psnr", x), trig.inject("bpp", x))
    single = BavaftTrigger(BavaftTriggerParams(norm="none"), Context(seed=0, component="trigger:bavaft-multi/bpp"))
    torch.testing.assert_close(single.inject_trigger(x), trig.inject("bpp", x))  # an ordinary bavaft trigger


def test_params_and_setup_errors():
    with pytest.raises(ValueError, match="eval_objective = 'face' is not one of objectives"):
        MultiTriggerParams(eval_objective="face")
    with pytest.raises(ValueError, match="not supported"):
        MultiAttackParams(objectives=("psnr", "face-id"))
    with pytest.raises(ValueError, match="weights has 1 entries"):
        MultiAttackParams(weights=(1.0,))
    assert MultiAttackParams().alphas == (1.0, 1.0)
    with pytest.raises(AttackSetupError, match="bavaft-multi trigger"):
        MultiAttack(MultiAttackParams(), Context(trigger=BavaftTrigger(BavaftTriggerParams(norm="none"))))
    trig = MultiBavaftTrigger(MultiTriggerParams(norm="none", objectives=("bpp", "psnr"), eval_objective="bpp"))
    with pytest.raises(AttackSetupError, match="differ from the loss"):
        MultiAttack(MultiAttackParams(), Context(trigger=trig))


SPEC = """
[run]
name = "multi"
seed = 0
device = "cpu"
[data]
use = "embedded"
params = { set = "scenes", size = 64, crop = 32, repeats = 1, test_crops = 1 }
[victim]
use = "compressai"
params = { model = "bmshj2018-factorized", quality = 1, n = 16, m = 24 }
[train]
steps = 2
batch_size = 4
lr = 1e-3
[attack]
from_clean = true
steps = 2
batch_size = 4
lr = 1e-4
[attack.trigger]
use = "bavaft-multi"
params = { norm = "none", scale = 2000.0, eval_objective = "{obj}" }
[attack.loss]
use = "bavaft-multi"
params = { beta = 1.0 }
[[metric]]
use = "psnr"
label = "trigger-psnr"
params = { between = ["input", "clean_input"], splits = ["poisoned"] }
[eval]
batch_size = 4
limit = 4
grid = 0
"""


def test_eval_objective_reuses_the_trained_stages(tmp_path):
    import bd_plugin_bavaft.plugin as plugin

    from bdcore.testing import run_spec

    out = tmp_path / "runs"
    first = run_spec(SPEC.replace("{obj}", "psnr"), tmp_path / "a", plugins=[plugin], out=out)
    second = run_spec(SPEC.replace("{obj}", "bpp"), tmp_path / "b", plugins=[plugin], out=out)
    assert "attack" not in first.reused
    assert {"clean-victim", "attack"} <= set(second.reused)
    psnr_trigger, bpp_trigger = (r.value("trigger-psnr", split="poisoned") for r in (first, second))
    assert max(psnr_trigger, bpp_trigger) < 100.0  # below the metric's cap: the triggers change the inputs
    assert psnr_trigger != bpp_trigger  # the test split carries the other (trained) trigger
