"""Component tests: PGD, accuracy, facenet-small, olivetti data, the defenses with a tiny prior, the DDPM cache."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bd_plugin_diffpure.params import (
    AccuracyParams,
    ColorizeParams,
    FaceNetParams,
    LabelASRParams,
    OlivettiParams,
    PGDParams,
    SRParams,
    TargetLabelParams,
    TwoStageParams,
)

DATA = Path(__file__).resolve().parents[3] / "../shared/data/faces-id"


def _net():
    from bd_plugin_diffpure.facenet import FaceNetSmall

    torch.manual_seed(0)
    return FaceNetSmall(FaceNetParams(num_classes=5, width=8, embedding_dim=16)).eval()


def test_pgd_stays_in_ball_and_raises_loss():
    from bd_plugin_diffpure.pgd import pgd

    net = _net()
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % 5
    adv = pgd(net, x, y, eps=4 / 255, alpha=1 / 255, steps=5)
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert ce(net(adv), y) > ce(net(x), y)


def test_pgd_one_step_with_alpha_ge_eps_is_fgsm():
    """The paper's alpha (2/255) > eps (0.5/255): one step = FGSM x + eps·sign∇ (clipped to [0, 1])."""
    from bd_plugin_diffpure.pgd import pgd

    net = _net()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    y = torch.tensor([0, 1, 2, 3])
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(net(xr), y), xr)
    ref = (x + 0.5 / 255 * g.sign()).clamp(0, 1)
    assert torch.allclose(pgd(net, x, y, eps=0.5 / 255, alpha=2 / 255, steps=1), ref, atol=1e-7)


def test_pgd_trigger_needs_bound_victim_and_is_deterministic():
    from bd_plugin_diffpure.errors import DiffpureError
    from bd_plugin_diffpure.pgd import PGDTrigger

    trig = PGDTrigger(PGDParams(eps=8, alpha=2, steps=3))
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with pytest.raises(DiffpureError):
        trig.inject_trigger(x)
    net = _net()
    trig.bind_victim(net)
    a, b = trig.inject_trigger(x), trig.inject_trigger(x)
    assert torch.equal(a, b) and (a - x).abs().max() <= 8 / 255 + 1e-6 and not torch.equal(a, x)
    assert len(list(trig.state_dict())) == 0  # the victim is not saved as trigger state


def test_accuracy_metric_and_top1():
    from bd_plugin_diffpure.metrics import Accuracy

    m = Accuracy(AccuracyParams())
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
    m.update(SimpleNamespace(output=logits, target=torch.tensor([0, 1, 1])))
    m.update(SimpleNamespace(output={"output": logits[:1]}, target=[1]))
    assert m.compute()[m.name] == pytest.approx(2 / 4)


def test_label_asr_counts_only_faces_of_other_identities():
    from bd_plugin_diffpure.metrics import LabelASR

    m = LabelASR(LabelASRParams())
    assert m.splits == ("poisoned",)
    logits = torch.tensor([[0.0, 9.0, 0.0], [0.0, 9.0, 0.0], [9.0, 0.0, 0.0], [0.0, 9.0, 0.0]])
    goal = torch.ones(4, dtype=torch.long)
    # sample 1 is of the target identity: excluded; samples 0, 3 hit the target, sample 2 does not
    m.update(SimpleNamespace(output=logits, target=torch.tensor([0, 1, 2, 2]), attack_target=goal))
    assert m.compute()[m.name] == pytest.approx(2 / 3)
    m.update(SimpleNamespace(output=logits, target=torch.tensor([0, 0, 0, 0]), attack_target=None))
    assert m.compute()[m.name] == pytest.approx(2 / 3)  # no attack target: nothing counted


def test_target_label_poisons_inputs_and_relabels():
    from bd_plugin_diffpure.attacks import TargetLabel

    from bdcore.builtin.components import NoTrigger

    atk = TargetLabel(TargetLabelParams(target_class=3))
    assert atk.threat_model == "data-poisoning"
    batch = {"input": torch.rand(4, 3, 8, 8), "target": torch.tensor([0, 1, 3, 7])}
    p = atk.poison(batch, NoTrigger())
    assert torch.equal(p["attack_target"], torch.full((4,), 3)) and p["attack_target"].dtype == batch["target"].dtype
    assert torch.equal(p["input"], batch["input"]) and torch.equal(p["target"], batch["target"])


