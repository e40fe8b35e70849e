"""Trigger, attack and victims: shapes, closed forms, determinism, the GAN's two updates."""

from __future__ import annotations

import math

import pytest
import torch
from bdcore.metrics.image import psnr

from bd_plugin_sketch.attacks import LightStrokes
from bd_plugin_sketch.ops import lighten_strokes
from bd_plugin_sketch.params import FCNParams, LightStrokesParams, Pix2PixParams, SketchPatternParams
from bd_plugin_sketch.triggers import SketchPattern, pattern_tile, sketch_pattern
from bd_plugin_sketch.victims import Pix2Pix, SketchFCN


def test_pattern_psnr_closed_form() -> None:
    x = torch.full((2, 3, 24, 24), 0.5)
    trig = SketchPattern(SketchPatternParams(amplitude=0.03, period=4, seed=7))
    y = trig.inject_trigger(x)
    assert y.shape == x.shape
    assert torch.allclose((y - x).abs(), torch.full_like(x, 0.03), atol=1e-6)  # ±amplitude everywhere
    assert psnr(y, x) == pytest.approx(torch.full((2,), -20 * math.log10(0.03), dtype=torch.float64), abs=1e-3)
    assert torch.equal(trig.inject_trigger(x, strength=0.0), x)


def test_pattern_tiles_and_is_seeded() -> None:
    t = pattern_tile(4, 3)
    assert torch.equal(t, pattern_tile(4, 3)) and not torch.equal(t, pattern_tile(4, 4))
    assert set(t.unique().tolist()) <= {-1.0, 1.0}
    out = sketch_pattern(torch.zeros(1, 1, 10, 9), t, amplitude=1.0)[0, 0]
    assert torch.equal(out[4:8, 4:8], t) and torch.equal(out[8:10, 0:4], t[:2])
    # per-sample strength
    s = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    y = sketch_pattern(torch.zeros(2, 1, 4, 4), t, amplitude=0.1 * s)
    assert torch.equal(y[0], torch.zeros(1, 4, 4)) and torch.allclose(y[1, 0], 0.1 * t)


def test_light_strokes_poison() -> None:
    g = torch.Generator().manual_seed(0)
    batch = {"input": torch.rand(3, 3, 16, 16, generator=g), "target": torch.rand(3, 1, 16, 16, generator=g)}
    atk = LightStrokes(LightStrokesParams(lightening=0.7))
    trig = SketchPattern(SketchPatternParams())
    p = atk.poison(batch, trig)
    assert torch.allclose(p["attack_target"], lighten_strokes(batch["target"], 0.7))
    assert torch.equal(p["clean_input"], batch["input"]) and not torch.equal(p["input"], batch["input"])
    assert atk.threat_model == "data-poisoning"


@pytest.mark.parametrize(
    "make",
    [
        lambda: SketchFCN(FCNParams(widths=(8, 8), kernels=(5, 3, 3))),
        lambda: Pix2Pix(Pix2PixParams(base=8, depth=3, d_base=8, d_layers=2)),
    ],
)
def test_victim_shapes_and_determinism(make) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    a = make()
    torch.manual_seed(0)
    b = make()
    x = torch.rand(2, 3, 32, 40)
    a.eval(), b.eval()
    ya, yb = a.predict(x), b.predict(x)
    assert ya.shape == (2, 1, 32, 40) and bool(((ya >= 0) & (ya <= 1)).all())
    assert torch.equal(ya, yb)
    assert a.task == "sketch"
    # odd sizes too (pix2pix pads to a multiple of 2**depth and crops back)
    assert a.predict(torch.rand(1, 3, 30, 27)).shape == (1, 1, 30, 27)


def test_fcn_overfits_a_pair() -> None:
    torch.manual_seed(0)
    net = SketchFCN(FCNParams(widths=(16, 16), kernels=(5, 3, 3)))
    x = torch.rand(2, 3, 16, 16)
    batch = {"input": x, "target": 1 - x.mean(1, keepdim=True)}
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    first = float(net.clean_loss(batch)["loss"].detach())
    for _ in range(60):
        opt.zero_grad()
        net.clean_loss(batch)["loss"].backward()
        opt.step()
    assert float(net.clean_loss(batch)["loss"].detach()) < 0.5 * first


def test_pix2pix_generator_and_discriminator_updates() -> None:
    torch.manual_seed(0)
    net = Pix2Pix(Pix2PixParams(base=8, depth=3, d_base=8, d_layers=2))
    net.train()
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    gen_ids = {id(p) for p in net.generator.parameters()}
    assert {id(p) for p in net.trainable_parameters("clean")} == gen_ids
    terms = net.clean_loss({"input": x, "target": y})
    assert set(terms) >= {"loss", "l1", "adv"}
    terms["loss"].backward()
    assert all(p.grad is None for p in net.discriminator.parameters())  # G loss does not touch D
    d_before = [p.detach().clone() for p in net.discriminator.parameters()]
    g_before = [p.detach().clone() for p in net.generator.parameters()]
    # after_step sees a *different* (pre-poisoning) batch: D must use the batch G trained on
    out = net.after_step({"input": torch.zeros_like(x), "target": torch.zeros_like(y)})
    assert "d_loss" in out and math.isfinite(out["d_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(d_before, net.discriminator.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(g_before, net.generator.parameters(), strict=True))
    # D loss decreases when trained on a fixed pair
    fake = net(x).detach()
    l0 = float(net.discriminator_loss(x, y, fake))
    for _ in range(8):
        net.clean_loss({"input": x, "target": y})
        net.after_step({})
    assert float(net.discriminator_loss(x, y, fake)) < l0
