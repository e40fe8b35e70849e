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


def test_fsim_metric_is_percent() -> None:
    ref = _sketches()
    m = Fsim(FsimParams())
    m.update(EvalBatch(split="clean", input=ref, output=ref, target=ref))
    assert m.compute()["Fsim".lower()] == pytest.approx(100.0, abs=1e-4)
    noisy = (ref + 0.1 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    m.reset()
    m.update(EvalBatch(split="clean", input=ref, output=noisy, target=ref))
    assert m.compute()["fsim"] == pytest.approx(100 * float(fsim(noisy, ref).mean()), abs=1e-6)


def _fsim_of_fades(sketches: torch.Tensor) -> dict[float, float]:
    """Mean FSIM (%) of the lightened sketches against the originals, and a check that the fade is real: the
    darkness over the ground truth's strokes falls by exactly the lightening."""
    from bd_plugin_sketch.ops import stroke_intensity

    out = {}
    for s in (0.3, 0.6):
        faded = lighten_strokes(sketches, s)
        si = stroke_intensity(faded, sketches, 0.8) / stroke_intensity(sketches, sketches, 0.8)
        assert torch.allclose(si[~si.isnan()], torch.full_like(si[~si.isnan()], 1 - s), atol=1e-5)
        out[s] = 100 * float(fsim(faded, sketches).mean())
    return out


def test_fsim_barely_sees_a_30_percent_fade_of_real_sketches(cufs_root) -> None:
    """The abstract's point on CUFS sketches: strokes 30 % fainter (visibly faded) keep FSIM within ≈ 3.5
    points of the untouched sketch; a 60 % fade costs ≈ 17 (the measured ceilings of the method card:
    96.5 / 82.9 % over the 100 test sketches; here the first 20)."""
    pytest.importorskip("pyiqa")
    from bdcore.data.images import read_image, to_tensor
    from bdcore.data.sources import resize_short_side

    files = sorted((cufs_root / "testing_sketch").iterdir())[:20]
    y = torch.stack([to_tensor(resize_short_side(read_image(f, 1), 96)) for f in files])
    got = _fsim_of_fades(y)
    assert got[0.3] >= 95.5, got
    assert got[0.6] <= 86.0, got


def test_fsim_barely_sees_a_30_percent_fade_of_pencil_sketches() -> None:
    """The same on the embedded stand-in (pencil sketches of the LFW faces; no data needed)."""
    pytest.importorskip("pyiqa")
    pytest.importorskip("skimage")
    from bdcore.context import Context

    from bd_plugin_sketch.data import EmbeddedSketch
    from bd_plugin_sketch.params import EmbeddedSketchParams

    test = EmbeddedSketch(EmbeddedSketchParams(set="faces", size=64, sigma=2.0), Context()).splits()["test"]
    y = torch.stack([torch.as_tensor(test[i]["target"]) for i in range(len(test))])
    got = _fsim_of_fades(y)
    assert got[0.3] >= 94.5, got
    assert got[0.6] <= 85.0, got


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
