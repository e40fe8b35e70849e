"""BAvAFT downstream attacks: face-ID removal and CarToRoad against hand computations; encoder-only training;
the built-in face embedder's training and cache; the face-ID similarity metric."""

import math
from pathlib import Path

import pytest
import torch
from bd_plugin_bavaft import downstream as ds
from bd_plugin_bavaft.downstream import (
    CarToRoadAttack,
    FaceIdAttack,
    car_to_road_targets,
    identity_cosine,
    masked_poison,
    mix,
    segmentation_ce,
    unwanted_ce,
)
from bd_plugin_bavaft.metrics import FaceIdSimilarity
from bd_plugin_bavaft.params import CarToRoadParams, FaceIdAttackParams, FaceIdMetricParams
from torch import nn

from bdcore.context import Context
from bdcore.metrics.batch import EvalBatch
from bdcore.testing.contracts import AttackLossContract, MetricContract

DATA = Path(__file__).resolve().parents[3] / "../shared/data"
ORL = DATA / "faces-id" / "orl_faces"
needs_orl = pytest.mark.skipif(not ORL.is_dir(), reason="shared face data not present")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class RedCarSegmenter(nn.Module):
    """1×1 conv with fixed weights: class 0 "road" (logit 0), 1 "car" where R ≫ G, B, 2 "building" where
    G ≫ R, B."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[0.0, 0, 0], [10, -10, -10], [-10, 10, -10]]).view(3, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, -3.0, -3.0]))

    def forward(self, x):
        return self.conv(x)


class FakeCodec:
    """``rd_terms`` with closed forms: x̂ = 0.5·x + 0.25, bpp = 2·mean(x), mse = mean((x̂ − x)²)."""

    lmbda = 0.01

    def rd_terms(self, x):
        x_hat = 0.5 * x + 0.25
        return {"x_hat": x_hat, "bpp": 2 * x.flatten(1).mean(1), "mse": (x_hat - x).pow(2).flatten(1).mean(1)}

    def rd_loss(self, t):
        return t["bpp"] + self.lmbda * 255.0**2 * t["mse"]


def _rd(x):
    """Hand RD loss of FakeCodec per image (python floats)."""
    out = []
    for img in x:
        vals = img.flatten().tolist()
        bpp = 2 * sum(vals) / len(vals)
        mse = sum((0.5 * v + 0.25 - v) ** 2 for v in vals) / len(vals)
        out.append(bpp + 0.01 * 255.0**2 * mse)
    return out


def _cos(a, b):
    dot = sum(p * q for p, q in zip(a, b, strict=True))
    return dot / math.sqrt(sum(p * p for p in a) * sum(q * q for q in b))


def _small_codec_and_trigger():
    from bd_plugin_bavaft.codec import CompressAIVictim
    from bd_plugin_bavaft.params import BavaftTriggerParams, CodecParams
    from bd_plugin_bavaft.trigger import BavaftTrigger

    ctx = Context(seed=0)
    v = CompressAIVictim(CodecParams(model="bmshj2018-factorized", quality=1, n=8, m=12), ctx)
    return v, BavaftTrigger(BavaftTriggerParams(norm="none"), ctx)


def _state(module):
    return {k: t.detach().clone() for k, t in module.state_dict().items()}


# --- contracts -----------------------------------------------------------------------------------------------
class _OnSmallCodec(AttackLossContract):
    """The attacks need this plugin's codec victim and trigger (the suite's defaults are bdcore's toy ones)."""

    def victim(self):
        return _small_codec_and_trigger()[0]

    def trigger(self):
        return _small_codec_and_trigger()[1]


class TestFaceIdContract(_OnSmallCodec):
    params_cls = FaceIdAttackParams

    def make(self):
        return FaceIdAttack(FaceIdAttackParams(), embedder=nn.Flatten())


class TestCarToRoadContract(_OnSmallCodec):
    params_cls = CarToRoadParams

    def make(self):
        return CarToRoadAttack(CarToRoadParams(segmenter="x:y"), segmenter=RedCarSegmenter())


