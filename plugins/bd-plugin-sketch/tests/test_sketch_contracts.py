"""bdcore's contract suites for every sketch component (photo in, 1-channel sketch out)."""

from __future__ import annotations

import torch
from bdcore.context import Context
from bdcore.metrics.batch import EvalBatch
from bdcore.testing.contracts import (
    AttackLossContract,
    DatasetContract,
    MetricContract,
    TriggerContract,
    VictimContract,
)

from bd_plugin_sketch.attacks import LightStrokes
from bd_plugin_sketch.data import EmbeddedSketch
from bd_plugin_sketch.metrics import Fsim, StrokeAsr, StrokeIntensity
from bd_plugin_sketch.params import (
    EmbeddedSketchParams,
    FCNParams,
    FsimParams,
    LightStrokesParams,
    Pix2PixParams,
    SketchPatternParams,
    StrokeAsrParams,
    StrokeIntensityParams,
)
from bd_plugin_sketch.triggers import SketchPattern
from bd_plugin_sketch.victims import Pix2Pix, SketchFCN


def _photos(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def _sketches(n: int = 4, size: int = 32) -> torch.Tensor:
    """Dark strokes on white: about a fifth of the pixels below 0.5."""
    g = torch.Generator().manual_seed(1)
    return torch.where(torch.rand(n, 1, size, size, generator=g) < 0.2, 0.2, 0.95)


class TestSketchPattern(TriggerContract):
    params_cls = SketchPatternParams

    def make(self) -> SketchPattern:
        return SketchPattern(SketchPatternParams(), Context(seed=0))


class _PhotoToSketch(VictimContract):
    def batch(self) -> dict:
        return {"input": _photos(2), "target": _sketches(2), "index": torch.arange(2)}


class TestSketchFCN(_PhotoToSketch):
    params_cls = FCNParams

    def make(self) -> SketchFCN:
        torch.manual_seed(0)
        return SketchFCN(FCNParams(widths=(8, 8), kernels=(3, 3, 3)), Context(seed=0))


class TestPix2Pix(_PhotoToSketch):
    params_cls = Pix2PixParams

    def make(self) -> Pix2Pix:
        torch.manual_seed(0)
        return Pix2Pix(Pix2PixParams(base=8, depth=2, d_base=8, d_layers=1), Context(seed=0))


class TestLightStrokes(AttackLossContract):
    params_cls = LightStrokesParams

    def make(self) -> LightStrokes:
        return LightStrokes(LightStrokesParams(), Context(seed=0))

    def trigger(self) -> SketchPattern:
        return SketchPattern(SketchPatternParams(), Context(seed=0))

    def batch(self) -> dict:
        return {"input": _photos(), "target": _sketches(), "index": torch.arange(4)}


class _OnSketches(MetricContract):
    def batch(self) -> EvalBatch:
        x, target = _photos(), _sketches()
        clean_out = (target + 0.02).clamp(0, 1)
        out = (1 - (1 - target) * 0.3).clamp(0, 1)  # triggered outputs: lighter strokes
        return EvalBatch(
            split="poisoned",
            input=x,
            output=out,
            target=target,
            attack_target=out,
            clean_input=x,
            clean_model_input=x,
            clean_output=clean_out,
            reference_output=clean_out,
            strength=torch.ones(4),
            index=torch.arange(4),
        )


class TestFsim(_OnSketches):
    params_cls = FsimParams

    def make(self) -> Fsim:
        return Fsim(FsimParams(), Context(component="metric:fsim"))


class TestStrokeIntensity(_OnSketches):
    params_cls = StrokeIntensityParams

    def make(self) -> StrokeIntensity:
        return StrokeIntensity(StrokeIntensityParams(), Context(component="metric:stroke-intensity"))


class TestStrokeAsr(_OnSketches):
    params_cls = StrokeAsrParams

    def make(self) -> StrokeAsr:
        return StrokeAsr(StrokeAsrParams(), Context(component="metric:stroke-asr"))


class TestEmbeddedSketch(DatasetContract):
    params_cls = EmbeddedSketchParams

    def make(self) -> EmbeddedSketch:
        return EmbeddedSketch(EmbeddedSketchParams(size=32, crop=32, limit=4), Context(seed=0))
