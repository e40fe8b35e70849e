"""Table IV ablation switches of the trigger network: w/o topK selection, w/o patch-wise weight, K/N, and
the static loss (Eq. 5 instead of Eq. 7; ``dynamic = false``, covered in ``test_loss_forms.py``)."""

import pytest
import torch
from bd_plugin_bavaft.dct import frequency_indices, image_to_dct
from bd_plugin_bavaft.params import BavaftTriggerParams
from bd_plugin_bavaft.trigger import BavaftTrigger

from bdcore.context import Context
from bdcore.testing.contracts import TriggerContract


def _coefficient_change(params: BavaftTriggerParams, seed: int = 1) -> tuple[BavaftTrigger, torch.Tensor]:
    """The trigger's change of the block DCT, ``B×3×gh×gw×256`` (float64)."""
    t = BavaftTrigger(params, Context(seed=seed)).double()
    x = 0.25 + 0.5 * torch.rand(2, 3, 48, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        xp = t.apply(x, torch.ones(2, dtype=torch.float64), torch.Generator().manual_seed(0))
    return t, (image_to_dct(xp, quantize=False) - image_to_dct(x, quantize=False)).flatten(-2)


def _active_slots(diff: torch.Tensor) -> torch.Tensor:
    """Per image and channel, how many of the 256 coefficients the trigger changes in some block."""
    return (diff.abs().amax(dim=(2, 3)) > 1e-6).sum(-1)


@pytest.mark.parametrize("selection", ["learned", "robust"])
def test_without_topk_every_one_of_the_n_slots_carries_the_trigger(selection):
    base = {"norm": "none", "selection": selection, "scale": 1000.0}
    _, with_topk = _coefficient_change(BavaftTriggerParams(**base))
    t, without = _coefficient_change(BavaftTriggerParams(**base, topk=False))
    assert torch.all(_active_slots(with_topk) == 16)
    assert torch.all(_active_slots(without) == 64)
    active = (without.abs().amax(dim=(0, 1, 2, 3)) > 1e-6).nonzero().flatten().tolist()
    assert set(active) == set(t.indices.tolist())


def test_without_patch_weight_the_same_change_is_tiled_over_every_block():
    base = {"norm": "none", "scale": 1000.0}
    t, diff = _coefficient_change(BavaftTriggerParams(**base, patch_weight=False))
    assert t.weight is None and not any(k.startswith("weight.") for k in t.state_dict())
    # B×3×gh×gw×256: every block of an image carries the same coefficients (w = 1)
    torch.testing.assert_close(diff, diff[:, :, :1, :1].expand_as(diff), rtol=0, atol=1e-9)
    assert float(diff.abs().max()) > 1e-3
    _, weighted = _coefficient_change(BavaftTriggerParams(**base))
    spread = (weighted - weighted[:, :, :1, :1]).abs().max()
    assert float(spread) > 1e-3  # with the patch-wise weight the blocks differ


@pytest.mark.parametrize(("k", "n"), [(4, 16), (64, 256), (16, 64)])
def test_k_of_n_with_the_zigzag_mid_table(k, n):
    """Table IV "K = 4, N = 16" and "K = 64, N = 256" (N = 256: every coefficient of the 16×16 block)."""
    idx = frequency_indices("zigzag-mid", n)
    assert len(idx) == n == len(set(idx))
    if n == 256:
        assert sorted(idx) == list(range(256))
    _t, diff = _coefficient_change(BavaftTriggerParams(norm="none", scale=1000.0, table="zigzag-mid", k=k, n_freq=n))
    assert torch.all(_active_slots(diff) == k)


def test_odd_zigzag_mid_band_has_n_positions():
    assert len(frequency_indices("zigzag-mid", 15)) == 15


def test_table_sizes_are_validated():
    with pytest.raises(ValueError, match="64 positions"):
        BavaftTriggerParams(n_freq=16)  # the BAIQA table
    with pytest.raises(ValueError, match="256"):
        BavaftTriggerParams(table="zigzag-low", n_freq=256, k=4)  # DC excluded: 255 at most
    assert BavaftTriggerParams(table="zigzag-mid", n_freq=256, k=64).n_freq == 256


class TestNoPatchWeightContract(TriggerContract):
    params_cls = BavaftTriggerParams
    sizes = ((32, 32), (48, 64))

    def make(self):
        return BavaftTrigger(
            BavaftTriggerParams(norm="none", scale=20.0, topk=False, patch_weight=False), Context(seed=0)
        )

    def test_gradcheck(self):
        t = self.make().double()
        x = (0.25 + 0.5 * self.images(16, 16, torch.float64)[:1]).requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda i: t.inject_trigger(i, strength=0.5), (x,), eps=1e-6, atol=1e-4, fast_mode=True
        )


def test_robust_selection_with_the_trigger_numerator_keeps_k_slots():
    _t, diff = _coefficient_change(
        BavaftTriggerParams(norm="none", scale=1000.0, selection="robust", sensitivity="trigger")
    )
    assert torch.all(_active_slots(diff) == 16)
