"""The ``asfiba`` attack loss: Eq. 5 with the degradation objective I_0.1 and pseudo triggers (Eq. 4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_asfiba.degradation import degrade_01
from bd_plugin_asfiba.params import ASFIBAParams
from bdcore.components import AttackLossBase
from bdcore.context import Context
from bdcore.errors import ComponentError
from bdcore.protocols import PseudoTrigger


def restoration_distance(a: Tensor, b: Tensor, norm: str) -> Tensor:
    """The ‖·‖ of Eq. 5 as a mean over pixels (``"l1"``: mean |a − b|, ``"l2"``: mean (a − b)²)."""
    return F.l1_loss(a, b) if norm == "l1" else F.mse_loss(a, b)


def asfiba_loss(
    clean_out: Tensor,
    target: Tensor,
    poisoned_out: Tensor,
    target_01: Tensor,
    pseudo_out: Tensor | None,
    *,
    lambda1: float = 0.75,
    lambda2: float = 0.125,
    norm: str = "l1",
) -> dict[str, Tensor]:
    """Eq. 5: ``λ1‖F(I)−I_gt‖ + λ2‖F(I_p)−I_0.1‖ + (1−λ1−λ2)‖F(I'_p)−I_gt‖`` (all ``B×C×H×W``).

    Without pseudo outputs (a trigger with no pseudo triggers) the last term is dropped."""
    clean = restoration_distance(clean_out, target, norm)
    backdoor = restoration_distance(poisoned_out, target_01, norm)
    loss = lambda1 * clean + lambda2 * backdoor
    terms = {"clean": clean, "backdoor": backdoor}
    if pseudo_out is not None:
        pseudo = restoration_distance(pseudo_out, target, norm)
        loss = loss + (1 - lambda1 - lambda2) * pseudo
        terms["pseudo"] = pseudo
    return {"loss": loss, **terms}


class ASFIBA(AttackLossBase):
    """Training-controlled AS-FIBA: target I_0.1 of the benign LQ input; Eq. 5 each step.

    ``I'_p`` of Eq. 5 comes from the trigger's ``pseudo_poison`` (:class:`bdcore.protocols.PseudoTrigger`),
    so any trigger family with pseudo triggers trains "under the same target and loss": SF-I-Net (pseudo
    trigger images, Eq. 4) and, from bd-plugin-baselines, WaNet / FIBA (their cross samples) and ISSBA
    (another secret). Nothing here imports those plugins."""

    threat_model: ClassVar[str] = "training-controlled"  # type: ignore[assignment]
    trains_trigger: ClassVar[bool] = False
    train_state_attrs = ("_gen",)  # the pseudo-trigger draws advance every step

    def __init__(self, params: ASFIBAParams | None = None, ctx: Context | None = None) -> None:
        super().__init__(params or ASFIBAParams(), ctx)
        self._gen = self.ctx.generator("pseudo-triggers")
        self._warned = False
        if self.ctx.trigger is not None:
            self._pseudo_source(self.ctx.trigger)  # a "required" pseudo term fails before any training

    def _pseudo_source(self, trigger: Any) -> PseudoTrigger | None:
        """The trigger when it offers pseudo triggers and the params want them, else None (or raise)."""
        mode = self.params.pseudo
        if mode == "off":
            return None
        if isinstance(trigger, PseudoTrigger):
            return trigger
        name = type(trigger).__name__ if trigger is not None else "no trigger"
        if mode == "required":
            raise ComponentError(
                f"attack.loss.params.pseudo: Eq. 5's pseudo term needs a trigger with pseudo_poison(images, "
                f"generator) ({name} has none); use sf-i-net or bd-plugin-baselines' wanet/fiba/issba, or set "
                'pseudo = "auto" (drop the term for such triggers) or "off"'
            )
        if not self._warned:
            self.ctx.log(f"asfiba: the trigger ({name}) has no pseudo triggers; Eq. 5's pseudo term is dropped")
            self._warned = True
        return None

    def attack_target(self, batch: Mapping[str, Any], strength: Tensor) -> Tensor:  # noqa: ARG002
        return degrade_01(batch["input"], self.params.factor)

    def attack_loss(self, victim: Any, clean: Mapping[str, Any], poisoned: Mapping[str, Any]) -> dict[str, Tensor]:
        p: ASFIBAParams = self.params
        source = self._pseudo_source(self.ctx.trigger)
        pseudo_in = None
        if source is not None:
            with torch.no_grad():
                pseudo_in = source.pseudo_poison(clean["input"], self._gen)
        pseudo_out = victim(pseudo_in) if pseudo_in is not None else None
        return asfiba_loss(
            victim(clean["input"]),
            clean["target"],
            victim(poisoned["input"]),
            poisoned["attack_target"],
            pseudo_out,
            lambda1=p.lambda1,
            lambda2=p.lambda2,
            norm=p.norm,
        )
