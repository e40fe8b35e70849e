"""Decoder fine-tuning as a defense: retrain a copy of the codec's synthesis transform ``g_s`` on clean
images, leaving the (possibly backdoored) encoder and the entropy models untouched."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from torch.utils.data import Subset

from bd_plugin_bavaft.params import DecoderFineTuningParams
from bdcore.components import DefenseBase, DefenseOutcome
from bdcore.context import DefenseContext, derive_seed
from bdcore.data.loading import endless_batches
from bdcore.errors import ComponentError


class DefenseSetupError(ComponentError):
    """The defense was used with a victim it cannot defend."""


class _SeededSubset(Subset):  # type: ignore[type-arg]
    """A ``Subset`` that keeps the parent's seeded ``get(index, seed)`` augmentation."""

    def get(self, index: int, seed: int | None) -> dict[str, Any]:
        parent = self.dataset
        i = int(self.indices[index])
        getter = getattr(parent, "get", None)
        sample = dict(getter(i, seed)) if getter is not None else dict(parent[i])
        sample["index"] = i
        return sample


class DecoderFineTuning(DefenseBase):
    """Fine-tune ``g_s`` of a deep copy of the codec with its clean RD loss (the rate does not depend on
    ``g_s``, so this is the λ·255²·MSE of the reconstruction) for ``steps`` steps of the engine's trainer.

    Threat model: the user who decodes owns ``g_s``; the bitstream still comes from the attacked encoder.
    The returned model differs from the victim in ``g_s`` only (tested)."""

    stage = "model"
    params: DecoderFineTuningParams

    def __init__(self, params: DecoderFineTuningParams | None = None, ctx: Any = None) -> None:
        super().__init__(params or DecoderFineTuningParams(), ctx)

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:
        if not callable(getattr(victim, "decoder_parameters", None)):
            raise DefenseSetupError(
                f"decoder-fine-tuning needs a codec victim with decoder_parameters() (bd-plugin-bavaft's "
                f"compressai), got {type(victim).__name__}"
            )
        p: DecoderFineTuningParams = self.params
        n = len(ctx.clean_train)  # type: ignore[arg-type]
        if n == 0:
            raise DefenseSetupError("decoder-fine-tuning: the defender's clean training set is empty")
        k = max(1, min(n, math.ceil(p.fraction * n)))
        rng = np.random.default_rng(derive_seed(ctx.ctx.seed, "defense-subset", "decoder-fine-tuning"))
        subset = _SeededSubset(ctx.clean_train, np.sort(rng.permutation(n)[:k]).tolist())
        batches = endless_batches(
            subset,
            ctx.batch_size,
            seed=derive_seed(ctx.ctx.seed, "defense", "decoder-fine-tuning"),
            device=ctx.ctx.device,
        )
        defended = copy.deepcopy(victim)
        defended.train()
        params = defended.decoder_parameters()
        losses = ctx.trainer.train(defended, batches, p.steps, p.lr, params=params)
        defended.eval()
        extra = {"finetune_samples": float(k), "finetune_steps": float(p.steps)}
        if isinstance(losses, list) and losses and "loss" in losses[-1]:
            extra["finetune_loss"] = float(losses[-1]["loss"])
        return DefenseOutcome(victim=defended, extra=extra)
