"""Exact resume of the CompressAI victim and the BAvAFT attack: the aux (quantile) optimizer, the attack's
step counter and stage-2 generator, the trigger network — in process (the contract) and as a user meets it
(the demo killed with SIGKILL in its clean and attack stages, then ``bdcore run --resume``)."""

from pathlib import Path

import torch
import torch.nn.functional as F
from bd_plugin_bavaft.attacks import PsnrAttack
from bd_plugin_bavaft.codec import CompressAIVictim
from bd_plugin_bavaft.params import AttackParams, BavaftTriggerParams, CodecParams
from bd_plugin_bavaft.trigger import BavaftTrigger

from bdcore.context import Context
from bdcore.testing.resume import ResumeContract, kill_and_resume

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "examples" / "demo.toml"


class TestCodecAndPsnrAttackResume(ResumeContract):
    """Clean stage: RD loss + aux step (its Adam must come back). Attack stage: encoder + trigger network, with
    BAvAFT++ stage 2 switching on at step 3 (the attack's step counter and its preprocessing draws)."""

    def make_victim(self):
        return CompressAIVictim(CodecParams(model="bmshj2018-factorized", quality=1, n=16, m=16), Context(seed=0))

    def make_trigger(self):
        return BavaftTrigger(BavaftTriggerParams(k=4, norm="none"), Context(seed=0, component="trigger:bavaft"))

    def make_attack(self, trigger):
        params = AttackParams(robust_stage2_after=3)
        return PsnrAttack(params, Context(seed=0, trigger=trigger, component="attack_loss:bavaft-psnr"))

    def batch(self, step):
        gen = torch.Generator().manual_seed(step)
        x = F.interpolate(torch.rand(2, 3, 8, 8, generator=gen), size=32, mode="bilinear", align_corners=False)
        return {"input": x, "target": x, "index": torch.arange(2)}


def test_demo_killed_in_both_stages_resumes_bit_identical(tmp_path):
    """The README demo (reduced steps), SIGKILL after the first checkpoint of the clean stage, --resume,
    SIGKILL after the first checkpoint of the attack stage, --resume: every stage tensor (entropy-bottleneck
    quantiles, trigger network included) and every result equal the uninterrupted run's."""
    small = [
        "train.steps=6",
        "attack.steps=6",
        "train.batch_size=2",
        "attack.batch_size=2",
        "run.checkpoint_every=2",
        "eval.limit=2",
        "eval.grid=0",
    ]
    counts = kill_and_resume(DEMO, tmp_path, overrides=small)
    assert sorted(k.split("-")[0] for k in counts) == ["attack", "clean"]
    assert counts[next(k for k in counts if k.startswith("attack"))] > 100  # codec + trigger network tensors