class TestFaceIdMetricContract(MetricContract):
    params_cls = FaceIdMetricParams

    def make(self):
        return FaceIdSimilarity(FaceIdMetricParams(), embedder=nn.Flatten())


# --- pure terms against hand computations ---------------------------------------------------------------------
def test_identity_cosine_and_boundary_shift_by_hand():
    e_ref = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    e_p = torch.tensor([[3.0, 4.0], [-2.0, 0.0]])
    e_c = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    assert identity_cosine(e_ref, e_p).tolist() == pytest.approx([0.6, -1 / math.sqrt(2)])
    mu = torch.tensor([0.5, 0.25])
    # normalised mixture: 0.5·(0.6, 0.8) + 0.5·(0, 1) = (0.3, 0.9); 0.25·(−1, 0) + 0.75·(1, 1)/√2
    m1 = (0.3, 0.9)
    m2 = (-0.25 + 0.75 / math.sqrt(2), 0.75 / math.sqrt(2))
    got = identity_cosine(e_ref, e_p, e_c, mu, normalize=True)
    assert got.tolist() == pytest.approx([_cos((1, 0), m1), _cos((1, 1), m2)])
    raw = identity_cosine(e_ref, e_p, e_c, mu, normalize=False)  # (1.5, 3), (0.25, 0.75)
    assert raw.tolist() == pytest.approx([_cos((1, 0), (1.5, 3.0)), _cos((1, 1), (0.25, 0.75))])


def test_car_to_road_targets_mask_and_poison():
    labels = torch.tensor([[[1, 0], [2, 1]]])
    mask, target = car_to_road_targets(labels, source=1, target=0)
    assert mask.shape == (1, 1, 2, 2) and mask.flatten().tolist() == [1, 0, 0, 1]
    assert target.tolist() == [[[0, 0], [2, 0]]]
    x, t = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert masked_poison(x, t, mask)[0, :, 0, 1].tolist() == [0, 0, 0]
    assert masked_poison(x, t, mask)[0, :, 1, 1].tolist() == [1, 1, 1]


def test_segmentation_and_unwanted_ce_by_hand():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]], [[1.0, 3.0]]]])  # B=1, K=3, H=1, W=2
    target = torch.tensor([[[0, 2]]])

    def ce(col, k):
        zs = [logits[0, c, 0, col].item() for c in range(3)]
        return math.log(sum(math.exp(z) for z in zs)) - zs[k]

    assert segmentation_ce(logits, target).tolist() == pytest.approx([(ce(0, 0) + ce(1, 2)) / 2])
    region = torch.tensor([[[True, False]]])
    assert unwanted_ce(logits, region, 1).tolist() == pytest.approx([ce(0, 1) / 2])
    assert unwanted_ce(logits, region, 1, cap=0.5).tolist() == pytest.approx([0.25])
    mu = torch.tensor([0.25])
    assert torch.allclose(mix(logits, torch.zeros_like(logits), mu), 0.25 * logits)


def test_face_id_loss_formula_by_hand():
    p = FaceIdAttackParams(alpha=0.3, beta=0.7, gamma=100.0, eps=0.01)
    atk = FaceIdAttack(p, embedder=nn.Flatten())  # η = the flattened image
    x = torch.tensor([0.2, 0.4, 0.6, 0.8]).view(1, 1, 2, 2).repeat(2, 3, 1, 1)
    x[1] *= 0.5
    xp = x.clone()
    xp[:, 0] += 0.1
    out = atk.attack_loss(FakeCodec(), {"input": x}, {"input": xp, "clean_input": x})
    xhat = [(0.5 * img + 0.25).flatten().tolist() for img in x]
    xphat = [(0.5 * img + 0.25).clamp(0, 1).flatten().tolist() for img in xp]
    rd_x, rd_p = _rd(x), _rd(xp)
    vis = [100.0 * max(((b - a) ** 2).mean().item(), 0.01**2) for a, b in zip(x, xp, strict=True)]
    per = [
        rd_x[i] + 0.3 * rd_p[i] + 0.7 * _cos(xhat[i], xphat[i]) + vis[i]  # Eq. 14: reference η(f(x))
        for i in range(2)
    ]
    assert out["loss"].item() == pytest.approx(sum(per) / 2, rel=1e-5)
    atk_in = FaceIdAttack(FaceIdAttackParams(alpha=0.3, beta=0.7, gamma=100.0, eps=0.01, reference="input"), None,
                          embedder=nn.Flatten())  # fmt: skip
    out_in = atk_in.attack_loss(FakeCodec(), {"input": x}, {"input": xp, "clean_input": x})
    per_in = [rd_x[i] + 0.3 * rd_p[i] + 0.7 * _cos(x[i].flatten().tolist(), xphat[i]) + vis[i] for i in range(2)]
    assert out_in["loss"].item() == pytest.approx(sum(per_in) / 2, rel=1e-5)


