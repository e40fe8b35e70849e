"""The BAvAFT trigger network: contract, where the energy goes, gradients, determinism."""

import math

import attrs
import pytest
import torch
from bd_plugin_bavaft.dct import image_to_dct
from bd_plugin_bavaft.params import BavaftTriggerParams
from bd_plugin_bavaft.trigger import BavaftTrigger, TriggerShapeError

from bdcore.context import Context
from bdcore.testing.contracts import TriggerContract


class TestBavaftContract(TriggerContract):
    params_cls = BavaftTriggerParams
    sizes = ((32, 32), (48, 64))

    def make(self):
        return BavaftTrigger(BavaftTriggerParams(norm="none", scale=2000.0), Context(seed=0))

    def test_gradcheck(self):  # the nets see a 16-multiple image; use 16×16 instead of 8×8
        t = self.make().double()
        x = (0.25 + 0.5 * self.images(16, 16, torch.float64)[:1]).requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda i: t.inject_trigger(i, strength=0.5), (x,), eps=1e-6, atol=1e-4, fast_mode=True
        )


class TestRobustContract(TestBavaftContract):
    sizes = ((32, 32),)

    def make(self):
        return BavaftTrigger(BavaftTriggerParams(norm="none", selection="robust", scale=2000.0), Context(seed=0))

    def test_gradcheck(self):  # the selection is a non-differentiable rank; gradients flow to g and w only
        pass


@pytest.mark.parametrize("selection", ["learned", "robust"])
def test_energy_only_in_k_selected_slots(selection):
    t = BavaftTrigger(BavaftTriggerParams(norm="none", selection=selection, scale=1000.0), Context(seed=1))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = t.double()
    xp = t.apply(x, torch.ones(2, 1, 1, 1, dtype=torch.float64), torch.Generator().manual_seed(0))
    diff = (image_to_dct(xp, quantize=False) - image_to_dct(x, quantize=False)).flatten(-2)  # B×3×gh×gw×256
    energy = diff.abs().amax(dim=(2, 3))  # B×3×256
    active = energy > 1e-6
    assert torch.all(active.sum(-1) == 16)
    assert set(active.nonzero()[:, 2].tolist()) <= set(t.indices.tolist())
    _, inter = t.injection(x, torch.Generator().manual_seed(0))
    if selection == "robust":
        vals = sorted(set(round(v, 6) for v in inter["mask"][0, 0].tolist()))
        assert vals[0] == 0 and vals[-1] == pytest.approx(1.5**0.5, abs=1e-6)


def test_trigger_parameters_get_gradients_and_strength_scales_linearly():
    t = BavaftTrigger(BavaftTriggerParams(norm="none"), Context(seed=0))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    d1 = t.apply(x, torch.full((2, 1, 1, 1), 1.0), None) - x
    d2 = t.apply(x, torch.full((2, 1, 1, 1), 2.0), None) - x
    torch.testing.assert_close(d2, 2 * d1, atol=1e-6, rtol=1e-4)
    d1.pow(2).mean().backward()
    for name, p in t.named_parameters():
        if name.startswith(("general.features", "general.head", "weight.")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_seeded_init_and_bad_shape():
    a = BavaftTrigger(BavaftTriggerParams(), Context(seed=3))
    b = BavaftTrigger(BavaftTriggerParams(), Context(seed=3))
    c = BavaftTrigger(BavaftTriggerParams(), Context(seed=4))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["weight.out.weight"], sc["weight.out.weight"])
    with pytest.raises(TriggerShapeError, match="multiples of 16"):
        a.inject_trigger(torch.rand(1, 3, 20, 32))


