"""The ``grey-target`` attacks: poisoned inputs should come out as a flat grey image."""

from __future__ import annotations

from typing import Any

import torch
from bdcore.components import AttackLossBase
from bdcore.context import Context
from torch import Tensor

from bd_plugin_example.params import GreyTargetParams


# --8<-- [start:attack]
class GreyTarget(AttackLossBase):
    """Data-poisoning: the poisoned training pairs are (triggered input, flat grey image).

    ``AttackLossBase.poison`` triggers every sample with strength ``params.strength`` and sets
    ``clean_input``, ``strength`` and ``attack_target`` from :meth:`attack_target`; the engine
    then trains the victim on the poisoned pairs with the victim's own ``clean_loss``.
    """

    threat_model = "data-poisoning"

    def __init__(self, params: GreyTargetParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)

    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:
        """Shaped like the batch's ``target`` (the engine swaps it in for poisoned samples)."""
        return torch.full_like(batch["target"], self.params.level)


class GreyTargetControlled(GreyTarget):
    """Training-controlled: the attacker writes the loss, over a clean and a poisoned batch."""

    threat_model = "training-controlled"  # type: ignore[assignment]

    def attack_loss(self, victim: Any, clean: dict[str, Any], poisoned: dict[str, Any]) -> dict[str, Tensor]:
        w = self.params.clean_weight
        clean_term = torch.nn.functional.l1_loss(victim(clean["input"]), clean["target"])
        backdoor = torch.nn.functional.l1_loss(victim(poisoned["input"]), poisoned["attack_target"])
        return {"loss": w * clean_term + (1 - w) * backdoor, "clean": clean_term, "backdoor": backdoor}


# --8<-- [end:attack]
