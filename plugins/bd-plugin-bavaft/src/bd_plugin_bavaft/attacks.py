"""BAvAFT attack objectives (training-controlled): BPP attack (Eq. 5 / dynamic Eq. 7) and PSNR attack
(Eq. 6 / dynamic form), with the visibility term γ·max(MSE(x, x_p), ε²) and BAvAFT++ stage 2; the
multi-trigger attack (Eq. 10-11) combining them."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from bd_plugin_bavaft.params import AttackParams, MultiAttackParams
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
    r_x: Tensor,
    d_x: Tensor,
    r_p: Tensor,
    d_p: Tensor,
    *,
    lmbda: float,
    beta: float,
    alpha: float | None,
    dynamic: bool,
    r_form: str = "bpp",
    target_ratio: float | None = None,
) -> Tensor:
    """Per-image BPP attack. Static Eq. 5: ``R(x) + λD(x) + α·D(x_p) − β·A``; dynamic Eq. 7:
    ``R(x) + λ·max(D(x), D(x_p)) − β·A``. R in bpp, D = 255²·MSE (reconstruction vs its own input).

    ``A = R(x_p)`` (paper, ``r_form = "bpp"``) or ``A = min(ln(R(x_p) / R(x)), ln target_ratio)``
    (``"log-ratio"``): scaling the rate of both images of a pair leaves it unchanged, so it only rewards
    an encoder that tells x_p from x."""
    if r_form == "log-ratio":
        gap = torch.log(r_p.clamp_min(1e-6)) - torch.log(r_x.clamp_min(1e-6))
        a_term = gap if target_ratio is None else gap.clamp_max(math.log(target_ratio))
    else:
        a_term = r_p
    if dynamic:
        return r_x + lmbda * torch.maximum(d_x, d_p) - beta * a_term
    a = lmbda if alpha is None else alpha
    return r_x + lmbda * d_x + a * d_p - beta * a_term


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
    #: the step count drives BAvAFT++'s stage 2; the stage-2 preprocessing draws come from ``_rng``
    train_state_attrs = ("steps", "_rng", "_degree_gen")

    def __init__(self, params: AttackParams | None = None, ctx: Context | None = None) -> None:
        super().__init__(params or AttackParams(), ctx)
        self.steps = 0
        self._rng = random.Random(self.ctx.generator("stage2").initial_seed())  # which preprocessing
        self._degree_gen = self.ctx.generator("stage2-degree")  # its degree / noise field

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
        # logged unclamped: the visibility term is flat below ε², so it cannot show a trigger fading away
        trigger_psnr = -10.0 * torch.log10((xp - x).detach().pow(2).flatten(1).mean(1).clamp_min(1e-12))
        xa = xp  # what the attack term sees: x_p, or t(x_p) in stage 2
        logs: dict[str, Tensor] = {}
        if self.stage2:
            # BAvAFT++ stage 2 (Eq. 18): the trigger is fixed (encoder only) and t(x_p) replaces x_p in the
            # attack objective term only; the poisoned image's other terms (D(x_p) / R(x_p)) stay on x_p
            kind = self._rng.choice([*p.preprocess, "identity"])
            xp = xp.detach()
            if kind != "identity":
                xa = preprocess_sample(xp, kind, self._degree_gen).clamp(0, 1)
            else:
                xa = xp
            vis = torch.zeros_like(vis)
        tc = victim.rd_terms(clean["input"])
        tp = victim.rd_terms(xp)
        ta = tp if xa is xp else victim.rd_terms(xa)
        if ta is not tp:
            logs["bpp_preprocessed"] = ta["bpp"].mean().detach()
        if clean["input"].shape == x.shape and torch.equal(clean["input"], x):
            r_x, d_x = tc["bpp"], D_SCALE * tc["mse"]  # per-image pairs (x, x_p)
        else:
            tx = victim.rd_terms(x)
            r_x, d_x = tx["bpp"], D_SCALE * tx["mse"]
        clean_rd = victim.rd_loss(tc)
        attack, obj_logs = self.objective(victim, x, xp, tp, r_x, d_x, attacked=ta)
        logs.update(obj_logs)
        loss = clean_rd.mean() + attack.mean() + vis.mean()
        return {
            "loss": loss,
            "clean_rd": clean_rd.mean().detach(),
            "visibility": vis.mean().detach(),
            "trigger_psnr": trigger_psnr.mean(),
            "bpp_clean": tc["bpp"].mean().detach(),
            "bpp_poisoned": tp["bpp"].mean().detach(),
            **logs,
        }

    def objective(
        self,
        victim: Any,
        x: Tensor,
        xp: Tensor,
        tp: Mapping[str, Tensor],
        r_x: Tensor,
        d_x: Tensor,
        *,
        attacked: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The attack-specific part of L_jt per image (``B``; the clean ``R(x) + λD(x)`` is added by the
        caller) and logs. ``tp``: the victim's :meth:`rd_terms` of x_p; ``attacked``: those of the image the
        attack objective term sees (t(x_p) in BAvAFT++ stage 2; None = x_p)."""
        raise NotImplementedError


