"""The ``tiny-restorer`` victim: a residual CNN for image-to-image tasks."""

from __future__ import annotations

from typing import Any

import torch
from bdcore.components import VictimBase
from bdcore.context import Context
from torch import Tensor, nn

from bd_plugin_example.params import TinyRestorerParams


# --8<-- [start:victim]
class TinyRestorer(VictimBase):
    """``depth`` 3×3 conv + ReLU layers predicting a residual: ``B×3×H×W`` in [0, 1] in and out.

    ``VictimBase`` supplies ``predict`` (= ``forward``) and ``trainable_parameters`` (every
    parameter, in both phases); ``clean_loss`` is the task's training loss on a clean batch.
    """

    task = "restoration"

    def __init__(self, params: TinyRestorerParams, ctx: Context | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, params.width, 3, padding=1), nn.ReLU()]
        for _ in range(params.depth - 1):
            layers += [nn.Conv2d(params.width, params.width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(params.width, 3, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.body(x)).clamp(0.0, 1.0)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        l1 = torch.nn.functional.l1_loss(self(batch["input"]), batch["target"])
        return {"loss": l1, "l1": l1.detach()}


# --8<-- [end:victim]
