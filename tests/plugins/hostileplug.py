"""A test plugin whose components misbehave on request (``mode``), one way at a time.

Each component behaves like the toy one until its ``mode`` param names a way to break its
contract; tests check that the engine stops with a message naming the component, its plugin and
what was expected.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import torch
from torch import Tensor

from bdcore import hookimpl
from bdcore.components import DefenseBase, DefenseOutcome, MetricBase
from bdcore.testing.toy import DenoiserParams, InvertParams, PatchParams, ToyDenoiser, ToyInvertControlled, ToyPatch

ANSI_ERROR = "\x1b[1;31mCUDA error: device-side assert\x1b[0m"


@attrs.frozen
class TriggerMode(PatchParams):
    mode: Literal["ok", "shape", "list", "int"] = "ok"


class BadTrigger(ToyPatch):
    def inject_trigger(self, images: Tensor, *, strength: Any = None, generator: Any = None) -> Any:
        out = super().inject_trigger(images, strength=strength, generator=generator)
        mode = self.params.mode
        if mode == "shape":
            return out[..., :-1]
        if mode == "list":
            return out.tolist()
        if mode == "int":
            return (out * 255).to(torch.uint8)
        return out


@attrs.frozen
class VictimMode(DenoiserParams):
    mode: Literal["ok", "batch", "list", "raise", "loss"] = "ok"


class BadVictim(ToyDenoiser):
    def predict(self, inputs: Tensor) -> Any:
        out = self(inputs)
        mode = self.params_mode
        if mode == "batch":
            return out[:1]
        if mode == "list":
            return [out]
        if mode == "raise":
            raise RuntimeError(ANSI_ERROR)
        return out

    def clean_loss(self, batch: dict[str, Any]) -> Any:
        terms = super().clean_loss(batch)
        return terms["loss"] if self.params_mode == "loss" else terms


def make_victim(params: VictimMode, ctx: Any) -> BadVictim:
    victim = BadVictim(params, ctx)
    victim.params_mode = params.mode
    return victim


@attrs.frozen
class LossMode(InvertParams):
    mode: Literal["ok", "no-loss", "vector", "tensor", "target-shape", "raise"] = "ok"


class BadLoss(ToyInvertControlled):
    """Training-controlled (``mode = "target-shape"`` switches to data-poisoning)."""

    def __init__(self, params: LossMode, ctx: Any) -> None:
        super().__init__(params, ctx)
        if params.mode == "target-shape":
            self.threat_model = "data-poisoning"

    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:
        target = super().attack_target(batch, strength)
        return target[:, :1, :2] if self.params.mode == "target-shape" else target

    def attack_loss(self, victim: Any, clean: dict[str, Any], poisoned: dict[str, Any]) -> Any:
        terms = super().attack_loss(victim, clean, poisoned)
        mode = self.params.mode
        if mode == "no-loss":
            return {"total": terms["loss"]}
        if mode == "vector":
            return {"loss": terms["loss"].expand(3)}
        if mode == "tensor":
            return terms["loss"]
        if mode == "raise":
            raise ValueError(ANSI_ERROR)
        return terms


@attrs.frozen
class DefenseMode:
    mode: Literal["none", "transform-shape", "detector-count", "extra", "raise", "trainer-loss"] = "none"


class BadDefense(DefenseBase):
    stage = "input"

    def __init__(self, params: DefenseMode, ctx: Any) -> None:
        super().__init__(params, ctx)
        self.stage = "detection" if params.mode == "detector-count" else "input"  # type: ignore[misc]

    def defend(self, victim: Any, ctx: Any) -> Any:
        mode = self.params.mode
        if mode == "none":
            return None
        if mode == "transform-shape":
            return DefenseOutcome(transform=lambda x: x[:, :1])
        if mode == "detector-count":
            return DefenseOutcome(detector=lambda model, x: torch.zeros(x.shape[0] + 1))
        if mode == "extra":
            return DefenseOutcome(extra={"pruned": "many"})  # type: ignore[dict-item]
        if mode == "trainer-loss":  # fine-tuning with a loss that returns a bare number
            ctx.trainer.train(victim, ctx.batches(), 1, 1e-3, loss_fn=lambda batch: 5.0)
            return DefenseOutcome(victim=victim)
        raise RuntimeError(ANSI_ERROR)


@attrs.frozen
class MetricMode:
    mode: Literal["list", "string-value", "raise-update"] = "list"


class BadMetric(MetricBase):
    def update(self, batch: Any) -> None:
        if self.params.mode == "raise-update":
            raise IndexError(ANSI_ERROR)

    def compute(self) -> Any:
        if self.params.mode == "list":
            return [1.0]
        return {"value": "high"} if self.params.mode == "string-value" else {}


@hookimpl
def register_triggers(register: Any) -> None:
    register("bad-trigger", BadTrigger, params=TriggerMode)


@hookimpl
def register_victims(register: Any) -> None:
    register("bad-victim", make_victim, params=VictimMode)


@hookimpl
def register_attack_losses(register: Any) -> None:
    register("bad-loss", BadLoss, params=LossMode)


@hookimpl
def register_defenses(register: Any) -> None:
    register("bad-defense", BadDefense, params=DefenseMode)


@hookimpl
def register_metrics(register: Any) -> None:
    register("bad-metric", BadMetric, params=MetricMode)
