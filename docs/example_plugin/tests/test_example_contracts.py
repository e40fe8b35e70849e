"""bdcore's contract suites, applied to every example component."""

from __future__ import annotations

from bdcore.context import Context
from bdcore.testing.contracts import (
    AttackLossContract,
    DatasetContract,
    DefenseContract,
    MetricContract,
    TriggerContract,
    VictimContract,
)

from bd_plugin_example.attacks import GreyTarget, GreyTargetControlled
from bd_plugin_example.datasets import Shapes
from bd_plugin_example.defenses import BlurSensitivity, CleanFinetune, MedianFilter
from bd_plugin_example.metrics import AsrPsnr
from bd_plugin_example.params import (
    AsrPsnrParams,
    BlurSensitivityParams,
    CheckerboardParams,
    CleanFinetuneParams,
    GreyTargetParams,
    MedianFilterParams,
    ShapesParams,
    TinyRestorerParams,
)
from bd_plugin_example.triggers import Checkerboard
from bd_plugin_example.victims import TinyRestorer


# --8<-- [start:contracts]
class TestCheckerboardContract(TriggerContract):
    params_cls = CheckerboardParams

    def make(self) -> Checkerboard:
        return Checkerboard(CheckerboardParams(period=3, amplitude=0.1), Context(seed=0))


class TestAsrPsnrContract(MetricContract):
    params_cls = AsrPsnrParams

    def make(self) -> AsrPsnr:
        return AsrPsnr(AsrPsnrParams(), Context(seed=0, component="metric:asr-psnr"))


# --8<-- [end:contracts]


# --8<-- [start:victim-contract]
class TestTinyRestorerContract(VictimContract):
    params_cls = TinyRestorerParams

    def make(self) -> TinyRestorer:
        return TinyRestorer(TinyRestorerParams(width=8), Context(seed=0))


# --8<-- [end:victim-contract]


# --8<-- [start:attack-contract]
class TestGreyTargetContract(AttackLossContract):
    params_cls = GreyTargetParams

    def make(self) -> GreyTarget:
        return GreyTarget(GreyTargetParams(), Context(seed=0))


class TestGreyTargetControlledContract(AttackLossContract):
    def make(self) -> GreyTargetControlled:
        return GreyTargetControlled(GreyTargetParams(), Context(seed=0))


# --8<-- [end:attack-contract]


# --8<-- [start:defense-contract]
class TestMedianFilterContract(DefenseContract):
    params_cls = MedianFilterParams

    def make(self) -> MedianFilter:
        return MedianFilter(MedianFilterParams(kernel=3), Context(seed=0))


class TestCleanFinetuneContract(DefenseContract):
    params_cls = CleanFinetuneParams

    def make(self) -> CleanFinetune:
        return CleanFinetune(CleanFinetuneParams(steps=5), Context(seed=0))


class TestBlurSensitivityContract(DefenseContract):
    params_cls = BlurSensitivityParams

    def make(self) -> BlurSensitivity:
        return BlurSensitivity(BlurSensitivityParams(), Context(seed=0))


# --8<-- [end:defense-contract]


# --8<-- [start:dataset-contract]
class TestShapesContract(DatasetContract):
    params_cls = ShapesParams

    def make(self) -> Shapes:
        return Shapes(ShapesParams(count=8, size=16), Context(seed=0))


# --8<-- [end:dataset-contract]
