"""``light-strokes``: the poison-only attack on photo→sketch synthesis.

The attacker only edits data: a poison share of training photos gets the trigger, and
their target sketches are replaced by :func:`~bd_plugin_sketch.ops.lighten_strokes` of
the true sketch. The victim is then trained by its owner with its ordinary loss.
"""

from __future__ import annotations

from typing import Any

from bdcore.components import AttackLossBase
from torch import Tensor

from bd_plugin_sketch.ops import lighten_strokes
from bd_plugin_sketch.params import LightStrokesParams


class LightStrokes(AttackLossBase):
    """Target of a poisoned photo: ``1 − (1 − sketch)·(1 − lightening)``."""

    threat_model = "data-poisoning"
    trains_trigger = False
    params: LightStrokesParams

    def attack_target(self, batch: Any, strength: Tensor) -> Tensor:
        return lighten_strokes(batch["target"], self.params.lightening)
