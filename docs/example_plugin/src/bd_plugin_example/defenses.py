"""Three defenses, one per stage: an input transform, a model repair and a detector."""

from __future__ import annotations

from typing import Any

import kornia
import torch
from bdcore.components import DefenseBase, DefenseOutcome, InputTransformDefense
from bdcore.context import Context, DefenseContext
from torch import Tensor

from bd_plugin_example.params import BlurSensitivityParams, CleanFinetuneParams, MedianFilterParams


# --8<-- [start:input-defense]
class MedianFilter(InputTransformDefense):
    """Input stage: a median filter on every test input, clean and triggered, before the model.

    ``InputTransformDefense.defend`` returns ``DefenseOutcome(transform=self.transform)``.
    """

    def __init__(self, params: MedianFilterParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)

    def transform(self, images: Tensor) -> Tensor:
        """``B×C×H×W`` in [0, 1] → the same shape, dtype and device, in [0, 1].

        kornia pads with ``border_type="reflect"`` (mirror without repeating the edge pixel).
        """
        k = self.params.kernel
        return kornia.filters.median_blur(images, (k, k)).clamp(0.0, 1.0)


# --8<-- [end:input-defense]


# --8<-- [start:model-defense]
class CleanFinetune(DefenseBase):
    """Model stage: fine-tune the attacked model on the defender's clean data.

    ``victim`` is a copy of the attacked model (change it freely) and must be returned as
    ``DefenseOutcome.victim``; the engine stores it so a later run with the same attack and
    defense reuses it.
    """

    stage = "model"

    def __init__(self, params: CleanFinetuneParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:
        history = ctx.trainer.train(victim, ctx.batches(salt="clean-finetune"), self.params.steps, self.params.lr)
        victim.eval()
        last = history[-1]["loss"] if history else float("nan")
        return DefenseOutcome(victim=victim, extra={"finetune_steps": float(self.params.steps), "finetune_loss": last})


# --8<-- [end:model-defense]


# --8<-- [start:detection-defense]
def blur_sensitivity(outputs: Tensor, blurred_outputs: Tensor) -> Tensor:
    """Per image: mean absolute change of the output when the input is blurred (shape ``B``)."""
    return (outputs - blurred_outputs).abs().flatten(1).mean(dim=1)


class BlurSensitivity(DefenseBase):
    """Detection stage: a high-frequency trigger is erased by a blur, so the output of a
    backdoored model changes more for triggered inputs than for clean ones. The score is
    :func:`blur_sensitivity` (higher = more likely triggered)."""

    stage = "detection"

    def __init__(self, params: BlurSensitivityParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)

    def detector(self, victim: Any, inputs: Tensor) -> Tensor:
        """``B×C×H×W`` inputs → ``B`` scores (the engine reports their AUROC)."""
        s = self.params.sigma
        k = 2 * round(3 * s) + 1
        blurred = kornia.filters.gaussian_blur2d(inputs, (k, k), (s, s), border_type="reflect")
        with torch.no_grad():
            return blur_sensitivity(victim.predict(inputs), victim.predict(blurred))

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:
        return DefenseOutcome(detector=self.detector)


# --8<-- [end:detection-defense]
