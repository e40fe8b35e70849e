"""LIRA (Doan et al., ICCV 2021): a learnable, imperceptible additive trigger ``T(x) = clip(x + ε·G(x))``.

G is a small U-Net with a tanh output (official CIFAR generator: a UNet with AvgPool down and
bilinear up; here slimmer, ``width``/``depth``). The trigger is ``learnable``: its parameters are
trained jointly with the victim by a training-controlled attack loss that declares
``trains_trigger`` (LIRA's stage 1: the victim minimises ``α·L(f(x), y) + (1−α)·L(f(T(x)), y_t)``
while G minimises ``L(f(T(x)), y_t)``). :func:`lira_joint_loss` is that objective for any task.

Optional ``fit``: if the run gives the trigger fit steps, G is first trained against the *frozen
clean victim* to move its outputs towards a simple task-generic target (``target``: zeros, ones or
the inverted clean output) — LIRA's stage-1 (a) update without the victim update, i.e. an
adversarial warm start. Strength α scales ε.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_baselines.triggers._nets import SmallUNet
from bdcore.components import TriggerBase


def lira(
    images: Tensor, generator_net: Callable[[Tensor], Tensor], *, eps: float = 0.05, strength: float | Tensor = 1.0
) -> Tensor:
    """``clamp(x + strength·eps·tanh(G(x)))`` for ``B×C×H×W`` images in [0, 1]."""
    s = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    return (images + (eps * s) * torch.tanh(generator_net(images))).clamp(0.0, 1.0)


def _output(pred: Tensor | Mapping[str, Tensor]) -> Tensor:
    return pred["output"] if isinstance(pred, Mapping) else pred


def attack_target_like(clean_out: Tensor, target: str) -> Tensor:
    """The fit-stage target: zeros, ones, or ``1 − clean output``."""
    if target == "zeros":
        return torch.zeros_like(clean_out)
    if target == "ones":
        return torch.ones_like(clean_out)
    return 1.0 - clean_out


def lira_joint_loss(
    victim: Callable[[Tensor], Tensor | Mapping[str, Tensor]],
    trigger: LIRA,
    inputs: Tensor,
    clean_target: Tensor,
    attack_target: Tensor,
    *,
    alpha: float = 0.5,
    distance: Callable[[Tensor, Tensor], Tensor] = F.mse_loss,
) -> dict[str, Tensor]:
    """LIRA's joint objective ``α·d(f(x), y) + (1−α)·d(f(T(x)), y_t)`` (gradients reach f and G)."""
    clean = distance(_output(victim(inputs)), clean_target)
    backdoor = distance(_output(victim(trigger.inject_trigger(inputs))), attack_target)
    return {"loss": alpha * clean + (1 - alpha) * backdoor, "clean": clean.detach(), "backdoor": backdoor.detach()}


class LIRA(TriggerBase):
    """Registered ``lira`` trigger: learnable generator, ε-normalised tanh output."""

    learnable = True
    needs_victim = True  # fit() trains G against the clean victim: the fit stage's key must include it
    differentiable = True

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        channels = int(self.ctx.options.get("channels", 3))
        gen = self.ctx.generator("lira-init")
        self.net = SmallUNet(channels, channels, width=params.width, depth=params.depth)
        with torch.no_grad():  # seeded init, independent of the global RNG
            for p in self.net.parameters():
                if p.ndim > 1:
                    bound = (6.0 / (p[0].numel() + p.shape[0] * p[0, 0].numel())) ** 0.5
                    p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
                else:
                    p.zero_()

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        dt = self.net.head.weight.dtype  # run the net in its own dtype, return the images' dtype
        return lira(images, lambda x: self.net(x.to(dt)).to(x.dtype), eps=self.params.eps, strength=strength)

    def fit(self, ctx) -> None:  # noqa: ANN001
        """Warm-start G against the frozen clean victim (see module docstring); no-op at 0 steps."""
        if ctx.steps <= 0:
            return
        victim = ctx.clean_victim()
        # the clean victim is shared (evaluation, from_clean attacks): freeze it only for the fit
        flags = [(p, p.requires_grad) for p in victim.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            self._fit_against(victim, ctx)
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)

    def _fit_against(self, victim, ctx) -> None:  # noqa: ANN001
        opt = torch.optim.Adam(self.net.parameters(), lr=self.params.lr)
        batches = ctx.batches(generator_salt="lira")
        with ctx.ctx.progress("lira fit", total=ctx.steps) as bar:
            for step in range(ctx.steps):
                x = next(batches)["input"]
                with torch.no_grad():
                    target = attack_target_like(_output(victim.predict(x)), self.params.target)
                loss = F.mse_loss(_output(victim.predict(self.inject_trigger(x))), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update(step + 1, loss=loss.detach())
