"""The hook implementations: what ``bd-plugin-example`` offers to bdcore.

The factories are lazy ``"module:attr"`` strings, so ``bdcore list`` and
``bdcore check`` never import torch code from this plugin.
"""

from __future__ import annotations

from bdcore import hookimpl
from bdcore.registry import Register

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


# --8<-- [start:register-victims]
@hookimpl
def register_victims(register: Register) -> None:
    register(
        "tiny-restorer",
        "bd_plugin_example.victims:TinyRestorer",
        params=TinyRestorerParams,
        summary="Residual CNN for image-to-image tasks (tutorial example)",
    )


# --8<-- [end:register-victims]


# --8<-- [start:register-attack-losses]
@hookimpl
def register_attack_losses(register: Register) -> None:
    register(
        "grey-target",
        "bd_plugin_example.attacks:GreyTarget",
        params=GreyTargetParams,
        summary="Data-poisoning: triggered inputs should come out flat grey (tutorial example)",
    )
    register(
        "grey-target-controlled",
        "bd_plugin_example.attacks:GreyTargetControlled",
        params=GreyTargetParams,
        summary="Training-controlled grey-target: clean + backdoor L1 loss (tutorial example)",
    )


# --8<-- [end:register-attack-losses]


# --8<-- [start:register-defenses]
@hookimpl
def register_defenses(register: Register) -> None:
    register(
        "median-filter",
        "bd_plugin_example.defenses:MedianFilter",
        params=MedianFilterParams,
        summary="Input stage: median filter on every test input (kornia)",
    )
    register(
        "clean-finetune",
        "bd_plugin_example.defenses:CleanFinetune",
        params=CleanFinetuneParams,
        summary="Model stage: fine-tune the attacked model on clean data",
    )
    register(
        "blur-sensitivity",
        "bd_plugin_example.defenses:BlurSensitivity",
        params=BlurSensitivityParams,
        summary="Detection stage: how much the output changes when the input is blurred",
    )


# --8<-- [end:register-defenses]


# --8<-- [start:register-datasets]
@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "shapes",
        "bd_plugin_example.datasets:Shapes",
        params=ShapesParams,
        summary="Seeded synthetic images of flat rectangles on a colour ramp (no files)",
    )


# --8<-- [end:register-datasets]
