"""``iqa-small``: a small NR-IQA CNN that trains on a CPU in minutes (task ``"iqa"``)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_baiqa.params import SmallIqaParams
from bdcore.components import VictimBase
from bdcore.context import Context

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def iqa_regression_loss(pred: Tensor, target: Tensor, kind: str = "l1") -> Tensor:
    """L1 (HyperIQA/TReS) or MSE (DBCNN) between ``B`` predicted scores and ``B`` MOS."""
    target = torch.as_tensor(target, dtype=pred.dtype, device=pred.device).reshape(pred.shape)
    return F.l1_loss(pred, target) if kind == "l1" else F.mse_loss(pred, target)


class SmallIqaNet(VictimBase):
    """ImageNet-normalised input → a 3×3 stem at full resolution (sees the 16×16 DCT pattern) →
    ``depth`` stride-2 conv stages → mean‖std global pooling → MLP → score = offset + scale·z.

    ``predict(images)`` (``B×3×H×W`` in [0, 1]) → ``B`` scores on the MOS scale.
    """

    task: ClassVar[str] = "iqa"

    def __init__(self, params: SmallIqaParams | None = None, ctx: Context | None = None) -> None:
        super().__init__()
        self.params = params or SmallIqaParams()
        w, d = self.params.width, self.params.depth
        layers: list[nn.Module] = [nn.Conv2d(3, w, 3, padding=1), nn.LeakyReLU(0.2)]
        c = w
        for i in range(d):
            out = w * min(2 ** ((i + 1) // 2), 4)
            layers += [
                nn.Conv2d(c, out, 3, stride=2, padding=1),
                nn.GroupNorm(4, out),
                nn.LeakyReLU(0.2),
                nn.Conv2d(out, out, 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
            c = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * c, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        f = self.features((images - self.mean) / self.std)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.flatten(2).std(dim=2)], dim=1)
        z = self.head(pooled).squeeze(1)
        return self.params.score_offset + self.params.score_scale * z

    def predict(self, inputs: Tensor) -> Tensor:
        return self(inputs)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        pred = self(batch["input"])
        return {"loss": iqa_regression_loss(pred, batch["target"], self.params.loss)}
