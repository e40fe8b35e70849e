"""bdcore contract suites for every baseline defense and metric."""

from __future__ import annotations

from bd_plugin_baselines import params_defenses as P
from bd_plugin_baselines.defenses.finetune import FineTuning
from bd_plugin_baselines.defenses.input import BitSqueeze, GaussianBlur, GaussianNoise, Jpeg
from bd_plugin_baselines.defenses.pruning import FinePruning
from bd_plugin_baselines.defenses.strip import Strip
from bd_plugin_baselines.metrics.components import FreqDistance, ImageAsr, Lpips, Stealth

from bdcore.context import Context
from bdcore.testing.contracts import DefenseContract, MetricContract


def _ctx(name: str) -> Context:
    return Context(seed=0, component=name)


class TestGaussianBlur(DefenseContract):
    params_cls = P.GaussianBlurParams

    def make(self):
        return GaussianBlur(P.GaussianBlurParams(), _ctx("defense:gaussian-blur"))


class TestGaussianNoise(DefenseContract):
    params_cls = P.GaussianNoiseParams

    def make(self):
        return GaussianNoise(P.GaussianNoiseParams(), _ctx("defense:gaussian-noise"))


class TestJpeg(DefenseContract):
    params_cls = P.JpegParams

    def make(self):
        return Jpeg(P.JpegParams(), _ctx("defense:jpeg"))


class TestBitSqueeze(DefenseContract):
    params_cls = P.BitSqueezeParams

    def make(self):
        return BitSqueeze(P.BitSqueezeParams(), _ctx("defense:bit-squeeze"))


class TestFineTuning(DefenseContract):
    params_cls = P.FineTuningParams

    def make(self):
        return FineTuning(P.FineTuningParams(), _ctx("defense:fine-tuning"))


class TestFinePruning(DefenseContract):
    params_cls = P.FinePruningParams

    def make(self):
        return FinePruning(P.FinePruningParams(), _ctx("defense:fine-pruning"))


class TestStrip(DefenseContract):
    params_cls = P.StripParams

    def make(self):
        return Strip(P.StripParams(), _ctx("defense:strip"))


class TestLpipsMetric(MetricContract):
    params_cls = P.LpipsParams

    def make(self):
        return Lpips(P.LpipsParams(random_backbone=True, net="squeeze"), _ctx("metric:lpips"))


class TestStealth(MetricContract):
    params_cls = P.StealthParams

    def make(self):
        return Stealth(P.StealthParams(), _ctx("metric:stealth"))


class TestFreqDistance(MetricContract):
    params_cls = P.FreqDistanceParams

    def make(self):
        return FreqDistance(P.FreqDistanceParams(), _ctx("metric:freq-distance"))


class TestImageAsr(MetricContract):
    params_cls = P.ImageAsrParams

    def make(self):
        return ImageAsr(P.ImageAsrParams(), _ctx("metric:image-asr"))
