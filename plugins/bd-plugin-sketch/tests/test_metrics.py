"""FSIM wrapper vs pyiqa directly; stroke metrics on EvalBatch records."""

from __future__ import annotations

import os

import pytest
import torch
from bdcore.metrics.batch import EvalBatch

from bd_plugin_sketch.metrics import Fsim, StrokeAsr, StrokeIntensity, fsim
from bd_plugin_sketch.ops import lighten_strokes
from bd_plugin_sketch.params import FsimParams, StrokeAsrParams, StrokeIntensityParams

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _sketches(n: int = 3, side: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 8, 8, generator=g)
    return torch.nn.functional.interpolate(base, size=side, mode="bicubic", align_corners=False).clamp(0, 1)


def test_fsim_matches_pyiqa_create_metric() -> None:
    pyiqa = pytest.importorskip("pyiqa")
    ref = _sketches()
    noisy = (ref + 0.08 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    direct = pyiqa.create_metric("fsim", chromatic=False, device="cpu")
    expect = direct(noisy, ref).flatten().double()
    got = fsim(noisy, ref)
    assert got.shape == (3,)
    assert torch.allclose(got, expect, atol=1e-6)
    assert torch.allclose(fsim(ref, ref), torch.ones(3, dtype=torch.float64), atol=1e-6)
    assert bool((got < 1).all())


def test_fsim_chromatic_matches_pyiqa_default() -> None:
    pyiqa = pytest.importorskip("pyiqa")
    g = torch.Generator().manual_seed(4)
    a = torch.rand(2, 3, 40, 40, generator=g)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    expect = pyiqa.create_metric("fsim", device="cpu")(a, b).flatten().double()  # pyiqa default: FSIMc
    assert torch.allclose(fsim(a, b, chromatic=True), expect, atol=1e-6)


def test_fsim_metric_percent_and_light_strokes_barely_move_it() -> None:
    ref = _sketches()
    m = Fsim(FsimParams())
    m.update(EvalBatch(split="clean", input=ref, output=ref, target=ref))
    assert m.compute()["Fsim".lower()] == pytest.approx(100.0, abs=1e-4)


def test_stroke_intensity_metric() -> None:
    ref = torch.tensor([[0.0, 1.0], [0.4, 0.9]]).view(1, 1, 2, 2)
    out = torch.tensor([[0.2, 0.5], [0.6, 0.0]]).view(1, 1, 2, 2)
    m = StrokeIntensity(StrokeIntensityParams())
    m.update(EvalBatch(split="clean", input=out, output=out, target=ref))
    m.update(EvalBatch(split="clean", input=out, output=ref, target=ref))  # darkness 1.0 and 0.6 -> 0.8
    assert m.compute()["strokeintensity"] == pytest.approx((0.6 + 0.8) / 2)


def test_stroke_asr_threshold() -> None:
    ref = _sketches(4, 16, seed=5)
    clean = _sketches(4, 16, seed=6) * 0.9
    # per-image lightening 0.2, 0.49, 0.51, 0.9 -> reductions equal them; 2 of 4 reach 0.5
    s = torch.tensor([0.2, 0.49, 0.51, 0.9])
    trig = lighten_strokes(clean, s)
    m = StrokeAsr(StrokeAsrParams(reduction=0.5))
    m.update(EvalBatch(split="poisoned", input=trig, output=trig, target=ref, clean_output=clean))
    out = m.compute()
    assert out["strokeasr"] == pytest.approx(50.0)
    assert out["strokeasr/reduction"] == pytest.approx(100 * float(s.mean()), abs=1e-3)
