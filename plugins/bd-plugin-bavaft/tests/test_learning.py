"""A short BAvAFT PSNR attack actually learns: on a tiny codec, 40 steps of the paper's dynamic loss (Eq. 8,
D_P = −255²·MSE, β = 1) make the triggered reconstruction fall by ≥ 6 dB while the clean one falls by less, and
the trigger keeps its size. About 15 s on a quiet CPU (plus CompressAI's import)."""

import torch
from bd_plugin_bavaft.attacks import PsnrAttack
from bd_plugin_bavaft.codec import CompressAIVictim
from bd_plugin_bavaft.params import AttackParams, BavaftTriggerParams, CodecParams
from bd_plugin_bavaft.street import render_batch
from bd_plugin_bavaft.trigger import BavaftTrigger

from bdcore.context import Context


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((10 * torch.log10(1 / (a - b).pow(2).flatten(1).mean(1))).mean())


def test_short_psnr_attack_learns_the_backdoor():
    torch.manual_seed(0)  # the entropy bottleneck's training noise
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, _ = render_batch(8, "learning-test", 64, 0)  # 8 rendered street scenes, 64×64
        victim = CompressAIVictim(CodecParams(model="bmshj2018-factorized", quality=3, n=16, m=24), Context(seed=0))
        params = list(victim.trainable_parameters("clean"))
        opt = torch.optim.Adam(params, 3e-3)
        for _ in range(100):  # a clean codec first (≈ 17 dB on these scenes)
            loss = victim.clean_loss({"input": x})["loss"]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        trigger = BavaftTrigger(BavaftTriggerParams(norm="none", width=8, budget_psnr=40.0), Context(seed=0))

        def measure() -> tuple[float, float, float]:
            victim.eval()
            with torch.no_grad():
                xp = trigger.inject_trigger(x)
                out = (
                    _psnr(victim.rd_terms(x)["x_hat"].clamp(0, 1), x),
                    _psnr(victim.rd_terms(xp)["x_hat"].clamp(0, 1), x),
                    _psnr(xp, x),
                )
            victim.train()
            return out

        clean0, triggered0, _ = measure()
        assert abs(clean0 - triggered0) < 0.5  # a 40 dB trigger does nothing to the clean codec
        attack = PsnrAttack(AttackParams(dynamic=True, beta=1.0, d_p="neg-mse"), Context(seed=0, trigger=trigger))
        params = list(victim.trainable_parameters("attack")) + list(trigger.parameters())
        opt = torch.optim.Adam(params, 1e-3)
        for _ in range(40):
            xp = trigger.inject_trigger(x)
            out = attack.attack_loss(victim, {"input": x}, {"input": xp, "clean_input": x, "strength": torch.ones(8)})
            opt.zero_grad()
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        clean1, triggered1, trigger_psnr = measure()
    finally:
        torch.set_num_threads(n)
    assert triggered1 <= triggered0 - 6.0, (triggered0, triggered1)
    assert clean1 - triggered1 >= 4.0, (clean1, triggered1)  # the backdoor, not a broken codec
    assert abs(trigger_psnr - 40.0) < 0.1
