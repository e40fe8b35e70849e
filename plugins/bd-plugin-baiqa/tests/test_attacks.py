"""P-BAIQA α sampling and label shift; C-BAIQA strengths and PGD refinement."""

from __future__ import annotations

import pytest
import torch
from bd_plugin_baiqa import params as P
from bd_plugin_baiqa.attacks import CBaiqa, PBaiqa, pgd_targeted, sample_alpha
from bd_plugin_baiqa.trigger import BaiqaDct
from bd_plugin_baiqa.victims import SmallIqaNet

from bdcore.context import Context


def test_code_sampling_frequencies() -> None:
    a = sample_alpha(40000, "code", generator=torch.Generator().manual_seed(0))
    for level, p in zip((0.25, 0.5, 0.75, 1.0), (0.1, 0.2, 0.3, 0.4), strict=True):
        assert float((a.abs() == level).float().mean()) == pytest.approx(p, abs=0.01)
    assert float((a > 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    u = sample_alpha(40000, "uniform-discrete", generator=torch.Generator().manual_seed(0))
    assert float((u.abs() == 0.25).float().mean()) == pytest.approx(0.25, abs=0.01)
    c = sample_alpha(40000, "continuous", generator=torch.Generator().manual_seed(0))
    assert float(c.min()) >= -1 and float(c.max()) <= 1 and float(c.abs().mean()) == pytest.approx(0.5, abs=0.01)
    assert torch.equal(
        sample_alpha(9, "code", generator=torch.Generator().manual_seed(4)),
        sample_alpha(9, "code", generator=torch.Generator().manual_seed(4)),
    )


def test_p_baiqa_poison() -> None:
    atk = PBaiqa(P.PBaiqaParams(), Context())
    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    batch = {"input": torch.rand(6, 3, 32, 32), "target": torch.tensor([10.0, 20, 30, 40, 50, 60])}
    p = atk.poison(batch, trig, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(p["attack_target"], batch["target"] + 40 * p["strength"])
    assert set(p["strength"].abs().tolist()) <= {0.25, 0.5, 0.75, 1.0}
    torch.testing.assert_close(p["input"], trig.inject_trigger(batch["input"], strength=p["strength"]))


def test_c_baiqa_strength_and_labels() -> None:
    atk = CBaiqa(P.CBaiqaParams(pgd_steps=0), Context())
    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    batch = {"input": torch.rand(3, 3, 32, 32), "target": torch.tensor([10.0, 50.0, 92.0])}
    p = atk.poison(batch, trig, generator=None)
    torch.testing.assert_close(p["strength"], torch.tensor([-1.0, 0.0, 1.05]))
    torch.testing.assert_close(p["attack_target"], batch["target"])


def test_pgd_targeted_moves_toward_target_within_eps() -> None:
    torch.manual_seed(0)
    net = SmallIqaNet(P.SmallIqaParams(width=8, depth=2)).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = net(x)
        target = float(before.mean()) + 5.0
        adv = pgd_targeted(net, x, target, eps=8 / 255, step=2 / 255, steps=10)
        after = net(adv)
    assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert float((after - target).abs().mean()) < float((before - target).abs().mean())


def test_c_baiqa_refines_only_marked_training_samples() -> None:
    torch.manual_seed(0)
    net = SmallIqaNet(P.SmallIqaParams(width=8, depth=2))
    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    trig._surrogate[:] = [lambda: net]
    atk = CBaiqa(P.CBaiqaParams(pgd_steps=3), Context())
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    batch = {"input": x, "target": torch.tensor([30.0, 40, 60, 70]), "baiqa_train": torch.tensor([1, 0, 1, 0])}
    with torch.no_grad():  # the engine poisons under no_grad
        p = atk.poison(batch, trig)
    plain = trig.inject_trigger(x, strength=p["strength"])
    assert torch.equal(p["input"][1], plain[1]) and torch.equal(p["input"][3], plain[3])
    assert not torch.equal(p["input"][0], plain[0])
    assert torch.equal(p["clean_input"], x)


def test_c_baiqa_without_surrogate_fails_clearly() -> None:
    atk = CBaiqa(P.CBaiqaParams(), Context())
    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    from bd_plugin_baiqa.util import BaiqaError

    with pytest.raises(BaiqaError, match="fit_steps"):
        atk.poison({"input": torch.rand(1, 3, 16, 16), "target": torch.tensor([20.0])}, trig)


def test_c_baiqa_takes_the_engine_clean_victim_as_surrogate_for_any_trigger() -> None:
    """The engine gives attack losses ``ctx.clean_victim``; then no baiqa-dct fit is needed (e.g. FTrojan)."""
    torch.manual_seed(0)
    net = SmallIqaNet(P.SmallIqaParams(width=8, depth=2))
    calls: list[int] = []

    def clean_victim() -> SmallIqaNet:
        calls.append(1)
        return net

    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))  # never fitted: has no surrogate of its own
    atk = CBaiqa(P.CBaiqaParams(pgd_steps=3), Context(clean_victim=clean_victim))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        p = atk.poison({"input": x, "target": torch.tensor([30.0, 70.0])}, trig)
    plain = trig.inject_trigger(x, strength=p["strength"])
    assert calls and not torch.equal(p["input"], plain)
    assert float((p["input"] - plain).abs().max()) <= 2 / 255 + 1e-6 + 1 / 255  # PGD ball, then re-quantised


def test_c_baiqa_without_any_surrogate_names_both_routes() -> None:
    from bd_plugin_baiqa.util import BaiqaError

    class Additive:
        def inject_trigger(self, x, strength=None):  # noqa: ANN001, ANN202, ARG002
            return x

    with pytest.raises(BaiqaError, match="through the engine"):
        CBaiqa(P.CBaiqaParams(), Context()).refine(torch.rand(1, 3, 16, 16), Additive())
