"""``accuracy``: top-1 identification accuracy (output logits vs the integer target)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bdcore.components import MeanOverImages


def top1(logits: Tensor, target: Tensor) -> Tensor:
    """``B`` 0/1 correctness of ``argmax(logits)`` (``B×K``) against ``target`` (``B`` ints)."""
    return (logits.argmax(dim=1) == target.to(logits.device).long()).float()


class Accuracy(MeanOverImages):
    """Mean top-1 accuracy over the split (clean: clean accuracy; poisoned: accuracy under the trigger)."""

    higher_is_better = True

    def __init__(self, params: Any = None, ctx: Any = None) -> None:
        super().__init__(params, ctx)
        if params is not None:
            self.splits = tuple(params.splits)

    def per_image(self, batch: Any) -> Tensor:
        out = batch.output["output"] if isinstance(batch.output, dict) else batch.output
        return top1(out, torch.as_tensor(batch.target))