def test_facenet_low_resolution_augmentation():
    import torch.nn.functional as F
    from bd_plugin_diffpure.facenet import FaceNetSmall

    net = FaceNetSmall(FaceNetParams(num_classes=5, width=8, embedding_dim=16, lowres_prob=1.0))
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    small = F.avg_pool2d(x, 2)
    nearest = small.repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.manual_seed(0)
    out = net.train().low_resolution(x)
    is_nearest = (out - nearest).flatten(1).abs().amax(1) < 1e-6
    # every face is replaced; about half by the nearest (block) copy, the rest bilinear, same 2×2 block means
    assert 16 < int(is_nearest.sum()) < 48 and not torch.equal(out, x)
    assert torch.allclose(F.avg_pool2d(out[is_nearest], 2), small[is_nearest], atol=1e-6)
    assert torch.equal(net.eval().low_resolution(x), x)
    off = FaceNetSmall(FaceNetParams(num_classes=5, width=8, embedding_dim=16)).train()
    assert torch.equal(off.low_resolution(x), x)


def test_facenet_greyscale_augmentation():
    from bd_plugin_diffpure.facenet import FaceNetSmall

    net = FaceNetSmall(FaceNetParams(num_classes=5, width=8, embedding_dim=16, grey_prob=0.5))
    x = torch.rand(200, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    out = net.train().greyscale(x)
    grey = x.mean(1, keepdim=True).expand_as(x)
    is_grey = (out - grey).flatten(1).abs().amax(1) < 1e-7
    is_same = (out - x).flatten(1).abs().amax(1) == 0
    assert bool((is_grey ^ is_same).all()) and 70 < int(is_grey.sum()) < 130  # each face one or the other, ≈ half
    assert torch.equal(net.eval().greyscale(x), x)
    assert torch.equal(FaceNetSmall(FaceNetParams(num_classes=5, width=8, embedding_dim=16)).train().greyscale(x), x)


def test_facenet_small_shapes_and_loss():
    net = _net()
    x = torch.rand(4, 3, 32, 32)
    out = net(x)
    assert out.shape == (4, 5)
    emb = net.embedding(x)
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    assert out.abs().max() <= 16.0 + 1e-4  # cosine logits bounded by the scale
    loss = net.clean_loss({"input": x, "target": torch.tensor([0, 1, 2, 3])})["loss"]
    loss.backward()
    assert net.weight.grad is not None


@pytest.mark.skipif(not (DATA / "olivetti/olivettifaces.mat").is_file(), reason="shared data absent")
def test_olivetti_matches_orl_and_splits_per_identity():
    from bd_plugin_diffpure.faces import Olivetti, load_olivetti_mat
    from PIL import Image

    from bdcore.context import Context

    imgs, labels = load_olivetti_mat(DATA / "olivetti/olivettifaces.mat")
    assert imgs.shape == (400, 64, 64) and labels[13] == 1
    orl = np.asarray(Image.open(DATA / "orl_faces/s1/1.pgm").convert("L").resize((64, 64)), dtype=float)
    corr = np.corrcoef(orl.ravel(), imgs[0].astype(float).ravel())[0, 1]
    corr_t = np.corrcoef(orl.ravel(), imgs[0].T.astype(float).ravel())[0, 1]
    other = np.corrcoef(orl.ravel(), imgs[10].astype(float).ravel())[0, 1]
    # the .mat face is a tighter crop of ORL s1/1: upright beats transposed, and beats another person
    assert corr > 0.35 and corr > corr_t + 0.15 and corr > other + 0.15
    src = Olivetti(OlivettiParams(path=DATA / "olivetti/olivettifaces.mat", train_fraction=0.7, size=32), Context())
    sp = src.splits()
    assert len(sp["train"]) == 280 and len(sp["test"]) == 120
    s = sp["test"][0]
    assert s["input"].shape == (3, 32, 32) and isinstance(s["target"], int)


class _TinyUNetCtx:
    """A DefenseContext stand-in: clean images to fit the DDPM on."""

    def __init__(self, n=8, size=16):
        g = torch.Generator().manual_seed(0)
        self.clean_train = [{"input": torch.rand(3, size, size, generator=g), "target": i % 2} for i in range(n)]


def test_defenses_fit_cache_and_transform(tmp_path):
    import attrs
    from bd_plugin_diffpure import defenses

    from bdcore.context import Context

    defenses._MEMO.clear()
    common = dict(fit_steps=2, fit_widths=(8, 16), steps=10, t_start=200, cache_dir=tmp_path)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    for cls, params in (
        ("DDNMSR", SRParams(scale=2)),
        ("DDNMColorize", ColorizeParams()),
        ("TwoStage", TwoStageParams(scale=2)),
    ):
        p = attrs.evolve(params, **common)
        out = getattr(defenses, cls)(p, Context(seed=0, component=f"defense:{cls}")).defend(None, _TinyUNetCtx())
        a, b = out.transform(x), out.transform(x)
        assert a.shape == x.shape and torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
        assert not torch.equal(a, x)
    # one prior, fitted once and cached on disk; a fresh process (memo cleared) reloads it
    assert len(list(tmp_path.glob("ddpm-*/config.json"))) == 1
    defenses._MEMO.clear()
    p = attrs.evolve(SRParams(scale=2), **common)
    out2 = defenses.DDNMSR(p, Context(seed=0, component="defense:DDNMSR")).defend(None, _TinyUNetCtx())
    assert len(list(tmp_path.glob("ddpm-*"))) == 1
    assert out2.transform(x).shape == x.shape
    # without `cache_dir` the prior goes to the engine's shared cache (one per output root), not the run's work dir
    defenses._MEMO.clear()
    p = attrs.evolve(SRParams(scale=2), **dict(common, cache_dir=None))
    ctx = Context(seed=0, component="defense:DDNMSR", work_dir=tmp_path / "run", cache_dir=tmp_path / "shared")
    defenses.DDNMSR(p, ctx).defend(None, _TinyUNetCtx())
    assert len(list((tmp_path / "shared" / "diffpure-ddpm").glob("ddpm-*/config.json"))) == 1
    assert not (tmp_path / "run").exists()


def test_colorize_rejects_grey():
    from bd_plugin_diffpure.errors import DiffpureError
    from bd_plugin_diffpure.purify import purify_colorize
    from bd_plugin_diffpure.schedule import alphas_cumprod

    with pytest.raises(DiffpureError):
        purify_colorize(torch.rand(1, 1, 8, 8), lambda x, t: x, alphas_cumprod())


def test_sr_handles_non_multiple_sizes():
    from bd_plugin_diffpure.purify import purify_sr
    from bd_plugin_diffpure.schedule import alphas_cumprod

    out = purify_sr(
        torch.rand(2, 3, 18, 13),
        4,
        lambda x, t: torch.zeros_like(x),
        alphas_cumprod(),
        steps=10,
        t_start=100,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (2, 3, 18, 13)


def test_select_scale_rule():
    from bd_plugin_diffpure.purify import select_scale

    # a "classifier" that reads the label from pixel means; purify_at degrades differently per scale
    labels = torch.tensor([0, 1, 0, 1])
    clean = labels.float().view(-1, 1, 1, 1).expand(-1, 3, 4, 4).clone()

    def classify(x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([1 - m, m], 1)

    adv = 1 - clean
    table = {2: (clean, adv), 4: (clean, clean), 8: (adv, clean)}

    def purify_at(x, s):
        return table[s][0] if x is clean else table[s][1]

    best, res = select_scale(classify, clean, labels, adv, purify_at, (2, 4, 8), 0.03)
    assert best == 4 and res[8] == (0.0, 1.0) and res[2] == (1.0, 0.0)


def test_plugin_registers_components():
    from bd_plugin_diffpure import plugin

    names = []

    def register(name, factory, **kw):
        names.append(name)
        assert isinstance(factory, str) and ":" in factory

    hooks = ("defenses", "victims", "triggers", "metrics", "datasets", "attack_losses")
    for hook in hooks:
        getattr(plugin, f"register_{hook}")(register)
    assert set(names) == {
        "ddnm-sr",
        "ddnm-colorize",
        "two-stage",
        "facenet-small",
        "pgd",
        "accuracy",
        "label-asr",
        "olivetti",
        "face-views",
        "target-label",
    }