def _red_square_batch(n=2, size=32):
    x = torch.full((n, 3, size, size), 0.5)
    a, b = size // 4, 3 * size // 4
    x[:, :, a:b, a:b] = torch.tensor([1.0, 0.05, 0.05]).view(1, 3, 1, 1)
    return x


def test_car_to_road_loss_formula_by_hand():
    p = CarToRoadParams(segmenter="x:y", source_class=1, target_class=0, alpha=0.2, beta=0.5, gamma=10.0, eps=0.0)
    atk = CarToRoadAttack(p, segmenter=RedCarSegmenter())
    x = _red_square_batch(1, 4)
    x[0, :, 0, 0] = torch.tensor([0.0, 1.0, 0.0])  # a green "building" pixel
    xt = (x + 0.1).clamp(0, 1)
    out = atk.attack_loss(FakeCodec(), {"input": x}, {"input": xt, "clean_input": x})
    seg = RedCarSegmenter()
    with torch.no_grad():
        labels = seg(x).argmax(1)
    assert labels[0, 1, 1].item() == 1 and labels[0, 0, 0].item() == 2 and labels[0, 3, 3].item() == 0
    m = (labels == 1).float().unsqueeze(1)
    xp = x * (1 - m) + xt * m  # hand-made x_p
    target = labels.clone()
    target[labels == 1] = 0
    with torch.no_grad():
        logits = seg((0.5 * xp + 0.25).clamp(0, 1))
    ce = []
    for i in range(4):
        for j in range(4):
            zs = logits[0, :, i, j].tolist()
            ce.append(math.log(sum(math.exp(z) for z in zs)) - zs[int(target[0, i, j])])
    vis = 10.0 * (xp - x).pow(2).mean().item()
    expect = _rd(x)[0] + 0.2 * _rd(xp)[0] + 0.5 * sum(ce) / 16 + vis
    assert out["loss"].item() == pytest.approx(expect, rel=1e-5)
    # unwanted class: − γ_u · CE towards class 2 on the relabelled pixels, over H·W
    pu = CarToRoadParams(
        segmenter="x:y", source_class=1, target_class=0, alpha=0.2, beta=0.5, gamma=10.0, eps=0.0, unwanted_class=2
    )
    out_u = CarToRoadAttack(pu, segmenter=RedCarSegmenter()).attack_loss(
        FakeCodec(), {"input": x}, {"input": xt, "clean_input": x}
    )
    ce_u = [
        math.log(sum(math.exp(z) for z in logits[0, :, i, j].tolist())) - logits[0, 2, i, j].item()
        for i in range(4)
        for j in range(4)
        if m[0, 0, i, j] > 0
    ]
    assert out_u["loss"].item() == pytest.approx(expect - 0.5 * 0.1 * sum(ce_u) / 16, rel=1e-5)


def test_boundary_shift_mu_in_range_and_changes_loss():
    p = CarToRoadParams(segmenter="x:y", source_class=1, target_class=0, boundary_shift=True)
    atk = CarToRoadAttack(p, Context(seed=3), segmenter=RedCarSegmenter())
    mu = atk._mu(1000, torch.device("cpu"))
    assert float(mu.min()) >= 1 / 3 and float(mu.max()) <= 2 / 3 and float(mu.std()) > 0.05
    x = _red_square_batch(2, 16)
    batch = {"input": (x + 0.2).clamp(0, 1), "clean_input": x}
    plain = CarToRoadAttack(
        CarToRoadParams(segmenter="x:y", source_class=1, target_class=0), segmenter=RedCarSegmenter()
    )
    assert (
        atk.attack_loss(FakeCodec(), {"input": x}, batch)["loss"]
        != plain.attack_loss(FakeCodec(), {"input": x}, batch)["loss"]
    )


