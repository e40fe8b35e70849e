"""``target-label``: the all-to-one classification backdoor (BadNets' setting) on the face-ID task.

Not in Lim, Hong & Lee: it lets the DDNM defenses be measured against *backdoor* triggers from other
plugins (FTrojan, BadNets, FIBA, ...) on the same face identification model, next to PGD.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bdcore.components import AttackLossBase
from bdcore.protocols import Batch


class TargetLabel(AttackLossBase):
    """Data poisoning: a poisoned training face carries the trigger and the label ``target_class``."""

    @property
    def target_description(self) -> str:  # type: ignore[override]
        return f"every triggered face classified as identity {int(self.params.target_class)} (all-to-one)"

    def attack_target(self, batch: Batch, strength: Tensor) -> Any:  # noqa: ARG002
        target = torch.as_tensor(batch["target"])
        return torch.full_like(target, int(self.params.target_class))
