"""bdcore contract suites for the BAIQA components."""

from __future__ import annotations

import torch
from bd_plugin_baiqa import params as P
from bd_plugin_baiqa.attacks import CBaiqa, PBaiqa
from bd_plugin_baiqa.metrics import MeanMae, MeanMra, Plcc, PsnrAlpha, Rmse, Srocc
from bd_plugin_baiqa.trigger import BaiqaDct
from bd_plugin_baiqa.victims import CnnIqa, SmallIqaNet

from bdcore.context import Context
from bdcore.metrics.batch import EvalBatch
from bdcore.testing.contracts import AttackLossContract, MetricContract, TriggerContract, VictimContract


class TestBaiqaDct(TriggerContract):
    params_cls = P.DctTriggerParams
    atol_identity = 0.5 / 255 + 1e-6  # α = 0 still rounds to 8 bit, as the authors' injector
    check_gradcheck = False  # rounding (straight-through) is not smooth; see TestBaiqaDctUnquantized

    def make(self) -> BaiqaDct:
        return BaiqaDct(P.DctTriggerParams(), Context(seed=0))


class TestBaiqaDctUnquantized(TriggerContract):
    atol_identity = 1e-5

    def make(self) -> BaiqaDct:
        return BaiqaDct(P.DctTriggerParams(quantize=False, init_range=30.0), Context(seed=0))


def test_trigger_init_is_seeded() -> None:
    a = BaiqaDct(P.DctTriggerParams(), Context(seed=1)).trigger
    b = BaiqaDct(P.DctTriggerParams(), Context(seed=1)).trigger
    c = BaiqaDct(P.DctTriggerParams(), Context(seed=2)).trigger
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.abs().max()) <= 300.0


class TestSmallVictim(VictimContract):
    params_cls = P.SmallIqaParams

    def make(self) -> SmallIqaNet:
        torch.manual_seed(0)
        return SmallIqaNet(P.SmallIqaParams(), Context())

    def batch(self) -> dict:
        return {"input": torch.rand(2, 3, 32, 32), "target": torch.tensor([30.0, 70.0])}


class TestCnnIqaVictim(VictimContract):
    params_cls = P.CnnIqaParams

    def make(self) -> CnnIqa:
        torch.manual_seed(0)
        return CnnIqa(P.CnnIqaParams(hidden=32, filters=8), Context())

    def batch(self) -> dict:
        return {"input": torch.rand(2, 3, 64, 64), "target": torch.tensor([30.0, 70.0])}


class _OnScores(AttackLossContract):
    """IQA batches hold a MOS per image as the target; the trigger is this plugin's (the suite's defaults are
    bdcore's image-to-image toy ones)."""

    def batch(self) -> dict:
        x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        return {"input": x, "target": torch.tensor([30.0, 70.0, 45.0, 60.0]), "index": torch.arange(4)}

    def trigger(self) -> BaiqaDct:
        return BaiqaDct(P.DctTriggerParams(), Context(seed=0))


class TestPBaiqa(_OnScores):
    params_cls = P.PBaiqaParams

    def make(self) -> PBaiqa:
        return PBaiqa(P.PBaiqaParams(), Context())


class TestCBaiqa(_OnScores):
    params_cls = P.CBaiqaParams

    def make(self) -> CBaiqa:
        # the engine hands attack losses the clean victim: c-baiqa's PGD surrogate
        torch.manual_seed(0)
        surrogate = SmallIqaNet(P.SmallIqaParams(width=8, depth=2))
        return CBaiqa(P.CBaiqaParams(pgd_steps=2), Context(clean_victim=lambda: surrogate))


class TestPlcc(MetricContract):
    params_cls = P.ScoreMetricParams

    def make(self) -> Plcc:
        return Plcc(P.ScoreMetricParams(), Context(component="metric:plcc"))


class TestSrocc(TestPlcc):
    def make(self) -> Srocc:
        return Srocc(P.ScoreMetricParams(), Context(component="metric:srocc"))


class TestRmse(TestPlcc):
    def make(self) -> Rmse:
        return Rmse(P.ScoreMetricParams(), Context(component="metric:rmse"))


class _WithModel(MetricContract):
    def batch(self) -> EvalBatch:
        b = super().batch()
        torch.manual_seed(0)
        b.victim = SmallIqaNet(P.SmallIqaParams(width=8, depth=2))
        b.trigger = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
        return b


class TestMmae(_WithModel):
    params_cls = P.AlphaResponseParams

    def make(self) -> MeanMae:
        return MeanMae(P.AlphaResponseParams(), Context(component="metric:mmae"))


class TestMmra(_WithModel):
    def make(self) -> MeanMra:
        return MeanMra(P.AlphaResponseParams(), Context(component="metric:mmra"))


class TestPsnrAlpha(_WithModel):
    params_cls = P.PsnrAlphaParams

    def make(self) -> PsnrAlpha:
        return PsnrAlpha(P.PsnrAlphaParams(), Context(component="metric:psnr-alpha"))