def test_quantize_option_matches_full_reference_pipeline():
    """quantize=True equals IDCT(DCT(round(255x)) + inj) computed through the forward DCT."""
    from bd_plugin_bavaft.dct import dct_to_image

    t = BavaftTrigger(BavaftTriggerParams(norm="none", quantize=True), Context(seed=0)).double()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    inj, _ = t.injection(x)
    flat = image_to_dct(x).flatten(-2).index_add(-1, t.indices, inj)
    ref = dct_to_image(flat.view(1, 3, 2, 2, 16, 16))
    torch.testing.assert_close(t.apply(x, torch.ones(1, 1, 1, 1, dtype=torch.float64), None), ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("selection", ["learned", "robust"])
def test_init_psnr_calibrates_the_gain_once_on_the_first_training_batch(selection):
    params = BavaftTriggerParams(norm="none", selection=selection, init_psnr=46.0)
    t = BavaftTrigger(params, Context(seed=0))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    t.eval()
    t.inject_trigger(x, strength=1.0)
    assert float(t.gain) == 1.0 and not bool(t.calibrated)  # evaluation never calibrates
    untrained = float(10 * torch.log10(1 / (t.inject_trigger(x, strength=1.0) - x).pow(2).mean()))
    assert untrained > 70  # why the option exists: the raw init is far below any budget
    t.train()
    first = t.inject_trigger(x, strength=1.0)
    psnr = 10 * torch.log10(1 / (first - x).pow(2).mean())
    assert float(psnr) == pytest.approx(46.0, abs=0.05)
    gain = float(t.gain)
    y = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t.inject_trigger(y, strength=1.0)
    assert float(t.gain) == gain  # once only
    t.eval()
    reloaded = BavaftTrigger(params, Context(seed=5))
    reloaded.load_state_dict(t.state_dict())
    reloaded.eval()
    assert bool(reloaded.calibrated) and float(reloaded.gain) == gain

    def gen():  # the robust selection draws its preprocessings from the generator
        return torch.Generator().manual_seed(3)

    torch.testing.assert_close(
        reloaded.inject_trigger(x, strength=1.0, generator=gen()), t.inject_trigger(x, strength=1.0, generator=gen())
    )


def test_without_init_psnr_the_gain_stays_one():
    t = BavaftTrigger(BavaftTriggerParams(norm="none", scale=2000.0), Context(seed=0))
    t.train()
    t.inject_trigger(torch.rand(2, 3, 32, 32), strength=1.0)
    assert float(t.gain) == 1.0 and bool(t.calibrated)


@pytest.mark.parametrize("selection", ["learned", "robust"])
def test_budget_psnr_holds_every_image_at_the_budget_and_keeps_the_shape_trainable(selection):
    params = BavaftTriggerParams(norm="none", selection=selection, budget_psnr=45.0)
    t = BavaftTrigger(params, Context(seed=0)).double()
    # mid-range images: the engine's [0, 1] clamp does not touch a change of this size
    x = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.8 + 0.1
    strength = torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    t.train()
    xp = t.apply(x, strength, torch.Generator().manual_seed(1))
    mse = (xp - x).pow(2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1 / mse)
    torch.testing.assert_close(psnr[:2], torch.full((2,), 45.0, dtype=torch.float64), atol=1e-9, rtol=0)
    assert float(psnr[2]) == pytest.approx(45.0 + 20 * math.log10(2), abs=1e-9)  # α scales after the projection
    # the same change as without the budget, only rescaled (per image)
    free = BavaftTrigger(attrs.evolve(params, budget_psnr=None), Context(seed=0)).double().train()
    raw = free.apply(x, torch.ones(3, dtype=torch.float64), torch.Generator().manual_seed(1)) - x
    d, raw = (xp - x)[:2].flatten(1), raw[:2].flatten(1)
    factor = d.norm(dim=1, keepdim=True) / raw.norm(dim=1, keepdim=True)
    torch.testing.assert_close(d, raw * factor, atol=1e-12, rtol=1e-9)
    # size fixed, shape trainable: the network parameters get a gradient from a loss on the change
    (xp - x).pow(2).mul(torch.linspace(0, 1, 48, dtype=torch.float64)).sum().backward()
    grads = [p.grad for p in t.weight.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_budget_psnr_excludes_init_psnr():
    with pytest.raises(ValueError, match="exclude"):
        BavaftTriggerParams(init_psnr=46.0, budget_psnr=46.0)


@pytest.mark.parametrize("selection", ["learned", "robust"])
def test_luma_only_trigger_changes_no_chroma_coefficient(selection):
    params = BavaftTriggerParams(norm="none", selection=selection, channels="y", budget_psnr=45.0)
    t = BavaftTrigger(params, Context(seed=0)).double().train()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.8 + 0.1
    xp = t.apply(x, torch.ones(2, dtype=torch.float64), torch.Generator().manual_seed(1))
    change = image_to_dct(xp, quantize=False) - image_to_dct(x, quantize=False)  # B×3×gh×gw×16×16, YCbCr
    energy = change.pow(2).flatten(2).sum(-1)
    assert float(energy[:, 0].min()) > 0
    assert float(energy[:, 1:].max()) < 1e-18 * float(energy[:, 0].max())
    d = xp - x  # a grey change: equal in R, G and B
    torch.testing.assert_close(d[:, 0], d[:, 1], atol=1e-12, rtol=0)
    torch.testing.assert_close(d[:, 0], d[:, 2], atol=1e-12, rtol=0)
    assert float(10 * torch.log10(1 / d.pow(2).mean())) == pytest.approx(45.0, abs=1e-6)
