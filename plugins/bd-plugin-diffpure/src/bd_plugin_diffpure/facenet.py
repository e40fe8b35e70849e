"""``facenet-small``: a FaceNet-style embedding network with a cosine classifier head (task "face-id").

FaceNet (Schroff et al. 2015) maps a face to an L2-normalised embedding; identification here uses a
normalised-softmax (NormFace) head on that embedding, trained with cross-entropy, so ``predict``
returns logits. Small enough to train on 40 identities on a CPU in a minute.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bdcore.components import VictimBase


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class FaceNetSmall(VictimBase):
    """``B×C×H×W`` faces in [0, 1] → ``B×num_classes`` logits (``s · cos(embedding, class weight)``)."""

    task = "face-id"

    def __init__(self, params: Any = None, ctx: Any = None) -> None:
        super().__init__()
        self.params = params
        p = params
        w = p.width
        self.features = nn.Sequential(_block(p.in_channels, w), _block(w, 2 * w), _block(2 * w, 4 * w))
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(p.dropout), nn.Linear(4 * w, p.embedding_dim))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.weight = nn.Parameter(torch.randn(p.num_classes, p.embedding_dim) * 0.01)
        self.scale = float(p.scale)

    def embedding(self, x: Tensor) -> Tensor:
        """``B×embedding_dim`` L2-normalised embedding."""
        return F.normalize(self.embed(self.pool(self.features((x - 0.5) / 0.5))), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * self.embedding(x) @ F.normalize(self.weight, dim=1).t()

    def low_resolution(self, x: Tensor) -> Tensor:
        """Training augmentation: ``lowres_prob`` of the ``B×C×H×W`` faces replaced by ×2 average-pooled
        copies up-sampled back (nearest or bilinear, half each); identity in eval mode."""
        prob = self.params.lowres_prob
        if not self.training or prob <= 0:
            return x
        small = F.avg_pool2d(x, 2, ceil_mode=True)
        nearest = F.interpolate(small, size=x.shape[-2:], mode="nearest")
        bilinear = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
        u = torch.rand(x.shape[0], device=x.device).view(-1, 1, 1, 1)  # the global RNG, like dropout
        return torch.where(u < prob / 2, nearest, torch.where(u < prob, bilinear, x))

    def greyscale(self, x: Tensor) -> Tensor:
        """Training augmentation: ``grey_prob`` of the ``B×3×H×W`` faces replaced by their channel mean in every
        channel (what colorization's operator keeps); identity in eval mode or for 1-channel input."""
        prob = getattr(self.params, "grey_prob", 0.0)
        if not self.training or prob <= 0 or x.shape[1] != 3:
            return x
        u = torch.rand(x.shape[0], device=x.device).view(-1, 1, 1, 1)  # the global RNG, like dropout
        return torch.where(u < prob, x.mean(1, keepdim=True).expand_as(x), x)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        logits = self(self.greyscale(self.low_resolution(batch["input"])))
        target = torch.as_tensor(batch["target"], device=logits.device).long()
        loss = F.cross_entropy(logits, target)
        return {"loss": loss, "accuracy": (logits.argmax(1) == target).float().mean().detach()}
