"""Shared helpers for the defense tests: a tiny victim, a clean dataset and a DefenseContext."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from bdcore.components import VictimBase
from bdcore.context import Context, DefenseContext, Trainer


class TinyDenoiser(VictimBase):
    """x + conv_out(relu(conv1(x))): a two-layer residual image-to-image model."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, hidden, 3, padding=1)
        self.conv_out = nn.Conv2d(hidden, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_out(torch.relu(self.conv1(x)))


class ListDataset:
    """Samples ``{"input": noisy, "target": clean}`` from a fixed image tensor."""

    def __init__(self, clean: Tensor, noise: float = 0.0) -> None:
        gen = torch.Generator().manual_seed(7)
        self.clean = clean
        self.noisy = (clean + noise * torch.randn(clean.shape, generator=gen)).clamp(0, 1)

    def __len__(self) -> int:
        return self.clean.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input": self.noisy[i], "target": self.clean[i]}


def simple_train(
    victim: Any, batches: Any, steps: int, lr: float, loss_fn: Any = None, params: Any = None
) -> dict[str, float]:
    """A minimal stand-in for the engine's trainer: Adam on the victim's clean loss."""
    opt = torch.optim.Adam(list(params or victim.trainable_parameters("clean")), lr=lr)
    total = 0.0
    for _ in range(steps):
        batch = next(batches)
        loss = (loss_fn or victim.clean_loss)(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach())
    return {"loss": total / max(steps, 1)}


def smooth_images(n: int, size: int = 16, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size // 4, size // 4, generator=gen)
    return nn.functional.interpolate(base, size=size, mode="bilinear", align_corners=False).clamp(0.05, 0.9)


def defense_context(dataset: Any, *, seed: int = 0, batch_size: int = 4) -> DefenseContext:
    return DefenseContext(
        ctx=Context(seed=seed),
        clean_train=dataset,
        batch_size=batch_size,
        trainer=Trainer(train=simple_train),
        build_victim=TinyDenoiser,
        test_clean_batches=lambda: iter(()),
        test_poisoned_batches=lambda: iter(()),
    )