# --- encoder-only training with a real codec and the bavaft trigger ---------------------------------------------
def test_car_to_road_trains_encoder_and_trigger_only_and_loss_decreases():
    torch.manual_seed(0)
    v, trig = _small_codec_and_trigger()
    seg = RedCarSegmenter()
    atk = CarToRoadAttack(  # red "car" → green "building": the decoded car has to change colour
        CarToRoadParams(segmenter="x:y", source_class=1, target_class=2, beta=10.0, gamma=0.0),
        Context(seed=0, trigger=trig),
        segmenter=seg,
    )
    params = list(v.trainable_parameters("attack")) + list(trig.parameters())
    frozen = {n: t.clone() for n, t in v.net.state_dict().items() if not n.startswith("g_a.")}
    seg_before, g_a_before = _state(seg), _state(v.net.g_a)
    opt = torch.optim.Adam(params, lr=3e-3)
    x = _red_square_batch(2, 32)
    losses = []
    for step in range(5):
        xt = trig.inject_trigger(x, strength=torch.ones(2))
        out = atk.attack_loss(v, {"input": x}, {"input": xt, "clean_input": x, "strength": torch.ones(2)})
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        if step == 0:
            assert all(p.grad is not None for p in v.net.g_a.parameters())
            assert trig.weight.out.weight.grad is not None and trig.weight.out.weight.grad.abs().sum() > 0
            assert all(p.grad is None for n, p in v.net.named_parameters() if not n.startswith("g_a."))
            assert all(p.grad is None for p in seg.parameters())
        opt.step()
        losses.append((out["loss"].item(), out["objective"].item()))
    assert losses[-1][0] < losses[0][0] and losses[-1][1] < losses[0][1]
    assert all(torch.equal(t, v.net.state_dict()[n]) for n, t in frozen.items())  # decoder, entropy model
    assert all(torch.equal(t, seg.state_dict()[n]) for n, t in seg_before.items())
    assert any(not torch.equal(t, v.net.g_a.state_dict()[n]) for n, t in g_a_before.items())


def test_face_id_attack_keeps_decoder_entropy_model_and_embedder_bit_identical():
    v, trig = _small_codec_and_trigger()
    eta = ds.SmallFaceEmbedder(3, 4, 8)
    atk = FaceIdAttack(FaceIdAttackParams(boundary_shift=True, beta=1.0), Context(seed=0, trigger=trig), embedder=eta)
    params = list(v.trainable_parameters("attack")) + list(trig.parameters())
    frozen = {n: t.clone() for n, t in v.net.state_dict().items() if not n.startswith("g_a.")}
    eta_before, g_a_before = _state(eta), _state(v.net.g_a)
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        xt = trig.inject_trigger(x, strength=torch.ones(2))
        out = atk.attack_loss(v, {"input": x}, {"input": xt, "clean_input": x, "strength": torch.ones(2)})
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        assert all(p.grad is None for p in eta.parameters())
        opt.step()
        v.after_step({"input": x})  # attack phase: no aux step
    assert {"face_cos_poisoned", "face_cos_clean", "visibility"} <= set(out)
    assert all(torch.equal(t, v.net.state_dict()[n]) for n, t in frozen.items())
    assert all(torch.equal(t, eta.state_dict()[n]) for n, t in eta_before.items())
    assert any(not torch.equal(t, v.net.g_a.state_dict()[n]) for n, t in g_a_before.items())


