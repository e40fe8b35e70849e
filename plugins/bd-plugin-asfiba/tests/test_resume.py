"""Exact resume of a restoration victim under AS-FIBA: in process (the contract: the U-Net restorer and
the Eq. 5 loss with its pseudo-trigger generator) and as a user meets it (the embedded example killed
with SIGKILL in its clean and attack stages, then ``bdcore run --resume``)."""

from pathlib import Path

import torch
import torch.nn.functional as F
from bd_plugin_asfiba.attack import ASFIBA
from bd_plugin_asfiba.params import ASFIBAParams, SFINetParams, UNetRestorerParams
from bd_plugin_asfiba.trigger import SFINetTrigger
from bd_plugin_asfiba.victims import UNetRestorer

from bdcore.context import Context
from bdcore.testing.resume import ResumeContract, kill_and_resume

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "asfiba-embedded-smoke.toml"


class TestRestorerAndAsfibaResume(ResumeContract):
    def make_victim(self):
        return UNetRestorer(UNetRestorerParams(base=8), Context(seed=0))

    def make_trigger(self):
        return SFINetTrigger(SFINetParams(pool_size=8), Context(seed=0, component="trigger:sf-i-net"))

    def make_attack(self, trigger):
        return ASFIBA(ASFIBAParams(), Context(seed=0, trigger=trigger, component="attack_loss:asfiba"))

    def batch(self, step):
        gen = torch.Generator().manual_seed(step)
        hq = F.interpolate(torch.rand(2, 3, 8, 8, generator=gen), size=32, mode="bilinear", align_corners=False)
        lq = (hq + 0.05 * torch.randn(hq.shape, generator=gen)).clamp(0, 1)
        return {"input": lq, "target": hq, "index": torch.arange(2)}


def test_restoration_example_killed_in_both_stages_resumes_bit_identical(tmp_path):
    small = [
        "train.steps=6",
        "attack.steps=6",
        "attack.fit_steps=2",
        "train.batch_size=2",
        "attack.batch_size=2",
        "run.checkpoint_every=2",
        "eval.limit=2",
        "eval.grid=0",
        "attack.trigger.params.pool_size=8",
    ]
    counts = kill_and_resume(EXAMPLE, tmp_path, overrides=small)
    assert sorted(k.split("-")[0] for k in counts) == ["attack", "clean", "trigger"]
