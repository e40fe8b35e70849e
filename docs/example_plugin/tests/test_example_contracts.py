"""bdcore's contract suites, applied to the example components."""

from __future__ import annotations

from bdcore.context import Context
from bdcore.testing.contracts import MetricContract, TriggerContract

from bd_plugin_example.metrics import AsrPsnr
from bd_plugin_example.params import AsrPsnrParams, CheckerboardParams
from bd_plugin_example.triggers import Checkerboard


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
