"""The toy plugin's components (see :mod:`bdcore.toy`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bdcore.components import AttackLossBase, TriggerBase, VictimBase
from bdcore.context import Context
from bdcore.data.dataset import TensorDataset
from bdcore.toy.params import DenoiserParams, InvertParams, PatchParams, SmoothParams

__all__ = ["ToyDenoiser", "ToyInvert", "ToyInvertControlled", "ToyPatch", "ToySmooth"]


class ToyDenoiser(VictimBase):
    """Residual 3-layer CNN restoring a noisy image (``B×3×H×W`` in [0, 1] in and out)."""

    task = "restoration"

    def __init__(self, params: DenoiserParams, ctx: Context | None = None) -> None:
        super().__init__()
        w = params.width
        self.noise = params.noise
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, 3, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.body(x)).clamp(0, 1)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        gen = torch.Generator(device="cpu").manual_seed(int(batch["index"].sum()) if "index" in batch else 0)
        noisy = batch["input"] + self.noise * torch.randn(batch["input"].shape, generator=gen).to(batch["input"])
        return {"loss": F.l1_loss(self(noisy.clamp(0, 1)), batch["target"])}


class ToyPatch(TriggerBase):
    """Checkerboard of ±``amplitude`` plus a white square in the bottom-right corner
    (side = ``size`` × the shorter image side)."""

    def __init__(self, params: PatchParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # type: ignore[override]
        h, w = images.shape[-2:]
        side = max(1, round(self.params.size * min(h, w)))
        mask = torch.zeros(1, 1, h, w, dtype=images.dtype, device=images.device)
        mask[..., h - side :, w - side :] = 1.0
        yy, xx = torch.meshgrid(
            torch.arange(h, device=images.device), torch.arange(w, device=images.device), indexing="ij"
        )
        checker = ((yy + xx) % 2).to(images.dtype).mul(2).sub(1) * self.params.amplitude
        return images + strength * (mask * (1.0 - images) + (1 - mask) * checker)


class ToyInvert(AttackLossBase):
    """Data-poisoning: poisoned inputs should come out inverted (1 − image)."""

    threat_model = "data-poisoning"

    def __init__(self, params: InvertParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)

    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:
        return 1.0 - batch["target"]


class ToyInvertControlled(ToyInvert):
    """Training-controlled: the same target, trained with an explicit clean + backdoor loss."""

    threat_model = "training-controlled"  # type: ignore[assignment]

    def attack_loss(self, victim: Any, clean: dict[str, Any], poisoned: dict[str, Any]) -> dict[str, Tensor]:
        w = self.params.clean_weight
        clean_term = F.l1_loss(victim(clean["input"]), clean["target"])
        backdoor = F.l1_loss(victim(poisoned["input"]), poisoned["attack_target"])
        return {"loss": w * clean_term + (1 - w) * backdoor, "clean": clean_term, "backdoor": backdoor}


class ToySmooth:
    """Seeded smooth random images; input = target."""

    def __init__(self, params: SmoothParams, ctx: Context | None = None) -> None:
        seed = ctx.seed if ctx is not None else 0
        gen = torch.Generator().manual_seed(1234 + seed)
        base = torch.rand(params.count, params.channels, 4, 4, generator=gen)
        imgs = F.interpolate(base, size=params.size, mode="bicubic", align_corners=False).clamp(0, 1)
        # both splits non-empty whatever count and train_fraction are
        n_train = min(max(1, round(params.count * params.train_fraction)), params.count - 1)
        self.train = TensorDataset(imgs[:n_train], imgs[:n_train])
        self.test = TensorDataset(imgs[n_train:], imgs[n_train:])

    def splits(self) -> dict[str, Any]:
        return {"train": self.train, "test": self.test}
