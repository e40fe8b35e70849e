"""A well-behaved test plugin: an input defense, a model defense and a detector."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from attrs import validators as v

from bdcore import hookimpl
from bdcore.components import DefenseBase, DefenseOutcome, InputTransformDefense


@attrs.frozen
class BlurParams:
    passes: int = attrs.field(default=1, validator=v.ge(0))


@attrs.frozen
class FinetuneParams:
    steps: int = attrs.field(default=5, validator=v.ge(0))
    lr: float = attrs.field(default=1e-3, validator=v.gt(0))


class Box3(InputTransformDefense):
    """3×3 box blur, ``passes`` times."""

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        for _ in range(self.params.passes):
            images = torch.nn.functional.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
        return images


class Finetune(DefenseBase):
    stage = "model"

    def defend(self, victim: Any, ctx: Any) -> DefenseOutcome:
        ctx.trainer.train(victim, ctx.batches(), self.params.steps, self.params.lr)
        return DefenseOutcome(victim=victim, extra={"finetune_steps": float(self.params.steps)})


class OutputSpread(DefenseBase):
    """Detector: distance of the output from the input (higher = suspicious)."""

    stage = "detection"

    def defend(self, victim: Any, ctx: Any) -> DefenseOutcome:
        def detect(model: Any, x: torch.Tensor) -> torch.Tensor:
            return (model.predict(x) - x).abs().flatten(1).mean(1)

        return DefenseOutcome(detector=detect)


@hookimpl
def register_defenses(register: Any) -> None:
    register("box3", Box3, params=BlurParams, summary="3x3 box blur (tests)")
    register("finetune-test", Finetune, params=FinetuneParams, summary="Fine-tune (tests)")
    register("spread", OutputSpread, summary="Output-input distance detector (tests)")
