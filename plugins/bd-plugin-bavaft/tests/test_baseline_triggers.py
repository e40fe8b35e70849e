"""The baselines' triggers trained under BAvAFT's losses (the paper's comparison): with
bd-plugin-baselines installed, every attack step fine-tunes the encoder only, whatever the trigger."""

import pytest
import torch

pytest.importorskip("bd_plugin_baselines")

BASELINES = {
    "badnets": {"size": 0.1},
    "blended": {"alpha": 0.01},
    "ftrojan": {"variant": "mid50-high50"},
    "lira": {},
}


@pytest.fixture(scope="module")
def ctx():
    import bd_plugin_baselines.plugin as baselines
    import bd_plugin_bavaft.plugin as bavaft

    from bdcore.context import Context
    from bdcore.testing import make_host

    return Context(seed=0, registry=make_host([baselines, bavaft], toy=False).registry)


@pytest.mark.parametrize("loss", ["bavaft-psnr", "bavaft-bpp"])
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_trigger_under_bavaft_loss_trains_the_encoder_only(ctx, name, loss):
    import attrs

    torch.manual_seed(0)
    victim = ctx.build("victim", "compressai", {"model": "bmshj2018-factorized", "quality": 1, "n": 16, "m": 24})
    trigger = ctx.build("trigger", name, BASELINES[name])
    attack = ctx.build("attack_loss", loss, {"beta": 1.0})
    attack.ctx = attrs.evolve(attack.ctx, trigger=trigger)
    victim.trainable_parameters("attack")  # what the engine does: g_a trains, the rest is frozen
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the engine poisons under no_grad
        xp = trigger.inject_trigger(x).clamp(0, 1)
    assert float((xp - x).abs().max()) > 0
    out = attack.attack_loss(victim, {"input": x}, {"input": xp, "clean_input": x, "strength": torch.ones(2)})
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    encoder = [p for n, p in victim.net.named_parameters() if n.startswith("g_a.")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder)
    assert all(p.grad is None for n, p in victim.net.named_parameters() if not n.startswith("g_a."))
