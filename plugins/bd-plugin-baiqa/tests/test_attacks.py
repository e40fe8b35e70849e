"""P-BAIQA α sampling and label shift; C-BAIQA strengths and PGD refinement."""

from __future__ import annotations

import pytest
import torch
from bd_plugin_baiqa import params as P
from bd_plugin_baiqa.attacks import CBaiqa, PBaiqa, pgd_targeted, random_views, sample_alpha
from bd_plugin_baiqa.trigger import BaiqaDct
from bd_plugin_baiqa.victims import CnnIqa, SmallIqaNet

from bdcore.context import Context, ItemsContext


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
        adv = pgd_targeted(net, x, target, eps=8 / 255, step=2 / 255, steps=10, views=1, view_crop=1.0, view_flip=False)
        after = net(adv)
    assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert float((after - target).abs().mean()) < float((before - target).abs().mean())


def test_c_baiqa_refines_only_marked_training_samples() -> None:
    torch.manual_seed(0)
    net = SmallIqaNet(P.SmallIqaParams(width=8, depth=2))
    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    trig._surrogate[:] = [lambda: net]
    atk = CBaiqa(P.CBaiqaParams(pgd_steps=3, refine="batch"), Context())
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    batch = {"input": x, "target": torch.tensor([30.0, 40, 60, 70]), "baiqa_train": torch.tensor([1, 0, 1, 0])}
    with torch.no_grad():  # the engine poisons under no_grad
        p = atk.poison(batch, trig)
    plain = trig.inject_trigger(x, strength=p["strength"])
    assert torch.equal(p["input"][1], plain[1]) and torch.equal(p["input"][3], plain[3])
    assert not torch.equal(p["input"][0], plain[0])
    assert torch.equal(p["clean_input"], x)


def test_c_baiqa_without_surrogate_fails_clearly() -> None:
    atk = CBaiqa(P.CBaiqaParams(refine="batch"), Context())
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
    atk = CBaiqa(P.CBaiqaParams(pgd_steps=3, refine="batch"), Context(clean_victim=clean_victim))
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


