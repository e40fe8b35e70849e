"""Decoder fine-tuning (model-stage defense): the defense contract on a small codec, and that only the
decoder g_s changes."""

import copy

import pytest
import torch
from bd_plugin_bavaft.codec import CompressAIVictim
from bd_plugin_bavaft.defenses import DecoderFineTuning, DefenseSetupError
from bd_plugin_bavaft.params import CodecParams, DecoderFineTuningParams

from bdcore.context import Context
from bdcore.testing.contracts import DefenseContract


def _codec() -> CompressAIVictim:
    v = CompressAIVictim(CodecParams(model="bmshj2018-hyperprior", quality=1, n=8, m=12), Context(seed=0))
    v.eval()
    return v


class TestDecoderFineTuningContract(DefenseContract):
    params_cls = DecoderFineTuningParams

    def make(self):
        return DecoderFineTuning(DecoderFineTuningParams(steps=3, lr=1e-3), Context(seed=0))

    def victim(self):
        return _codec()


def _state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_decoder_fine_tuning_changes_g_s_only():
    suite = TestDecoderFineTuningContract()
    victim = _codec()
    victim.trainable_parameters("attack")  # as the engine leaves an attacked codec: g_a trainable, rest frozen
    before = _state(victim.net)
    outcome = DecoderFineTuning(DecoderFineTuningParams(steps=4, lr=1e-2), Context(seed=0)).defend(
        copy.deepcopy(victim), suite.context()
    )
    after = _state(outcome.victim.net)
    assert after.keys() == before.keys()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed and all(k.startswith("g_s.") for k in changed), changed
    # encoder, hyper-networks, entropy bottleneck and Gaussian conditional (quantiles, CDF tables) as they were
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("g_s."))
    assert outcome.extra["finetune_steps"] == 4.0
    assert torch.equal(_state(victim.net)["g_s.0.weight"], before["g_s.0.weight"])  # the victim itself untouched


def test_decoder_fine_tuning_lowers_the_clean_distortion():
    """It does what a decoder fine-tune is for: a codec whose decoder was perturbed gets a better
    reconstruction of clean images back."""
    suite = TestDecoderFineTuningContract()
    ctx = suite.context()
    victim = _codec()
    with torch.no_grad():
        for p in victim.net.g_s.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    x = torch.stack([ctx.clean_train[i]["input"] for i in range(len(ctx.clean_train))])

    def mse(v):
        with torch.no_grad():
            return float(((v.predict(x)["output"] - x) ** 2).mean())

    defended = DecoderFineTuning(DecoderFineTuningParams(steps=40, lr=3e-3), Context(seed=0)).defend(victim, ctx)
    assert mse(defended.victim) < 0.8 * mse(victim)


def test_decoder_fine_tuning_refuses_a_non_codec():
    suite = TestDecoderFineTuningContract()
    with pytest.raises(DefenseSetupError, match="decoder_parameters"):
        DecoderFineTuning().defend(torch.nn.Conv2d(3, 3, 1), suite.context())
