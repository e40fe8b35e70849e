"""The hook implementations: what ``bd-plugin-example`` offers to bdcore.

The factories are lazy ``"module:attr"`` strings, so ``bdcore list`` and
``bdcore check`` never import torch code from this plugin.
"""

from __future__ import annotations

from bdcore import hookimpl
from bdcore.registry import Register

from bd_plugin_example.params import AsrPsnrParams, CheckerboardParams


# --8<-- [start:register-triggers]
@hookimpl
def register_triggers(register: Register) -> None:
    register(
        "checkerboard",
        "bd_plugin_example.triggers:Checkerboard",
        params=CheckerboardParams,
        summary="Additive ±amplitude checkerboard (tutorial example)",
        paper=None,
    )


# --8<-- [end:register-triggers]


# --8<-- [start:register-metrics]
@hookimpl
def register_metrics(register: Register) -> None:
    register(
        "asr-psnr",
        "bd_plugin_example.metrics:AsrPsnr",
        params=AsrPsnrParams,
        summary="Attack success rate: poisoned outputs within a PSNR threshold of the attack target",
    )


# --8<-- [end:register-metrics]
