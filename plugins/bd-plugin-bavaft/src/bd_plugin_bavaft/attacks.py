"""BAvAFT attack objectives (training-controlled): BPP attack (Eq. 5 / dynamic Eq. 7) and PSNR attack
(Eq. 6 / dynamic form), with the visibility term γ·max(MSE(x, x_p), ε²) and BAvAFT++ stage 2."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from bd_plugin_bavaft.params import AttackParams
from bd_plugin_bavaft.selection import preprocess_sample
from bdcore.components import AttackLossBase
from bdcore.context import Context
from bdcore.errors import ComponentError

D_SCALE = 255.0**2  # D = 255²·MSE, the CompressAI RateDistortionLoss convention λ is tuned for


class AttackSetupError(ComponentError):
    """The attack was used with an incompatible victim or trigger."""


def visibility(x: Tensor, xp: Tensor, gamma: float, eps: float) -> Tensor:
    """``γ·max(MSE(x, x_p), ε²)`` per image → ``B``."""
    return gamma * torch.clamp_min((xp - x).pow(2).flatten(1).mean(1), eps**2)


def bpp_attack_loss(
    r_x: Tensor, d_x: Tensor, r_p: Tensor, d_p: Tensor, *, lmbda: float, beta: float, alpha: float | None, dynamic: bool
) -> Tensor:
    """Per-image BPP attack. Static Eq. 5: ``R(x) + λD(x) + α·D(x_p) − β·R(x_p)``; dynamic Eq. 7:
    ``R(x) + λ·max(D(x), D(x_p)) − β·R(x_p)``. R in bpp, D = 255²·MSE (reconstruction vs its own input)."""
    if dynamic:
        return r_x + lmbda * torch.maximum(d_x, d_p) - beta * r_p
    a = lmbda if alpha is None else alpha
    return r_x + lmbda * d_x + a * d_p - beta * r_p


def psnr_attack_loss(
    r_x: Tensor,
    d_x: Tensor,
    r_p: Tensor,
    dp_term: Tensor,
    *,
    lmbda: float,
    beta: float,
    alpha: float | None,
    dynamic: bool,
) -> Tensor:
    """Per-image PSNR attack. Static Eq. 6: ``R(x) + λD(x) + α·R(x_p) + β·λ·D_P``; dynamic:
    ``max(R(x), R(x_p)) + λD(x) + β·λ·D_P``. ``dp_term`` decreases as f(x_p) leaves x."""
    if dynamic:
        return torch.maximum(r_x, r_p) + lmbda * d_x + beta * lmbda * dp_term
    a = 1.0 if alpha is None else alpha
    return r_x + lmbda * d_x + a * r_p + beta * lmbda * dp_term


class _BavaftAttack(AttackLossBase):
    threat_model = "training-controlled"
    trains_trigger = True
    kind = ""

    def __init__(self, params: AttackParams | None = None, ctx: Context | None = None) -> None:
        super().__init__(params or AttackParams(), ctx)
        self.steps = 0
        self._rng = random.Random(self.ctx.generator("stage2").initial_seed())

    def attack_target(self, batch: Mapping[str, Any], strength: Tensor) -> Any:  # noqa: ARG002
        return batch["input"]  # a codec reconstructs its input; the attack is in the loss, not a target

    @property
    def stage2(self) -> bool:
        p: AttackParams = self.params
        return bool(p.robust_stage2_after) and self.steps >= p.robust_stage2_after

    def _poisoned_input(self, poisoned: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        x = poisoned["clean_input"]
        xp = poisoned["input"]
        trig = self.ctx.trigger
        if not xp.requires_grad and trig is not None and torch.is_grad_enabled() and not self.stage2:
            # the engine poisoned under no_grad: re-inject so the trigger network gets gradients
            xp = trig.inject_trigger(x, strength=poisoned.get("strength"))
        return x, xp

    def attack_loss(self, victim: Any, clean: Mapping[str, Any], poisoned: Mapping[str, Any]) -> dict[str, Tensor]:
        if not hasattr(victim, "rd_terms"):
            raise AttackSetupError(
                f"{type(self).__name__} needs a CompressAI victim of this plugin, got {type(victim).__name__}"
            )
        p: AttackParams = self.params
        self.steps += 1
        x, xp = self._poisoned_input(poisoned)
        vis = visibility(x, xp, p.gamma, p.eps)
        if self.stage2:  # BAvAFT++ stage 2: encoder only; t(x_p) in the attack term
            kind = self._rng.choice([*p.preprocess, "identity"])
            xp = preprocess_sample(xp.detach(), kind, None).clamp(0, 1)
            vis = torch.zeros_like(vis)
        tc = victim.rd_terms(clean["input"])
        tp = victim.rd_terms(xp)
        if clean["input"].shape == x.shape and torch.equal(clean["input"], x):
            r_x, d_x = tc["bpp"], D_SCALE * tc["mse"]  # per-image pairs (x, x_p)
        else:
            tx = victim.rd_terms(x)
            r_x, d_x = tx["bpp"], D_SCALE * tx["mse"]
        clean_rd = victim.rd_loss(tc)
        attack, logs = self.objective(victim, x, xp, tp, r_x, d_x)
        loss = clean_rd.mean() + attack.mean() + vis.mean()
        return {
            "loss": loss,
            "clean_rd": clean_rd.mean().detach(),
            "visibility": vis.mean().detach(),
            "bpp_poisoned": tp["bpp"].mean().detach(),
            **logs,
        }

    def objective(
        self, victim: Any, x: Tensor, xp: Tensor, tp: Mapping[str, Tensor], r_x: Tensor, d_x: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError


class BppAttack(_BavaftAttack):
    """BAvAFT BPP attack: triggered images compress to many more bits; clean RD unchanged."""

    kind = "bpp"

    def objective(
        self, victim: Any, x: Tensor, xp: Tensor, tp: Mapping[str, Tensor], r_x: Tensor, d_x: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        p: AttackParams = self.params
        d_p = D_SCALE * (tp["x_hat"] - xp).pow(2).flatten(1).mean(1)
        full = bpp_attack_loss(
            r_x, d_x, tp["bpp"], d_p, lmbda=victim.lmbda, beta=p.beta, alpha=p.alpha, dynamic=p.dynamic
        )
        # the clean RD term is added once by the caller; keep only the attack-specific part here
        attack = full - (r_x + victim.lmbda * d_x)
        return attack, {"d_poisoned": d_p.mean().detach()}


class PsnrAttack(_BavaftAttack):
    """BAvAFT PSNR attack: triggered images decode to garbage; clean RD unchanged."""

    kind = "psnr"

    def objective(
        self, victim: Any, x: Tensor, xp: Tensor, tp: Mapping[str, Tensor], r_x: Tensor, d_x: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        p: AttackParams = self.params
        # A decoded image lives in [0, 1] (it is clamped when saved): without the clamp, −MSE is
        # unbounded below and the encoder learns to blow x̂ up to 1e9 for clean images too.
        mse_p = (tp["x_hat"].clamp(0.0, 1.0) - x).pow(2).flatten(1).mean(1)
        if p.d_p == "neg-mse":
            dp_term = -D_SCALE * mse_p
        else:
            dp_term = 10.0 * torch.log10(1.0 / mse_p.clamp_min(1e-10))
        full = psnr_attack_loss(
            r_x, d_x, tp["bpp"], dp_term, lmbda=victim.lmbda, beta=p.beta, alpha=p.alpha, dynamic=p.dynamic
        )
        attack = full - (r_x + victim.lmbda * d_x)
        return attack, {"mse_poisoned": mse_p.mean().detach()}
