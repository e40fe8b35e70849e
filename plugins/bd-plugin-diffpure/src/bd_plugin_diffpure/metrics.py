"""``accuracy`` (top-1 identification accuracy) and ``label-asr`` (backdoor success on a classifier)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bdcore.components import MeanOverImages, MetricBase


def top1(logits: Tensor, target: Tensor) -> Tensor:
    """``B`` 0/1 correctness of ``argmax(logits)`` (``B×K``) against ``target`` (``B`` ints)."""
    return (logits.argmax(dim=1) == target.to(logits.device).long()).float()


class Accuracy(MeanOverImages):
    """Mean top-1 accuracy over the split (clean: clean accuracy; poisoned: accuracy under the trigger)."""

    higher_is_better = True
    needs = frozenset({"target"})

    def __init__(self, params: Any = None, ctx: Any = None) -> None:
        super().__init__(params, ctx)
        if params is not None:
            self.splits = tuple(params.splits)

    def per_image(self, batch: Any) -> Tensor:
        out = batch.output["output"] if isinstance(batch.output, dict) else batch.output
        return top1(out, torch.as_tensor(batch.target))


class LabelASR(MetricBase):
    """Backdoor attack success rate: ``argmax`` equals the attack target, counted over triggered inputs
    whose true class differs from it (a face of the target identity is no evidence of the backdoor)."""

    higher_is_better = True  # for the attacker; a defense wants it low
    needs = frozenset({"target", "attack_target"})

    def __init__(self, params: Any = None, ctx: Any = None) -> None:
        super().__init__(params, ctx)
        if params is not None:
            self.splits = tuple(params.splits)

    def reset(self) -> None:
        self._hits = 0
        self._count = 0

    def update(self, batch: Any) -> None:
        if batch.attack_target is None:
            return
        out = batch.output["output"] if isinstance(batch.output, dict) else batch.output
        goal = torch.as_tensor(batch.attack_target).to(out.device).long()
        keep = torch.as_tensor(batch.target).to(out.device).long() != goal
        self._hits += int(((out.argmax(dim=1) == goal) & keep).sum())
        self._count += int(keep.sum())

    def compute(self) -> dict[str, float]:
        return {self.name: self._hits / self._count if self._count else float("nan")}
