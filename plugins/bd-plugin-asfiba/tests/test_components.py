"""Contracts and behaviour of the trigger, victims, data sources and the SF-I-Net fit."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import torch
from bd_plugin_asfiba.data import DegradedFaces
from bd_plugin_asfiba.params import (
    DegradedFacesParams,
    RestorationModuleParams,
    RRDBRestorerParams,
    SFINetParams,
    UNetRestorerParams,
)
from bd_plugin_asfiba.sfinet import build_sfinet, count_parameters
from bd_plugin_asfiba.trigger import SFINetTrigger
from bd_plugin_asfiba.victims import RestorationModule, RRDBRestorer, UNetRestorer

from bdcore.context import Context, derive_seed
from bdcore.data.loading import endless_batches
from bdcore.testing.contracts import TriggerContract, VictimContract

SHARED = Path(__file__).resolve().parents[3] / "../shared/data"


class TestSFINetContract(TriggerContract):
    params_cls = SFINetParams

    def make(self) -> SFINetTrigger:
        torch.manual_seed(0)
        return SFINetTrigger(SFINetParams(), Context(seed=0))


def _victim_batch() -> dict:
    gen = torch.Generator().manual_seed(0)
    return {"input": torch.rand(2, 3, 32, 32, generator=gen), "target": torch.rand(2, 3, 32, 32, generator=gen)}


class TestUNetContract(VictimContract):
    params_cls = UNetRestorerParams

    def batch(self) -> dict:
        return _victim_batch()

    def make(self) -> UNetRestorer:
        return UNetRestorer(UNetRestorerParams(base=8), Context())


class TestRRDBContract(VictimContract):
    params_cls = RRDBRestorerParams

    def batch(self) -> dict:
        return _victim_batch()

    def make(self) -> RRDBRestorer:
        return RRDBRestorer(RRDBRestorerParams(nf=8, nb=1, gc=8), Context())


def test_epsilon_bound_and_presets() -> None:
    eps = 4 / 255
    net, _dec = build_sfinet("small", eps)
    with torch.no_grad():
        torch.nn.init.normal_(net.tail[0].bias, std=10.0)  # saturate the residual
    x, t = torch.rand(2, 3, 32, 32) * 0.5 + 0.25, torch.rand(2, 3, 32, 32)
    y = net(x, t)
    assert float((y - x).abs().max()) <= eps + 1e-6
    assert float((y - x).abs().max()) > 0.9 * eps
    assert count_parameters(build_sfinet("paper", eps)[0]) == pytest.approx(13.27e6 / 4, rel=0.1)  # ≈ SFNet / 4
    assert count_parameters(net) < 400_000


def test_victims_keep_size_and_start_as_identity() -> None:
    x = torch.rand(2, 3, 30, 22)
    for v in (UNetRestorer(UNetRestorerParams(base=8)), RRDBRestorer(RRDBRestorerParams(nf=8, nb=1, gc=8))):
        torch.testing.assert_close(v(x), x)  # zero-initialised last layer: residual starts at 0


def test_restoration_module_adapter(tmp_path: Path) -> None:
    ref = UNetRestorer()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.01)
    ckpt = tmp_path / "w.pt"
    torch.save({"params_ema": {f"module.{k}": v for k, v in ref.state_dict().items()}}, ckpt)
    p = RestorationModuleParams(
        target="bd_plugin_asfiba.victims:UNetRestorer", checkpoint=Path("w.pt"), key="params_ema"
    )
    wrapped = RestorationModule(p, Context(spec_dir=tmp_path))
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(wrapped(x), ref(x))
    with pytest.raises(Exception, match="does not match"):
        RestorationModule(
            RestorationModuleParams(target="bd_plugin_asfiba.victims:RRDBRestorer", checkpoint=ckpt, key="params_ema"),
            Context(),
        )
    with pytest.raises(Exception, match="cannot import"):
        RestorationModule(RestorationModuleParams(target="surely_not_a_pkg:Net"), Context())
    p2 = RestorationModuleParams(
        target="torch.nn:Conv2d",
        kwargs={"in_channels": 3, "out_channels": 3, "kernel_size": 3, "padding": 1},
        input_range="signed",
    )
    conv = RestorationModule(p2, Context())
    torch.testing.assert_close(conv(x), (conv.net(x * 2 - 1) + 1) / 2)


def test_degraded_faces_embedded_seeded() -> None:
    ctx = Context(seed=3, component="data:degraded-faces")
    splits = DegradedFaces(DegradedFacesParams(size=32, crop=32, limit=10), ctx).splits()
    tr, te = splits["train"], splits["test"]
    a, b = tr.get(0, 11), tr.get(0, 11)
    assert torch.equal(a["input"], b["input"]) and not torch.equal(a["input"], tr.get(0, 12)["input"])
    assert a["input"].shape == a["target"].shape == (3, 32, 32)
    assert not torch.equal(a["input"], a["target"])
    assert torch.equal(te.get(0)["input"], te.get(0)["input"])


def test_sfinet_fit_reduces_eq3_loss() -> None:
    ctx = Context(seed=0, component="trigger:sf-i-net")
    splits = DegradedFaces(DegradedFacesParams(size=32, crop=32, limit=12), ctx).splits()

    class Fit:
        def __init__(self) -> None:
            self.ctx, self.steps, self.batch_size, self.train_set = ctx, 12, 4, splits["train"]

        def batches(self, *, generator_salt: object = "fit", shuffle: bool = True):  # noqa: ARG002
            return endless_batches(self.train_set, 4, seed=derive_seed(0, generator_salt))

    torch.manual_seed(0)
    trig = SFINetTrigger(SFINetParams(pool_size=32, lr=3e-3), ctx)
    from bd_plugin_asfiba.trigger import eq3_loss

    x = next(Fit().batches())["input"]
    t = trig._trigger_batch(4, 32, 32, torch.Generator().manual_seed(0))
    trig.net.train()
    before = float(eq3_loss(trig.net, trig.decoder, x, t, 0.5)["recover"])
    trig.fit(Fit())  # type: ignore[arg-type]
    trig.net.train()
    after = float(eq3_loss(trig.net, trig.decoder, x, t, 0.5)["recover"])
    assert after < before
    assert bool(trig.fitted) and trig.fit_stats["images_per_s"] > 0
    y = trig.inject_trigger(x)
    assert float((y - x).abs().max()) <= 4 / 255 + 1e-6
    p = trig.pseudo_poison(x, torch.Generator().manual_seed(0))
    assert not torch.equal(p, y)
    from bdcore.protocols import PseudoTrigger

    assert isinstance(trig, PseudoTrigger)  # what the asfiba loss looks for (Eq. 4 → Eq. 5's third term)


@pytest.mark.skipif(not (SHARED / "faces-hq").is_dir(), reason="shared/data/faces-hq not available")
def test_degraded_faces_from_folder() -> None:
    ctx = Context(seed=0, spec_dir=SHARED)
    splits = DegradedFaces(DegradedFacesParams(path=Path("faces-hq/ffhq_gpen"), size=64, crop=64), ctx).splits()
    s = splits["test"].get(0)
    assert s["input"].shape == (3, 64, 64) and s["target"].shape == (3, 64, 64)


@pytest.mark.skipif(not (SHARED / "faces-hq").is_dir(), reason="shared/data/faces-hq not available")
def test_degraded_faces_with_a_real_lq_test_folder() -> None:
    """``test_path``: the test folder's faces are tested as they are; training is unchanged (eval-only param)."""
    from bdcore.data.images import read_image
    from bdcore.data.sources import resize_short_side

    ctx = Context(seed=0, spec_dir=SHARED)
    params = DegradedFacesParams(path=Path("faces-hq/ffhq_gpen"), test_path=Path("faces-hq/celeba_hq_ddnm"), size=48)
    splits = DegradedFaces(params, ctx).splits()
    assert len(splits["train"]) == 8 and len(splits["test"]) == 8  # 0.8 of the 10 FFHQ faces train
    plain = DegradedFaces(attrs.evolve(params, test_path=None), ctx).splits()
    assert [plain["train"].get(i, 7)["target"].sum() for i in range(8)] == [
        splits["train"].get(i, 7)["target"].sum() for i in range(8)
    ]  # the same training faces with or without a test folder
    from bdcore.engine.store import canonical

    assert canonical(params) == canonical(attrs.evolve(params, test_path=None))  # so the same stage keys
    first = sorted((SHARED / "faces-hq/celeba_hq_ddnm").glob("*.png"))[0]
    s = splits["test"].get(0)
    expect = torch.from_numpy(resize_short_side(read_image(first, 3), 48).copy()).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(s["input"], expect, atol=0, rtol=0)  # the LQ face, not re-degraded
    assert torch.equal(s["input"], s["target"])
    t = splits["train"].get(0)
    assert not torch.equal(t["input"], t["target"])  # training faces are degraded
    limited = DegradedFaces(attrs.evolve(params, limit=3), ctx).splits()
    assert len(limited["train"]) == 2 and len(limited["test"]) == 3  # ``limit`` per folder
