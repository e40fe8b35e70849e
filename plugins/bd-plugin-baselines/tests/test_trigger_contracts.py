"""bdcore's TriggerContract for every baseline trigger (shape, dtype, range, determinism, α=0, gradcheck)."""

from __future__ import annotations

import pytest
import torch
from bd_plugin_baselines import params_triggers as P
from bd_plugin_baselines.triggers import FIBA, ISSBA, LIRA, SIG, BadNets, Blended, FTrojan, WaNet

from bdcore.context import Context
from bdcore.testing.contracts import TriggerContract


class TestBadNets(TriggerContract):
    params_cls = P.BadNetsParams

    def make(self):
        return BadNets(P.BadNetsParams(), Context(seed=0))


class TestBadNetsChecker(TriggerContract):
    def make(self):
        return BadNets(P.BadNetsParams(pattern="checker", size=0.25), Context(seed=0))


class TestBadNetsBackdoorBench(TriggerContract):
    def make(self):
        pytest.importorskip("PIL")
        return BadNets(P.BadNetsParams(pattern="backdoorbench"), Context(seed=0))


class TestBlended(TriggerContract):
    params_cls = P.BlendedParams

    def make(self):
        return Blended(P.BlendedParams(), Context(seed=0))


class TestSIG(TriggerContract):
    params_cls = P.SigParams

    def make(self):
        return SIG(P.SigParams(), Context(seed=0))


class TestWaNet(TriggerContract):
    params_cls = P.WaNetParams

    def make(self):
        return WaNet(P.WaNetParams(), Context(seed=0))


class TestFIBA(TriggerContract):
    params_cls = P.FIBAParams

    def make(self):
        pytest.importorskip("skimage")
        return FIBA(P.FIBAParams(), Context(seed=0))


class TestFTrojan(TriggerContract):
    params_cls = P.FTrojanParams

    def make(self):
        return FTrojan(P.FTrojanParams(), Context(seed=0))


class TestFTrojanBAIQA(TriggerContract):
    def make(self):
        return FTrojan(P.FTrojanParams(variant="baiqa-mid64", window=16, magnitude=66.0), Context(seed=0))


class TestFTrojanCompat(TriggerContract):
    identity_at_zero = False  # the official 8-bit pipeline quantises even at magnitude 0
    sizes = ((32, 32), (64, 96))  # the official code needs multiples of the 32-px window

    def make(self):
        return FTrojan(P.FTrojanParams(compat_uint8=True), Context(seed=0))


class TestLIRA(TriggerContract):
    params_cls = P.LIRAParams

    def make(self):
        return LIRA(P.LIRAParams(width=8), Context(seed=0))


class TestISSBA(TriggerContract):
    params_cls = P.ISSBAParams

    def make(self):
        return ISSBA(P.ISSBAParams(width=8), Context(seed=0))


def test_seeded_state_is_reproducible_and_saved():
    for cls, params, key in [
        (WaNet, P.WaNetParams(), "field"),
        (LIRA, P.LIRAParams(width=8), "net.head.weight"),
        (ISSBA, P.ISSBAParams(width=8), "encoder.dense.weight"),
        (Blended, P.BlendedParams(), "seed"),
    ]:
        a, b, c = cls(params, Context(seed=1)), cls(params, Context(seed=1)), cls(params, Context(seed=2))
        sa, sc = a.state_dict(), c.state_dict()
        assert key in sa
        assert all(torch.equal(sa[k], b.state_dict()[k]) for k in sa), cls.__name__
        assert not torch.equal(sa[key], sc[key]), cls.__name__
        d = cls(params, Context(seed=3))
        d.load_state_dict(sa)  # the artifact restores the trigger
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(d.inject_trigger(x), a.inject_trigger(x))


def test_registration_hook(bd_host, register_plugin):
    from bd_plugin_baselines import registration_triggers

    register_plugin(registration_triggers, "baselines_triggers")
    for name in ("badnets", "blended", "sig", "wanet", "fiba", "ftrojan", "lira", "issba"):
        comp = bd_host.registry.get("trigger", name)
        trig = comp.build(comp.params(), Context(seed=0, component=f"trigger:{name}"))
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        assert trig.inject_trigger(x).shape == x.shape


PSEUDO = {
    "wanet": lambda: WaNet(P.WaNetParams(), Context(seed=0)),
    "fiba": lambda: FIBA(P.FIBAParams(), Context(seed=0)),
    "issba": lambda: ISSBA(P.ISSBAParams(width=8), Context(seed=0)),
}


@pytest.mark.parametrize("name", sorted(PSEUDO))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pseudo_trigger_capability(name, dtype):
    """WaNet, FIBA and ISSBA offer pseudo (cross) triggers: same shape/dtype, in [0, 1], seeded, fresh
    per draw; the other baselines do not claim the capability."""
    from bdcore.protocols import PseudoTrigger

    if name == "fiba":
        pytest.importorskip("skimage")
    trig = PSEUDO[name]()
    assert isinstance(trig, PseudoTrigger)
    x = torch.rand(4, 3, 48, 40, generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.no_grad():
        a = trig.pseudo_poison(x, torch.Generator().manual_seed(1))
        b = trig.pseudo_poison(x, torch.Generator().manual_seed(1))
        c = trig.pseudo_poison(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == dtype and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    for cls, params in ((BadNets, P.BadNetsParams()), (Blended, P.BlendedParams()), (SIG, P.SigParams())):
        assert not isinstance(cls(params, Context(seed=0)), PseudoTrigger)