def test_random_views_are_crops_and_flips_of_each_image() -> None:
    """Every view is x[b, :, y:y+S, x:x+S] (or its mirror) of its own image, found by brute force."""
    x = torch.rand(3, 2, 10, 12, generator=torch.Generator().manual_seed(0))
    v = random_views(x, 5, crop=0.7, flip=True, generator=torch.Generator().manual_seed(1))
    assert v.shape == (15, 2, 7, 8)
    flipped = 0
    for k in range(15):
        b = k % 3  # view-major: view k // 3 of image k % 3
        found = []
        for y in range(10 - 7 + 1):
            for x0 in range(12 - 8 + 1):
                win = x[b, :, y : y + 7, x0 : x0 + 8]
                if torch.equal(v[k], win):
                    found.append("plain")
                if torch.equal(v[k], win.flip(-1)):
                    found.append("flip")
        assert len(found) == 1, (k, found)
        flipped += found[0] == "flip"
    assert 0 < flipped < 15
    same = random_views(x, 5, crop=0.7, flip=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(v, same)
    ident = random_views(x, 1, crop=1.0, flip=False)
    assert torch.equal(ident, x)


def test_random_views_pass_gradients_to_the_image() -> None:
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    random_views(x, 4, crop=0.5, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and float(x.grad.sum()) == pytest.approx(4 * 2 * 3 * 4 * 4)


def test_pgd_with_views_is_more_robust_to_those_views() -> None:
    """EOT over random crop+flip views (the official C-BAIQA refinement) gives a perturbation that keeps
    the surrogate near the target score on *fresh* views; plain PGD on the image itself does much less."""
    torch.manual_seed(0)
    net = CnnIqa(P.CnnIqaParams(patch=16, filters=8, hidden=32, color=True)).eval()
    x = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = float(net(x).mean()) + 10.0
    kw = {"eps": 8 / 255, "step": 2 / 255, "steps": 10}
    plain = pgd_targeted(net, x, target, views=1, view_crop=1.0, view_flip=False, **kw)
    eot = pgd_targeted(
        net, x, target, views=8, view_crop=0.75, view_flip=True, generator=torch.Generator().manual_seed(2), **kw
    )

    def loss_on_fresh_views(z: torch.Tensor) -> float:
        views = random_views(z, 64, crop=0.75, flip=True, generator=torch.Generator().manual_seed(99))
        with torch.no_grad():
            return float(((net(views) - target) ** 2).mean())

    clean, l_plain, l_eot = (loss_on_fresh_views(z) for z in (x, plain, eot))
    assert float((eot - x).abs().max()) <= 8 / 255 + 1e-6 and float((plain - x).abs().max()) <= 8 / 255 + 1e-6
    # measured: clean 99.3, plain 92.9, views 73.2 — the views' gain on fresh views is > 2× plain PGD's
    assert clean - l_eot > 2 * (clean - l_plain) > 0


def test_c_baiqa_pgd_runs_all_views_of_all_crops_in_one_forward() -> None:
    """Batched EOT: each PGD step is one surrogate call on views·B images (not a loop over views)."""
    torch.manual_seed(0)
    net = SmallIqaNet(P.SmallIqaParams(width=8, depth=2))
    sizes: list[int] = []

    class Spy(torch.nn.Module):
        def predict(self, z: torch.Tensor) -> torch.Tensor:
            sizes.append(z.shape[0])
            return net(z)

    spy = Spy()
    atk = CBaiqa(P.CBaiqaParams(pgd_steps=3, pgd_views=5, refine="batch"), Context(clean_victim=lambda: spy))
    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        atk.poison({"input": x, "target": torch.tensor([20.0, 40, 60, 80])}, trig, generator=torch.Generator())
    assert sizes == [5 * 4] * 3


def test_c_baiqa_defaults_are_the_published_refinement() -> None:
    p = P.CBaiqaParams()
    assert (p.pgd_steps, p.pgd_views, p.pgd_eps, p.pgd_step, p.mean_score) == (20, 25, 2.0, 1.6, 50.0)
    assert p.pgd_view_flip and p.refine == "image"  # once per whole image, as the official code


def _items(images: list[torch.Tensor], marks: list[int], crop: int | None, flip: bool = True) -> ItemsContext:
    fields = {i: {"input": x, "target": 40.0, "baiqa_train": m} for i, (x, m) in enumerate(zip(images, marks))}
    return ItemsContext(ctx=Context(seed=4), items=sorted(fields), fields=fields.__getitem__, crop=crop, flip=flip)


def test_c_baiqa_image_refinement_is_the_official_pgd_on_the_whole_image() -> None:
    """Golden, from the official steps (methods.md §1.5, PGD_demo.py): one view = the whole image, no flip:
    20 signed-gradient descent steps of 1.6/255 on MSE(f(x), 50), projected to the 2/255 ball and [0, 1],
    no random start — written here as a plain per-image loop."""
    torch.manual_seed(0)
    net = CnnIqa(P.CnnIqaParams(patch=16, filters=8, hidden=32, color=True)).eval()
    images = [torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    atk = CBaiqa(P.CBaiqaParams(pgd_views=1, pgd_view_flip=False, pgd_batch=2), Context(clean_victim=lambda: net))
    out = atk.prepare_items(_items(images, [1, 1, 1], crop=None, flip=False))
    assert out is not None and sorted(out) == [0, 1, 2]
    eps, step = 2 / 255, 1.6 / 255
    for k, x0 in enumerate(images):
        x = x0.clone()[None]
        for _ in range(20):
            x.requires_grad_(True)
            loss = ((net(x) - 50.0) ** 2).sum()
            (g,) = torch.autograd.grad(loss, x)
            x = torch.minimum(torch.maximum(x.detach() - step * g.sign(), x0 - eps), x0 + eps).clamp(0, 1)
        torch.testing.assert_close(out[k], x[0], atol=1e-6, rtol=0)


def test_c_baiqa_image_refinement_uses_training_size_views_of_marked_items_only() -> None:
    """Views are training-crop-sized crops (+ flips) of the whole image, ``pgd_batch`` images per PGD call;
    test-split items (``baiqa_train`` = 0) are not refined; the refined images stay in the ball and move the
    surrogate towards ȳ on fresh training-size crops."""
    torch.manual_seed(0)
    net = CnnIqa(P.CnnIqaParams(patch=16, filters=8, hidden=32, color=True)).eval()
    sizes: list[tuple[int, ...]] = []

    class Spy(torch.nn.Module):
        def predict(self, z: torch.Tensor) -> torch.Tensor:
            sizes.append(tuple(z.shape))
            return net(z)

    images = [torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(k)) for k in range(6)]
    params = P.CBaiqaParams(pgd_steps=6, pgd_views=4, pgd_eps=8.0, pgd_step=2.0, pgd_batch=2)
    out = CBaiqa(params, Context(clean_victim=lambda: Spy())).prepare_items(_items(images, [1, 0, 1, 1, 1, 1], crop=32))
    assert out is not None and sorted(out) == [0, 2, 3, 4, 5]  # item 1 is a test-split image
    assert sizes == [(4 * 2, 3, 32, 32)] * 12 + [(4 * 1, 3, 32, 32)] * 6  # 2 + 2 + 1 images × 4 views, 6 steps
    x = torch.stack([images[i] for i in sorted(out)])
    adv = torch.stack([out[i] for i in sorted(out)])
    assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1

    def on_fresh_crops(z: torch.Tensor) -> float:
        views = random_views(z, 32, size=32, generator=torch.Generator().manual_seed(99))
        with torch.no_grad():
            return float(((net(views) - 50.0) ** 2).mean())

    assert on_fresh_crops(adv) < 0.9 * on_fresh_crops(x)


def test_c_baiqa_refines_in_one_place_only() -> None:
    """ "image" refines in prepare_items and poison() only adds the trigger; "batch" prepares nothing."""
    net = SmallIqaNet(P.SmallIqaParams(width=4, depth=1))
    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    batch = {"input": x, "target": torch.tensor([30.0, 70.0])}
    image = CBaiqa(P.CBaiqaParams(pgd_steps=2), Context(clean_victim=lambda: net))
    with torch.no_grad():
        p = image.poison(batch, trig)
    assert torch.equal(p["input"], trig.inject_trigger(x, strength=p["strength"]))
    per_batch = CBaiqa(P.CBaiqaParams(pgd_steps=2, refine="batch"), Context(clean_victim=lambda: net))
    assert per_batch.prepare_items(_items([x[0]], [1], crop=16)) is None
    assert CBaiqa(P.CBaiqaParams(pgd_steps=0), Context()).prepare_items(_items([x[0]], [1], crop=16)) is None


def test_c_baiqa_surrogate_choice() -> None:
    torch.manual_seed(0)
    own, clean = SmallIqaNet(P.SmallIqaParams(width=4, depth=1)), SmallIqaNet(P.SmallIqaParams(width=4, depth=1))
    trig = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    ctx = Context(clean_victim=lambda: clean)
    assert CBaiqa(P.CBaiqaParams(), ctx).surrogate(trig) is clean  # auto: the trigger has none
    trig.surrogate_net = own
    assert CBaiqa(P.CBaiqaParams(), ctx).surrogate(trig) is own
    assert CBaiqa(P.CBaiqaParams(surrogate="trigger"), ctx).surrogate(trig) is own
    assert CBaiqa(P.CBaiqaParams(surrogate="clean-victim"), ctx).surrogate(trig) is clean
    from bd_plugin_baiqa.util import BaiqaError

    with pytest.raises(BaiqaError, match="baiqa-dct"):
        CBaiqa(P.CBaiqaParams(surrogate="trigger"), ctx).surrogate(object())


def test_c_baiqa_declares_when_it_uses_the_clean_victim() -> None:
    """The engine trains the clean victim as a stage for the modes that attack it, not for the others."""

    class WithSurrogate:  # a fitted baiqa-dct: offers its own surrogate
        def surrogate(self) -> object:
            return object()

        def has_surrogate(self) -> bool:
            return True

    unfitted = BaiqaDct(P.DctTriggerParams(), Context(seed=0))
    cases = [
        ("clean-victim", WithSurrogate(), True),
        ("trigger", unfitted, False),
        ("auto", WithSurrogate(), False),  # the trigger's own surrogate wins
        ("auto", unfitted, True),  # nothing of its own: the clean victim
        ("auto", None, True),  # a sweep planning without the trigger: counted
    ]
    for mode, trigger, expected in cases:
        atk = CBaiqa(P.CBaiqaParams(surrogate=mode), Context(trigger=trigger))  # type: ignore[arg-type]
        assert atk.uses_clean_victim is expected, (mode, trigger)
    assert PBaiqa(P.PBaiqaParams(), Context()).uses_clean_victim is False


def test_c_baiqa_image_refinement_is_cached_by_surrogate_and_images(tmp_path) -> None:
    """Under the engine (a cache folder) a second row with the same seed, surrogate and images reuses the
    stored δ — no PGD — and gets the very inputs the first one trained on; other weights or other images
    refine anew."""
    torch.manual_seed(0)
    net = CnnIqa(P.CnnIqaParams(patch=16, filters=8, hidden=32, color=True)).eval()
    calls: list[int] = []

    class Spy(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def predict(self, z: torch.Tensor) -> torch.Tensor:
            calls.append(z.shape[0])
            return self.inner(z)

    spy = Spy(net)
    images = [torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    params = P.CBaiqaParams(pgd_steps=3, pgd_views=2)

    def prepare(surrogate: torch.nn.Module, imgs: list[torch.Tensor], cache: object = tmp_path) -> dict:
        ctx = Context(seed=4, cache_dir=cache, clean_victim=lambda: surrogate)
        out = CBaiqa(params, ctx).prepare_items(_items(imgs, [1, 1, 1], crop=32))
        assert out is not None
        return out

    first = prepare(spy, images)
    assert calls and len(list((tmp_path / "c-baiqa-refine").glob("*.safetensors"))) == 1
    exact = prepare(spy, images, cache=None)  # no cache: the PGD result itself
    for i in first:  # the stored δ is float16: within its rounding of the exact result, still in the ball
        torch.testing.assert_close(first[i], exact[i], atol=2e-5, rtol=0)
        assert float((first[i] - images[i]).abs().max()) <= 2 / 255 + 2e-5
    calls.clear()
    again = prepare(spy, images)
    assert calls == [] and all(torch.equal(first[i], again[i]) for i in first)  # reused, bit for bit
    other = Spy(CnnIqa(P.CnnIqaParams(patch=16, filters=8, hidden=32, color=True)).eval())
    prepare(other, images)
    assert calls  # other weights: refined anew
    calls.clear()
    prepare(spy, [images[0], images[1], images[2].flip(-1)])
    assert calls  # another image: refined anew
    assert len(list((tmp_path / "c-baiqa-refine").glob("*.safetensors"))) == 3
