"""The CompressAI victim: real bitstream bpp, RD loss, encoder-only threat model, weights."""

import math

import pytest
import torch
from bd_plugin_bavaft.codec import CompressAIVictim, pad64
from bd_plugin_bavaft.params import LAMBDAS, CodecParams

from bdcore.context import Context


def small(model="bmshj2018-factorized", seed=0, **kw):
    return CompressAIVictim(CodecParams(model=model, quality=1, n=32, m=48, **kw), Context(seed=seed))


@pytest.fixture
def images():
    return torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("model", ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean"])
def test_real_bpp_equals_bytes_over_pixels(model, images):
    v = small(model)
    out = v.predict(images)
    assert out["output"].shape == images.shape and out["output"].min() >= 0 and out["output"].max() <= 1
    # independent: per image, compress the 64-padded image alone and count the bytes
    v.net.eval()
    for i in range(images.shape[0]):
        xp, _ = pad64(images[i : i + 1])
        enc = v.net.compress(xp)
        nbytes = sum(len(s[0]) for s in enc["strings"])
        assert out["bpp"][i].item() == pytest.approx(8.0 * nbytes / (48 * 40), rel=1e-12)
    assert torch.all(out["bpp_est"] > 0)


@pytest.mark.parametrize("model", ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "cheng2020-anchor"])
def test_estimated_bpp_from_compress_latents_equals_a_full_forward(model, images):
    """predict's likelihood bpp reuses compress's latents; it equals CompressAI's own forward pass."""
    from bd_plugin_bavaft.codec import likelihood_bpp

    v = small(model)
    out = v.predict(images)
    xp, _ = pad64(images)
    v.eval()  # predict restores training mode; CompressAI's eval forward rounds instead of adding noise
    with torch.no_grad():
        ref = likelihood_bpp(v.net(xp)["likelihoods"], 48 * 40)
    assert torch.allclose(out["bpp_est"].float(), ref, rtol=1e-5)
    assert isinstance(v.net.g_s, torch.nn.Module) and not isinstance(v.net.g_s, torch.nn.Identity)


def test_rd_loss_is_compressai_ratedistortionloss(images):
    from compressai.losses import RateDistortionLoss

    v = small()
    sq = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    ours = v.clean_loss({"input": sq})
    torch.manual_seed(5)
    out = v.net(sq)
    ref = RateDistortionLoss(lmbda=LAMBDAS[0])(out, sq)
    assert ours["loss"].item() == pytest.approx(ref["loss"].item(), rel=1e-5)
    assert v.lmbda == 0.0018


def test_init_is_seeded_and_leaves_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = small(seed=1), small(seed=1), small(seed=2)
    assert torch.equal(torch.rand(1), before)
    assert torch.equal(a.net.g_a[0].weight, b.net.g_a[0].weight)
    assert not torch.equal(a.net.g_a[0].weight, c.net.g_a[0].weight)


def test_encoder_only_threat_model_keeps_decoder_and_entropy_bit_identical(images):
    v = small("bmshj2018-hyperprior")
    v.predict(images)  # CDF tables built before the attack
    frozen = {n: t.detach().clone() for n, t in v.net.state_dict().items() if not n.startswith("g_a.")}
    enc0 = {n: t.detach().clone() for n, t in v.net.state_dict().items() if n.startswith("g_a.")}
    params = list(v.trainable_parameters("attack"))
    assert params and all(p.requires_grad for p in params)
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(3):
        loss = -v.clean_loss({"input": images})["loss"]  # any objective
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert v.after_step({"input": images}) is None  # no aux step in the attack phase
    v.predict(images)
    after = v.net.state_dict()
    for n, t in frozen.items():
        assert torch.equal(after[n], t), n
    assert any(not torch.equal(after[n], t) for n, t in enc0.items())


def test_clean_phase_aux_step_trains_quantiles(images):
    v = small()
    ps = list(v.trainable_parameters("clean"))
    assert all(not n.endswith("quantiles") for n, p in v.net.named_parameters() if any(p is q for q in ps))
    q0 = v.net.entropy_bottleneck.quantiles.detach().clone()
    logs = v.after_step({"input": images})
    assert "aux_loss" in logs and math.isfinite(logs["aux_loss"])
    assert not torch.equal(q0, v.net.entropy_bottleneck.quantiles)


def test_checkpoint_roundtrip_compressai_format(tmp_path, images):
    v = small("bmshj2018-hyperprior", seed=3)
    v.predict(images)  # populates the CDF buffers
    torch.save({"epoch": 1, "state_dict": v.net.state_dict()}, tmp_path / "ckpt.pth.tar")
    w = small("bmshj2018-hyperprior", seed=4)
    w.load_checkpoint(str(tmp_path / "ckpt.pth.tar"))
    a, b = v.predict(images), w.predict(images)
    assert torch.equal(a["bpp"], b["bpp"]) and torch.equal(a["output"], b["output"])
    w2 = small("bmshj2018-hyperprior", seed=5)
    w2.load_state_dict(v.state_dict())  # this victim's own state dict (net.* keys)
    assert torch.equal(w2.predict(images)["output"], a["output"])


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    from bd_plugin_bavaft.codec import CodecError

    torch.save({"state_dict": small("bmshj2018-factorized").net.state_dict()}, tmp_path / "f.pt")
    with pytest.raises(CodecError, match=r"f\.pt"):
        small("bmshj2018-hyperprior").load_checkpoint(str(tmp_path / "f.pt"))


def test_coding_batch_does_not_retrain_the_codec():
    """``coding_batch`` only batches ``compress``/``decompress``: the vanilla stage's key ignores it."""
    from bd_plugin_bavaft.params import CodecParams

    from bdcore.engine.store import stage_key

    assert stage_key({"v": CodecParams(coding_batch=1)}) == stage_key({"v": CodecParams(coding_batch=16)})
    assert stage_key({"v": CodecParams(quality=2)}) != stage_key({"v": CodecParams()})
