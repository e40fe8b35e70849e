"""Fine-tuning defense: retrain a copy of the attacked victim on a small clean subset."""

from __future__ import annotations

import copy
import math
from typing import Any

from bd_plugin_baselines.defenses._data import clean_subset, subset_batches
from bd_plugin_baselines.params_defenses import FineTuningParams
from bdcore.components import DefenseBase, DefenseOutcome
from bdcore.context import DefenseContext


def finetune_steps(n_samples: int, batch_size: int, *, steps: int | None, epochs: float | None) -> int:
    """Number of optimizer steps: ``steps``, or ``ceil(epochs · n / batch_size)``."""
    if steps is not None:
        return int(steps)
    assert epochs is not None  # guaranteed by FineTuningParams
    return max(1, math.ceil(epochs * n_samples / max(1, min(batch_size, n_samples))))


class FineTuning(DefenseBase):
    """Fine-tune a deep copy of the victim with its own ``clean_loss`` through the engine's
    trainer on ``fraction`` of the defender's clean data. The attacked victim is untouched."""

    stage = "model"
    params: FineTuningParams

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:
        p = self.params
        subset = clean_subset(ctx, p.fraction, "fine-tuning")
        steps = finetune_steps(len(subset), ctx.batch_size, steps=p.steps, epochs=p.epochs)
        defended = copy.deepcopy(victim)
        defended.train()
        losses = ctx.trainer.train(defended, subset_batches(ctx, subset, "fine-tuning"), steps, p.lr)
        defended.eval()
        extra = {"finetune_samples": float(len(subset)), "finetune_steps": float(steps)}
        if isinstance(losses, dict) and "loss" in losses:
            extra["finetune_loss"] = float(losses["loss"])
        return DefenseOutcome(victim=defended, extra=extra)