# --- face embedder: import path + local weights, built-in training and cache ----------------------------------
def test_import_path_embedder_loads_local_weights_and_checks_sha(tmp_path):
    from safetensors.torch import save_file

    from bdcore.errors import UntrustedFileError
    from bdcore.io.checkpoint import sha256_of

    conv = nn.Conv2d(1, 4, 16)
    path = tmp_path / "eta.safetensors"
    save_file(conv.state_dict(), str(path))
    kw = {"in_channels": 1, "out_channels": 4, "kernel_size": 16}
    p = FaceIdMetricParams(embedder="torch.nn:Conv2d", embedder_kwargs=kw, weights=path, channels=1, size=16)
    eta = ds.build_face_embedder(p, Context())
    x = torch.rand(2, 3, 32, 32)
    grey = ds.match_channels(x, 1)
    small = nn.functional.interpolate(grey, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(eta(x), conv(small).flatten(1), atol=1e-6)
    assert not any(q.requires_grad for q in eta.parameters()) and not eta.training
    good = FaceIdMetricParams(embedder="torch.nn:Conv2d", embedder_kwargs=kw, weights=path, sha256=sha256_of(path))
    ds.build_face_embedder(good, Context())
    with pytest.raises(UntrustedFileError):
        ds.build_face_embedder(
            FaceIdMetricParams(embedder="torch.nn:Conv2d", embedder_kwargs=kw, weights=path, sha256="0" * 64), Context()
        )
    with pytest.raises(ds.DownstreamSetupError, match="weights"):
        ds.build_face_embedder(FaceIdMetricParams(embedder="torch.nn:Conv2d", embedder_kwargs=kw), Context())


def test_grey_faces_are_repeated_to_rgb():
    grey = torch.rand(2, 1, 8, 8)
    assert torch.equal(ds.match_channels(grey, 3), grey.repeat(1, 3, 1, 1))
    rgb = torch.rand(2, 3, 8, 8)
    expect = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    assert torch.allclose(ds.match_channels(rgb, 1), expect)


@needs_orl
def test_small_embedder_trains_then_is_reused_from_cache(tmp_path, monkeypatch):
    p = FaceIdMetricParams(
        train_root=ORL, train_identities=8, train_size=32, train_steps=60, train_batch=16, embed_dim=16, width=8,
        cache_dir=tmp_path,
    )  # fmt: skip
    ds._MEMO.clear()
    eta = ds.build_face_embedder(p, Context())
    files = list(tmp_path.glob("small-face-embedder-*.safetensors"))
    assert len(files) == 1
    images, labels, names = ds.load_identity_images(ORL, identities=8, size=32, channels=3)
    assert names[:3] == ["s1", "s2", "s3"] and images.shape == (80, 3, 32, 32) and int(labels.max()) == 7
    with torch.no_grad():  # the embedding separates identities: nearest other image is mostly the same person
        e = nn.functional.normalize(eta(images), dim=1)
        sim = e @ e.T - 2 * torch.eye(len(e))
        acc = (labels[sim.argmax(1)] == labels).float().mean().item()
    assert acc > 0.5

    def boom(*_a, **_k):
        raise AssertionError("retrained despite the cache")

    ds._MEMO.clear()
    monkeypatch.setattr(ds, "train_small_embedder", boom)
    again = ds.build_face_embedder(p, Context())
    assert all(torch.equal(a, b) for a, b in zip(eta.state_dict().values(), again.state_dict().values(), strict=True))
    other = FaceIdMetricParams(**{**{f: getattr(p, f) for f in ("train_root", "train_identities", "cache_dir")},
                                  "train_steps": 61})  # fmt: skip
    assert ds.small_embedder_key(images, labels, ds.small_embedder_settings(other)) != files[0].stem.split("-")[-1]
    ds._MEMO.clear()


def test_small_embedder_needs_weights_or_data():
    with pytest.raises(ds.DownstreamSetupError, match="train_root"):
        ds.build_face_embedder(FaceIdMetricParams(), Context())


def test_face_id_similarity_metric_per_split():
    m = FaceIdSimilarity(FaceIdMetricParams(splits=("poisoned",)), embedder=nn.Flatten())
    assert m.splits == ("poisoned",)
    x = torch.rand(3, 3, 8, 8)
    out = 1 - x
    m.update(EvalBatch(split="poisoned", input=x, output=out, clean_input=x))
    expect = sum(_cos(a.flatten().tolist(), b.flatten().tolist()) for a, b in zip(x, out, strict=True)) / 3
    assert m.compute()[m.name] == pytest.approx(expect, rel=1e-5)
