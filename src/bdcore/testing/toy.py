"""A tiny, complete bdcore plugin for tests and the docs tutorial.

* victim ``toy-denoiser``: a 3-layer residual CNN; clean task = restore the image
  from a noisy copy (noise added inside the victim, seeded per batch);
* trigger ``toy-patch``: a faint checkerboard added everywhere plus a white square in
  the bottom-right corner (size relative to the image) — local enough for a tiny
  CNN to learn in a few dozen steps;
* attacks ``toy-invert`` (data-poisoning: poisoned targets are the inverted
  image) and ``toy-invert-controlled`` (training-controlled, same target);
* dataset ``toy-smooth``: seeded smooth random images (no files needed).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from torch import Tensor, nn

from bdcore import hookimpl
from bdcore.components import AttackLossBase, TriggerBase, VictimBase
from bdcore.context import Context
from bdcore.data.dataset import TensorDataset
from bdcore.registry import Register


@attrs.frozen
class DenoiserParams:
    width: int = attrs.field(default=16, validator=[v.gt(0), v.le(1024)])
    noise: float = attrs.field(default=0.05, validator=v.ge(0.0))


@attrs.frozen
class PatchParams:
    size: float = attrs.field(default=0.25, validator=[v.gt(0.0), v.le(1.0)])
    amplitude: float = attrs.field(default=0.15, validator=[v.ge(0.0), v.le(1.0)])
    strength: float = 1.0


@attrs.frozen
class InvertParams:
    strength: float = 1.0
    clean_weight: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.le(1.0)])


@attrs.frozen
class SmoothParams:
    count: int = attrs.field(default=32, validator=[v.gt(1), v.le(100_000)])
    size: int = attrs.field(default=16, validator=[v.gt(3), v.le(1024)])
    channels: int = attrs.field(default=3, validator=v.in_([1, 3]))
    train_fraction: float = attrs.field(default=0.75, validator=[v.gt(0.0), v.lt(1.0)])


class ToyDenoiser(VictimBase):
    """Residual 3-layer CNN restoring a noisy image."""

    task = "restoration"

    def __init__(self, params: DenoiserParams, ctx: Context) -> None:
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

    def __init__(self, params: PatchParams, ctx: Context) -> None:
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
    """Poisoned inputs should come out inverted (1 − image)."""

    threat_model = "data-poisoning"

    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:
        return 1.0 - batch["target"]


class ToyInvertControlled(ToyInvert):
    """The same target, trained with an explicit clean + backdoor loss."""

    threat_model = "training-controlled"  # type: ignore[assignment]

    def attack_loss(self, victim: Any, clean: dict[str, Any], poisoned: dict[str, Any]) -> dict[str, Tensor]:
        w = self.params.clean_weight
        clean_term = F.l1_loss(victim(clean["input"]), clean["target"])
        backdoor = F.l1_loss(victim(poisoned["input"]), poisoned["attack_target"])
        return {"loss": w * clean_term + (1 - w) * backdoor, "clean": clean_term, "backdoor": backdoor}


class ToySmooth:
    """Seeded smooth random images; input = target."""

    def __init__(self, params: SmoothParams, ctx: Context) -> None:
        gen = torch.Generator().manual_seed(1234 + ctx.seed)
        base = torch.rand(params.count, params.channels, 4, 4, generator=gen)
        imgs = F.interpolate(base, size=params.size, mode="bicubic", align_corners=False).clamp(0, 1)
        n_train = round(params.count * params.train_fraction)
        self.train = TensorDataset(imgs[:n_train], imgs[:n_train])
        self.test = TensorDataset(imgs[n_train:], imgs[n_train:])

    def splits(self) -> dict[str, Any]:
        return {"train": self.train, "test": self.test}


@hookimpl
def register_victims(register: Register) -> None:
    register("toy-denoiser", ToyDenoiser, params=DenoiserParams, summary="Tiny residual CNN denoiser (tests)")


@hookimpl
def register_triggers(register: Register) -> None:
    register("toy-patch", ToyPatch, params=PatchParams, summary="White corner square (tests)")


@hookimpl
def register_attack_losses(register: Register) -> None:
    register("toy-invert", ToyInvert, params=InvertParams, summary="Poisoned outputs → inverted image (tests)")
    register(
        "toy-invert-controlled",
        ToyInvertControlled,
        params=InvertParams,
        summary="Training-controlled variant of toy-invert (tests)",
    )


@hookimpl
def register_datasets(register: Register) -> None:
    register("toy-smooth", ToySmooth, params=SmoothParams, summary="Seeded smooth random images (tests)")
