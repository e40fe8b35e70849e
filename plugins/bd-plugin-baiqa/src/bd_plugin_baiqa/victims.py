"""CPU-trainable NR-IQA victims (task ``"iqa"``): ``iqa-small`` (a small CNN) and ``cnniqa`` (Kang et al. 2014)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_baiqa.params import CnnIqaParams, SmallIqaParams
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


def local_contrast_normalize(gray: Tensor, window: int, c: float) -> Tensor:
    """CNNIQA's local normalisation: ``(I − μ) / (σ + c)`` with μ, σ the mean and standard deviation over a
    ``window×window`` neighbourhood (borders: the mean over the pixels inside the image), per channel.
    ``gray`` ``B×C×H×W`` in [0, 1] → same shape, roughly zero-mean unit-contrast.

    The box mean is separable — a vertical then a horizontal ``window``-tap mean, each over the pixels
    inside the image, equals the 2-D mean over the in-image pixels of the window — so it runs as two
    1-D pools (2·window taps per pixel instead of window²)."""
    pad = window // 2

    def box_mean(z: Tensor) -> Tensor:
        z = F.avg_pool2d(z, (window, 1), 1, (pad, 0), count_include_pad=False)
        return F.avg_pool2d(z, (1, window), 1, (0, pad), count_include_pad=False)

    mu = box_mean(gray)
    var = box_mean(gray * gray) - mu * mu
    return (gray - mu) / (var.clamp_min(0.0).sqrt() + c)


class CnnIqa(VictimBase):
    """CNNIQA (Kang, Ye, Li, Doermann, *Convolutional Neural Networks for No-Reference Image Quality
    Assessment*, CVPR 2014): grey (or RGB with ``color``) → local contrast normalisation → non-overlapping ``patch×patch`` patches →
    one ``kernel×kernel`` conv layer (``filters`` maps) → global max and min pooling → two fully connected
    ReLU layers (``hidden``, dropout) → a patch score. The image score is the mean over its patches, and
    training regresses every patch onto its image's MOS (as the paper). A published NR-IQA network that
    learns from scratch, so it is the CPU victim for real IQA data (LIVEC) where no backbone weights exist.

    ``predict(images)`` (``B×3×H×W`` in [0, 1], H and W ≥ ``patch``; the bottom/right remainder that does
    not fill a patch is ignored) → ``B`` scores on the MOS scale.
    """

    task: ClassVar[str] = "iqa"

    def __init__(self, params: CnnIqaParams | None = None, ctx: Context | None = None) -> None:
        super().__init__()
        self.params = p = params or CnnIqaParams()
        self.conv = nn.Conv2d(3 if p.color else 1, p.filters, p.kernel)
        self.head = nn.Sequential(
            nn.Linear(2 * p.filters, p.hidden),
            nn.ReLU(),
            nn.Dropout(p.dropout),
            nn.Linear(p.hidden, p.hidden),
            nn.ReLU(),
            nn.Dropout(p.dropout),
            nn.Linear(p.hidden, 1),
        )
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def patch_scores(self, images: Tensor) -> Tensor:
        """``B×3×H×W`` in [0, 1] → ``B×N`` scores of the ``N = ⌊H/patch⌋·⌊W/patch⌋`` patches."""
        p = self.params
        b, _, h, w = images.shape
        if h < p.patch or w < p.patch:
            raise ValueError(f"cnniqa: images of {h}×{w} are smaller than one {p.patch}×{p.patch} patch")
        planes = images if p.color else (images * self.luma).sum(dim=1, keepdim=True)
        norm = local_contrast_normalize(planes, p.lcn_window, p.lcn_c)
        k, c = p.patch, planes.shape[1]
        tiles = norm[:, :, : h // k * k, : w // k * k].unfold(2, k, k).unfold(3, k, k)  # B×C×h'×w'×k×k
        n = tiles.shape[2] * tiles.shape[3]
        f = self.conv(tiles.permute(0, 2, 3, 1, 4, 5).reshape(b * n, c, k, k))
        r = f.shape[-1]  # global max and min pooling; max_pool2d's backward is a cheap scatter, amax's is not
        pooled = torch.cat([F.max_pool2d(f, r).flatten(1), -F.max_pool2d(-f, r).flatten(1)], dim=1)
        z = self.head(pooled).reshape(b, n)
        return p.score_offset + p.score_scale * z

    def forward(self, images: Tensor) -> Tensor:
        return self.patch_scores(images).mean(dim=1)

    def predict(self, inputs: Tensor) -> Tensor:
        return self(inputs)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        pred = self.patch_scores(batch["input"])
        target = torch.as_tensor(batch["target"], dtype=pred.dtype, device=pred.device).reshape(-1, 1)
        return {"loss": iqa_regression_loss(pred, target.expand_as(pred), self.params.loss)}
