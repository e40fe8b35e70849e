"""The ``asr-psnr`` metric: attack success by a PSNR threshold to the attack target."""

from __future__ import annotations

from typing import Any

import torch
from bdcore.components import MeanOverImages
from bdcore.context import Context
from bdcore.errors import ContractError
from torch import Tensor

from bd_plugin_example.params import AsrPsnrParams


# --8<-- [start:metric]
def psnr_success(outputs: Tensor, targets: Tensor, *, threshold: float) -> Tensor:
    """Per image: 1.0 when ``PSNR(outputs, targets) >= threshold`` dB, else 0.0 (shape ``B``).

    Both are ``B×C×H×W`` in [0, 1]; identical images have infinite PSNR (a success).
    """
    mse = (outputs.double() - targets.double()).pow(2).flatten(1).mean(dim=1)
    psnr = 10.0 * torch.log10(1.0 / mse)  # +inf where mse == 0
    return (psnr >= threshold).to(outputs.dtype)


class AsrPsnr(MeanOverImages):
    """Attack success rate: share of poisoned outputs within ``threshold`` dB of the attack target."""

    higher_is_better = True  # for the attacker; the report shows the direction
    needs = frozenset({"attack_target"})
    splits = ("poisoned",)  # there is no attack target on clean inputs

    def __init__(self, params: AsrPsnrParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)

    def per_image(self, batch: Any) -> Tensor:
        out, target = batch.output, batch.attack_target
        if not isinstance(target, Tensor) or target.shape != out.shape:
            raise ContractError(f"{self.name}: needs an image attack_target shaped like the output {list(out.shape)}")
        return psnr_success(out.clamp(0, 1), target.clamp(0, 1), threshold=self.params.threshold)


# --8<-- [end:metric]
