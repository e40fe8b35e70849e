"""Model-level defenses: fine-tuning and fine-pruning."""

from __future__ import annotations

import pytest
import torch
from bd_plugin_baselines.defenses.finetune import FineTuning, finetune_steps
from bd_plugin_baselines.defenses.pruning import (
    FinePruning,
    PruningError,
    channel_activation,
    channels_to_prune,
    find_conv,
)
from bd_plugin_baselines.params_defenses import FinePruningParams, FineTuningParams
from defense_helpers import ListDataset, TinyDenoiser, defense_context, smooth_images
from torch import nn

from bdcore.context import Context
from bdcore.metrics.image import psnr


def _backdoored() -> TinyDenoiser:
    """A hand-built backdoor: channel 3 of conv1 fires only on a saturated white patch
    (local mean > 0.95, never on clean images clipped to ≤ 0.9) and drives the output to black."""
    m = TinyDenoiser(hidden=4)
    with torch.no_grad():
        m.conv1.weight.zero_()
        m.conv1.bias.zero_()
        for c in range(3):  # clean channels: pass the image through (active on clean data)
            m.conv1.weight[c, c, 1, 1] = 1.0
        m.conv1.weight[3] = 20.0 / 27.0  # 20·(local mean)
        m.conv1.bias[3] = -19.0  # > 0 only where the 3×3×3 mean exceeds 0.95
        m.conv_out.weight.zero_()
        m.conv_out.bias.zero_()
        m.conv_out.weight[:, 3] = -5.0  # the payload: black output where the trigger is
    return m


def _trigger(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, :, -5:, -5:] = 1.0
    return y


def test_find_conv_default_and_errors() -> None:
    m = TinyDenoiser()
    assert find_conv(m, None)[0] == "conv_out"
    assert find_conv(m, "conv1")[1] is m.conv1
    with pytest.raises(PruningError, match="conv layers: conv1, conv_out"):
        find_conv(m, "nope")
    with pytest.raises(PruningError, match=r"no nn\.Conv2d"):
        find_conv(nn.Sequential(nn.Linear(2, 2)), None)


def test_channel_activation_matches_hand_computation() -> None:
    m = TinyDenoiser(hidden=4)
    x = smooth_images(6)
    act = channel_activation(m, m.conv1, [x[:3], x[3:]], rank_by="relu")
    ref = torch.relu(m.conv1(x)).double().mean(dim=(0, 2, 3))
    torch.testing.assert_close(act, ref.detach(), rtol=1e-6, atol=1e-9)
    assert channels_to_prune(torch.tensor([3.0, 1.0, 2.0, 0.5]), 0.5).tolist() == [3, 1]
    assert channels_to_prune(torch.tensor([3.0, 1.0]), 0.0).numel() == 0


def test_fine_pruning_removes_a_dormant_backdoor_channel_without_clean_cost() -> None:
    clean = smooth_images(16)
    ctx = defense_context(ListDataset(clean))
    victim = _backdoored()
    x = smooth_images(4, seed=1)
    xt = _trigger(x)
    black = torch.zeros_like(x[:, :, -5:, -5:])
    with torch.no_grad():
        before_patch = victim(xt)[:, :, -5:, -5:].clamp(0, 1)
        clean_before = victim(x).clamp(0, 1)
    assert torch.allclose(before_patch[:, :, 1:-1, 1:-1], black[:, :, 1:-1, 1:-1])  # the backdoor works

    defense = FinePruning(FinePruningParams(layer="conv1", rate=0.25, fraction=1.0), Context())
    outcome = defense.defend(victim, ctx)
    defended = outcome.victim
    assert outcome.extra == {"pruned_channels": 1.0, "layer_channels": 4.0}
    assert torch.all(defended.conv1.weight[3] == 0) and defended.conv1.bias[3] == 0
    assert "conv1.weight" in defended.state_dict() and "conv1.weight_mask" not in defended.state_dict()
    with torch.no_grad():
        after_patch = defended(xt)[:, :, -5:, -5:].clamp(0, 1)
        clean_after = defended(x).clamp(0, 1)
    assert float(after_patch.mean()) > 0.9  # the white patch passes through: payload gone
    assert float(psnr(clean_after, clean_before).min()) >= 99.0  # the pruned channel was dormant: no clean cost
    assert victim.conv1.weight[3].abs().sum() > 0  # the attacked victim is untouched


def test_fine_pruning_with_finetuning_keeps_channels_zero_and_is_deterministic() -> None:
    clean = smooth_images(16)
    params = FinePruningParams(rate=0.5, finetune_steps=3, lr=1e-2, fraction=0.5, calib_batches=2)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        victim = TinyDenoiser(hidden=8)
        out = FinePruning(params, Context()).defend(victim, defense_context(ListDataset(clean, 0.05))).victim
        outs.append(out)
    pruned = (outs[0].conv_out.weight.flatten(1).abs().sum(1) == 0).sum()
    assert int(pruned) == 1  # rate 0.5 of conv_out's 3 output channels = 1
    for a, b in zip(outs[0].state_dict().values(), outs[1].state_dict().values()):
        assert torch.equal(a, b)


def test_fine_tuning_improves_clean_utility_of_a_damaged_model_and_leaves_victim() -> None:
    clean = smooth_images(32)
    ds = ListDataset(clean, noise=0.05)
    torch.manual_seed(0)
    victim = TinyDenoiser()
    with torch.no_grad():
        victim.conv_out.bias.fill_(0.3)  # a damaged model: a strong colour cast
    original = {k: v.clone() for k, v in victim.state_dict().items()}
    params = FineTuningParams(fraction=0.5, steps=25, lr=2e-2)
    res = [FineTuning(params, Context(seed=1)).defend(victim, defense_context(ds, seed=1)) for _ in range(2)]
    x, y = ds.noisy, ds.clean
    with torch.no_grad():
        before = float(psnr(victim(x).clamp(0, 1), y).mean())
        after = float(psnr(res[0].victim(x).clamp(0, 1), y).mean())
    assert after > before + 5.0
    assert res[0].extra["finetune_steps"] == 25 and res[0].extra["finetune_samples"] == 16
    for k, v in victim.state_dict().items():
        assert torch.equal(v, original[k])
    for a, b in zip(res[0].victim.state_dict().values(), res[1].victim.state_dict().values()):
        assert torch.equal(a, b)  # deterministic under the seed


def test_finetune_steps_from_epochs_and_params_validation() -> None:
    assert finetune_steps(10, 4, steps=None, epochs=2.0) == 5
    assert finetune_steps(10, 4, steps=7, epochs=None) == 7
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        FineTuningParams(steps=10, epochs=1.0)
    FineTuningParams(steps=None, epochs=1.0)