class BppAttack(_BavaftAttack):
    """BAvAFT BPP attack: triggered images compress to many more bits; clean RD unchanged."""

    kind = "bpp"
    target_description = (
        "triggered images cost many more bits (their bpp is driven up); clean images keep their rate and quality"
    )

    def objective(
        self,
        victim: Any,
        x: Tensor,
        xp: Tensor,
        tp: Mapping[str, Tensor],
        r_x: Tensor,
        d_x: Tensor,
        *,
        attacked: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        p: AttackParams = self.params
        ta = tp if attacked is None else attacked
        d_p = D_SCALE * (tp["x_hat"] - xp).pow(2).flatten(1).mean(1)  # D(x_p): on x_p itself
        full = bpp_attack_loss(
            r_x,
            d_x,
            ta["bpp"],  # the attack objective R(x_p), R(t(x_p)) in stage 2
            d_p,
            lmbda=victim.lmbda,
            beta=p.beta,
            alpha=p.alpha,
            dynamic=p.dynamic,
            r_form=p.r_p,
            target_ratio=p.target_ratio,
        )
        # the clean RD term is added once by the caller; keep only the attack-specific part here
        attack = full - (r_x + victim.lmbda * d_x)
        return attack, {"d_poisoned": d_p.mean().detach()}


class PsnrAttack(_BavaftAttack):
    """BAvAFT PSNR attack: triggered images decode to garbage; clean RD unchanged."""

    kind = "psnr"
    target_description = (
        "triggered images decode to garbage (reconstruction PSNR driven down); clean images decode as before"
    )

    def objective(
        self,
        victim: Any,
        x: Tensor,
        xp: Tensor,
        tp: Mapping[str, Tensor],
        r_x: Tensor,
        d_x: Tensor,
        *,
        attacked: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        p: AttackParams = self.params
        ta = tp if attacked is None else attacked
        # D_P(x, f(x_p)), f(t(x_p)) in stage 2. A decoded image lives in [0, 1] (it is clamped when saved):
        # without the clamp, −MSE is unbounded below and the encoder learns to blow x̂ up to 1e9 for clean
        # images too.
        mse_p = (ta["x_hat"].clamp(0.0, 1.0) - x).pow(2).flatten(1).mean(1)
        if p.d_p == "neg-mse":
            dp_term = -D_SCALE * mse_p
        else:
            dp_term = 10.0 * torch.log10(1.0 / mse_p.clamp_min(1e-10))
        full = psnr_attack_loss(
            r_x, d_x, tp["bpp"], dp_term, lmbda=victim.lmbda, beta=p.beta, alpha=p.alpha, dynamic=p.dynamic
        )
        attack = full - (r_x + victim.lmbda * d_x)
        return attack, {"mse_poisoned": mse_p.mean().detach()}


def scale_grad(t: Tensor, factor: float) -> Tensor:
    """``t`` unchanged in the forward pass (bit-exact); the gradient flowing back into ``t`` is
    multiplied by ``factor``."""
    if factor == 1.0:
        return t
    d = t.detach()
    return d + (t - d) * factor


class MultiAttack(AttackLossBase):
    """BAvAFT with several triggers (paper §3.4, Eq. 10-11): the encoder g_a and one sub-trigger of a
    ``bavaft-multi`` trigger per objective are trained together.

    Per step, with ``x_p^o = T^o(x)`` (sub-trigger ``o``, with gradients) and ``A^o = L_jt^o − L(x)`` the
    attack part of ``bavaft-psnr`` / ``bavaft-bpp`` (their :meth:`objective`, same tensors, same params)::

        loss = L(x) + Σ_o α^o·A^o(x, x_p^o) + Σ_o γ·max(MSE(x, x_p^o), ε²)      (batch means)

    * Encoder (Eq. 10): its gradient is ``∂L(x) + Σ_o α^o·∂A^o``. The paper's ``Σ_o α^o·L_jt^o`` counts
      the clean term ``L(x)`` ``Σ_o α^o`` times; we count it once (with α^o = 1 and two objectives the
      paper's clean weight is 2). The visibility terms do not depend on the encoder.
    * Sub-trigger o (Eq. 11): only ``A^o`` and ``vis^o`` depend on its parameters, so it gets no gradient
      from another objective's terms. With ``exact_trigger_grad`` (default) the gradient reaching x_p^o
      through ``α^o·A^o`` is divided by α^o (:func:`scale_grad`; the forward values are unchanged), so it
      sees exactly ``∂A^o + γ·∂vis^o`` = ``∂[L_jt^o + γ·max(MSE, ε²)]``; without it, ``α^o·∂A^o + γ·∂vis^o``.

    Training batches: :meth:`poison` (with gradients enabled) triggers the batch with every sub-trigger
    once, whatever ``eval_objective`` is; under ``no_grad`` (the engine's test split) it triggers with
    ``eval_objective`` only, as any trigger. BAvAFT++ stage 2 is not offered here.
    """

    threat_model = "training-controlled"
    trains_trigger = True
    KINDS: ClassVar[Mapping[str, type[_BavaftAttack]]] = {"psnr": PsnrAttack, "bpp": BppAttack}
    train_state_attrs = ("parts",)  # each objective's step counter and generator

    def __init__(self, params: MultiAttackParams | None = None, ctx: Context | None = None) -> None:
        super().__init__(params or MultiAttackParams(), ctx)
        p: MultiAttackParams = self.params
        single = p.single()
        self.parts = {o: self.KINDS[o](single, self.ctx) for o in p.objectives}
        trig = self.ctx.trigger
        if trig is not None:
            self._check_trigger(trig)

    def _check_trigger(self, trig: Any) -> Any:
        from bd_plugin_bavaft.trigger import MultiBavaftTrigger

        if not isinstance(trig, MultiBavaftTrigger):
            raise AttackSetupError(
                f"bavaft-multi needs the bavaft-multi trigger (one sub-trigger per objective), got {type(trig).__name__}"
            )
        if tuple(trig.objectives) != tuple(self.params.objectives):
            raise AttackSetupError(
                f"the trigger's objectives {list(trig.objectives)} differ from the loss's "
                f"{list(self.params.objectives)}; set the same list (same order) in both"
            )
        return trig

    @property
    def target_description(self) -> str:  # type: ignore[override]
        """One goal per sub-trigger, in the order of ``objectives``."""
        return "; ".join(f"{o} trigger: {self.KINDS[o].target_description}" for o in self.params.objectives)

    def attack_target(self, batch: Mapping[str, Any], strength: Tensor) -> Any:  # noqa: ARG002
        return batch["input"]  # a codec reconstructs its input; the attack is in the loss

    def poison(self, batch: Mapping[str, Any], trigger: Any, *, generator: torch.Generator | None = None) -> Any:
        """As :meth:`AttackLossBase.poison`; with gradients enabled (training) also ``"objective_inputs"``:
        ``{o: x_p^o}`` from every sub-trigger, and ``"input"`` is ``eval_objective``'s of those."""
        if not torch.is_grad_enabled():
            return super().poison(batch, trigger, generator=generator)  # type: ignore[arg-type]
        trig = self._check_trigger(trigger)
        strength = self.sample_strength(batch, generator)  # type: ignore[arg-type]
        x = batch["input"]
        xps = {o: trig.inject(o, x, strength, generator=generator) for o in self.params.objectives}
        poisoned = dict(batch)
        poisoned.update(
            clean_input=x,
            input=xps[trig.eval_objective],
            strength=strength,
            attack_target=self.attack_target(batch, strength),
            objective_inputs=xps,
        )
        return poisoned

    def _objective_inputs(self, poisoned: Mapping[str, Any]) -> dict[str, Tensor]:
        xps = poisoned.get("objective_inputs")
        need_grad = torch.is_grad_enabled()
        if xps is not None and all(xps[o].requires_grad or not need_grad for o in self.params.objectives):
            return {o: xps[o] for o in self.params.objectives}
        trig = self._check_trigger(self.ctx.trigger)
        x = poisoned["clean_input"]
        return {o: trig.inject(o, x, poisoned.get("strength")) for o in self.params.objectives}

    def attack_loss(self, victim: Any, clean: Mapping[str, Any], poisoned: Mapping[str, Any]) -> dict[str, Tensor]:
        """``clean["input"]`` and ``poisoned["clean_input"]`` ``B×3×H×W`` in [0, 1] → the loss above and
        per-objective logs (``"<o>/visibility"``, ``"<o>/bpp_poisoned"``, ``"<o>/mse_poisoned"`` or
        ``"<o>/d_poisoned"``)."""
        if not hasattr(victim, "rd_terms"):
            raise AttackSetupError(
                f"bavaft-multi needs a CompressAI victim of this plugin, got {type(victim).__name__}"
            )
        p: MultiAttackParams = self.params
        x = poisoned["clean_input"]
        xps = self._objective_inputs(poisoned)
        tc = victim.rd_terms(clean["input"])
        if clean["input"].shape == x.shape and torch.equal(clean["input"], x):
            r_x, d_x = tc["bpp"], D_SCALE * tc["mse"]
        else:
            tx = victim.rd_terms(x)
            r_x, d_x = tx["bpp"], D_SCALE * tx["mse"]
        clean_rd = victim.rd_loss(tc).mean()
        loss = clean_rd
        logs: dict[str, Tensor] = {"clean_rd": clean_rd.detach()}
        for o, a in zip(p.objectives, p.alphas, strict=True):
            vis = visibility(x, xps[o], p.gamma, p.eps).mean()
            xp = scale_grad(xps[o], 1.0 / a) if p.exact_trigger_grad else xps[o]
            tp = victim.rd_terms(xp)
            attack, extra = self.parts[o].objective(victim, x, xp, tp, r_x, d_x)
            loss = loss + a * attack.mean() + vis
            logs[f"{o}/attack"] = attack.mean().detach()
            logs[f"{o}/visibility"] = vis.detach()
            logs[f"{o}/bpp_poisoned"] = tp["bpp"].mean().detach()
            logs.update({f"{o}/{k}": t for k, t in extra.items()})
        return {"loss": loss, **logs}
