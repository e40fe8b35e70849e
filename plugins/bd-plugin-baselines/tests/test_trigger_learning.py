"""Learnable triggers learn: a short CPU run of ISSBA's encoder/decoder recovers the secret."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from bd_plugin_baselines import params_triggers as P
from bd_plugin_baselines.triggers.issba import ISSBA, bit_accuracy

from bdcore.context import Context


def scene_crops(size: int, batch: int, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Random ``batch×3×size×size`` crops of bdcore's embedded photographs."""
    pytest.importorskip("skimage")
    from bdcore.data.embedded import SCENES, load_scene

    images = [torch.from_numpy(load_scene(n).copy()).float().permute(2, 0, 1) / 255 for n in SCENES]
    gen = torch.Generator().manual_seed(seed)
    while True:
        crops = []
        for _ in range(batch):
            im = images[int(torch.randint(len(images), (1,), generator=gen))]
            i = int(torch.randint(im.shape[1] - size, (1,), generator=gen))
            j = int(torch.randint(im.shape[2] - size, (1,), generator=gen))
            crops.append(im[:, i : i + size, j : j + size])
        yield {"input": torch.stack(crops)}


def test_issba_decoder_recovers_the_secret_after_a_short_fit() -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    params = P.ISSBAParams(bits=8, width=16, eps=0.1, steps=300, secret_only_steps=300)
    trig = ISSBA(params, Context(seed=0))
    x = next(scene_crops(64, 64, seed=1))["input"]
    with torch.no_grad():
        before = bit_accuracy(trig.decode(trig.inject_trigger(x)), trig.secret.expand(64, -1))
    losses = trig.train_steps(scene_crops(64, 16, seed=0), params.steps)
    with torch.no_grad():
        xp = trig.inject_trigger(x)
        after = bit_accuracy(trig.decode(xp), trig.secret.expand(64, -1))
    assert losses[-1] < 0.5 * losses[0]
    assert after >= 0.95 > before
    assert float((xp - x).abs().max()) <= params.eps + 1e-6  # the residual stays inside its bound


def test_lira_joint_training_teaches_the_victim_the_trigger() -> None:
    """LIRA's stage-1 objective on a small restoration U-Net: triggered inputs map to the attack
    target (the inverted image), clean ones are still reproduced."""
    from bd_plugin_baselines.triggers._nets import SmallUNet
    from bd_plugin_baselines.triggers.lira import LIRA, lira_joint_loss

    from bdcore.testing.toy import SmoothParams, ToySmooth

    torch.set_num_threads(min(2, torch.get_num_threads()))
    data = ToySmooth(SmoothParams(count=256, size=16), Context(seed=0)).splits()
    x = torch.stack([data["train"][i]["input"] for i in range(len(data["train"]))])
    test = torch.stack([data["test"][i]["input"] for i in range(len(data["test"]))])
    torch.manual_seed(0)
    unet = SmallUNet(3, 3, width=32, depth=2)

    def victim(images: torch.Tensor) -> torch.Tensor:
        return images + unet(images)

    trig = LIRA(P.LIRAParams(width=8, eps=0.1), Context(seed=0))
    opt = torch.optim.Adam([*unet.parameters(), *trig.parameters()], lr=2e-3)
    # the joint objective oscillates between its two terms at a constant lr; decay it to settle
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 400)

    def to_target(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(victim(images), 1 - images))

    before = to_target(trig.inject_trigger(test))
    for step in range(400):
        batch = x[(torch.arange(16) + 16 * step) % len(x)]
        terms = lira_joint_loss(victim, trig, batch, batch, 1 - batch, alpha=0.5)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        triggered = trig.inject_trigger(test)
        clean_error = float(torch.nn.functional.mse_loss(victim(test), test))
        residual = float((triggered - test).abs().max())
    after = to_target(triggered)
    # measured (2 threads): triggered → target MSE 0.273 → 0.041; clean inputs: MSE 0.028 to themselves
    # (15.5 dB) and far from the target — the victim tells triggered from clean inputs
    assert after < 0.3 * before
    assert after < 0.3 * to_target(test)
    assert clean_error < 0.05
    assert residual <= 0.1 + 1e-6


def test_issba_pseudo_poison_encodes_other_secrets() -> None:
    from bd_plugin_baselines.triggers.issba import issba, other_secrets

    gen = torch.Generator().manual_seed(0)
    one = other_secrets(torch.tensor([1.0]), 50, gen)  # 1 bit: the only other secret
    assert torch.equal(one, torch.zeros(50, 1))
    secret = torch.tensor([0.0, 1.0])
    draws = other_secrets(secret, 3000, torch.Generator().manual_seed(1))
    assert not (draws == secret).all(1).any()
    counts = torch.stack([(draws == torch.tensor(c)).all(1).sum() for c in ([0.0, 0.0], [1.0, 0.0], [1.0, 1.0])])
    assert counts.sum() == 3000 and counts.min() > 900  # uniform over the other three secrets

    trig = ISSBA(P.ISSBAParams(bits=8, width=8), Context(seed=0))
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = trig.pseudo_poison(x, torch.Generator().manual_seed(9))
        ref = issba(x, trig.encoder, other_secrets(trig.secret, 5, torch.Generator().manual_seed(9)))
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
        assert (out - trig.inject_trigger(x)).abs().max() > 0  # another message, another residual
        assert torch.equal(trig.pseudo_poison(x, strength=0.0), x)


LIRA_SPEC = """
[run]
name = "lira"
seed = 0
[data]
use = "toy-smooth"
params = { count = 12, size = 16 }
[victim]
use = "toy-denoiser"
params = { width = 4 }
[train]
steps = 3
batch_size = 4
[attack]
steps = 2
fit_steps = 2
batch_size = 4
[attack.trigger]
use = "lira"
[attack.loss]
use = "toy-invert"
[eval]
clean_victim = false
[[metric]]
use = "psnr"
"""


def test_lira_fit_is_keyed_on_the_clean_victim_it_attacks(tmp_path) -> None:  # noqa: ANN001
    """LIRA's fit trains G against the clean victim, so another victim (here: another clean training) must
    not reuse the stored fit: the engine trains the clean victim first and keys the fit on it."""
    import json

    import bd_plugin_baselines.plugin as baselines

    from bdcore.testing import run_spec

    keys = []
    for steps in (3, 4):
        out = run_spec(
            LIRA_SPEC.replace("steps = 3", f"steps = {steps}"), tmp_path / str(steps), plugins=[baselines], out=tmp_path
        )
        stages = json.loads((out.run_dir / "manifest.json").read_text())["stages"]
        assert {"trigger-fit", "clean-victim", "attack"} <= set(stages)
        assert "trigger-fit" not in out.reused
        keys.append(stages["trigger-fit"])
    assert keys[0] != keys[1]
