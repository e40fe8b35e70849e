"""Golden tests of the IQA metrics: scipy.stats for PLCC/SROCC, closed forms for mMAE/mMRA."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from bd_plugin_baiqa import params as P
from bd_plugin_baiqa.metrics import MeanMae, MeanMra, Plcc, PsnrAlpha, Rmse, Srocc, plcc, rmse, srocc
from bd_plugin_baiqa.params import ALPHA_GRID
from bd_plugin_baiqa.trigger import BaiqaDct
from torch import nn

from bdcore.components import TriggerBase, VictimBase
from bdcore.context import Context
from bdcore.metrics.batch import EvalBatch


def _run(metric, batches):
    metric.reset()
    for b in batches:
        metric.update(b)
    return metric.compute()


def test_alpha_grid_is_the_codes() -> None:
    assert len(ALPHA_GRID) == 20
    assert np.allclose(sorted(ALPHA_GRID), sorted(0.1 * k * s for k in range(1, 11) for s in (1, -1)))
    assert np.isclose(40 * np.mean(np.abs(ALPHA_GRID)), 22.0)


@pytest.mark.parametrize("ties", [False, True])
def test_correlations_match_scipy(ties: bool) -> None:
    rng = np.random.default_rng(0)
    mos = rng.uniform(0, 100, 57)
    pred = mos * 0.7 + rng.normal(0, 15, 57)
    if ties:
        pred = np.round(pred / 10) * 10
        mos = np.round(mos / 5) * 5
    assert np.isclose(plcc(pred, mos), scipy.stats.pearsonr(pred, mos)[0], atol=1e-12)
    assert np.isclose(srocc(pred, mos), scipy.stats.spearmanr(pred, mos)[0], atol=1e-12)
    assert np.isclose(rmse(pred, mos), np.sqrt(np.mean((pred - mos) ** 2)))
    # streaming over batches == one shot
    batches = [
        EvalBatch(
            split="clean", input=torch.zeros(len(i), 3, 2, 2), output=torch.tensor(pred[i]), target=torch.tensor(mos[i])
        )
        for i in np.array_split(np.arange(57), 4)
    ]
    for cls, fn in ((Plcc, plcc), (Srocc, srocc), (Rmse, rmse)):
        m = cls(P.ScoreMetricParams(), Context(component=f"metric:{cls.__name__.lower()}"))
        assert np.isclose(_run(m, batches)[cls.__name__.lower()], fn(pred, mos))
    assert Rmse.higher_is_better is False and Plcc.higher_is_better is True


class ConstantIqa(VictimBase):
    """A no-effect model: the score depends on the clean content only at the 0.1 level (mean), never on α."""

    task = "iqa"

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return 50.0 + 0 * x.mean(dim=(1, 2, 3)) + self.dummy


class OffsetTrigger(TriggerBase):
    """x + 0.1·α (smooth stand-in trigger for an oracle test)."""

    def apply(self, images, strength, generator):
        return images + 0.1 * strength


class OracleIqa(ConstantIqa):
    """f(x) = 400·mean(x): with OffsetTrigger, f(x_α) − f(x) = 40α exactly (no clamping in [0.3, 0.6])."""

    def forward(self, x):
        return 400.0 * x.mean(dim=(1, 2, 3)) + self.dummy


def _batch(victim, trigger):
    x = 0.3 + 0.3 * torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return EvalBatch(
        split="clean",
        input=x,
        output=victim(x),
        target=torch.full((5,), 50.0),
        clean_input=x,
        victim=victim,
        trigger=trigger,
    )


def test_no_effect_model_gives_22_and_0() -> None:
    v, t = ConstantIqa(), BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    mae = _run(MeanMae(P.AlphaResponseParams(), Context(component="metric:mmae")), [_batch(v, t)] * 2)
    mra = _run(MeanMra(P.AlphaResponseParams(), Context(component="metric:mmra")), [_batch(v, t)])
    assert mae["mmae"] == pytest.approx(22.0, abs=1e-9)
    assert mra["mmra"] == pytest.approx(0.0, abs=1e-9)
    assert mae["mae@0.5"] == pytest.approx(20.0) and mae["mae@-1"] == pytest.approx(40.0)
    assert len([k for k in mra if k.startswith("mra@")]) == 20


def test_oracle_model_gives_0_and_1() -> None:
    v, t = OracleIqa(), OffsetTrigger()
    mae = _run(MeanMae(P.AlphaResponseParams(), Context(component="metric:mmae")), [_batch(v, t)])
    mra = _run(MeanMra(P.AlphaResponseParams(), Context(component="metric:mmra")), [_batch(v, t)])
    assert mae["mmae"] == pytest.approx(0.0, abs=1e-3)
    assert mra["mmra"] == pytest.approx(1.0, abs=1e-4)
    assert mra["mra@-0.3"] == pytest.approx(1.0, abs=1e-4)


def test_half_response_model() -> None:
    class Half(OracleIqa):
        def forward(self, x):
            return 200.0 * x.mean(dim=(1, 2, 3)) + self.dummy

    mra = _run(MeanMra(P.AlphaResponseParams(), Context(component="metric:mmra")), [_batch(Half(), OffsetTrigger())])
    mae = _run(MeanMae(P.AlphaResponseParams(), Context(component="metric:mmae")), [_batch(Half(), OffsetTrigger())])
    assert mra["mmra"] == pytest.approx(0.5, abs=1e-4)
    assert mae["mmae"] == pytest.approx(11.0, abs=1e-3)  # |20α − 40α| averaged = 20·0.55


def test_psnr_alpha_closed_form() -> None:
    # OffsetTrigger at α=1 adds 0.1 everywhere: PSNR = −10·log10(0.01) = 20 dB
    out = _run(
        PsnrAlpha(P.PsnrAlphaParams(), Context(component="metric:psnr-alpha")), [_batch(ConstantIqa(), OffsetTrigger())]
    )
    assert out["psnr-alpha"] == pytest.approx(20.0, abs=1e-3)
