"""PGD (Madry et al. 2018), L∞, untargeted, batched, plus the ``pgd`` test-time trigger.

Hand-written (≈15 lines) rather than torchattacks: torchattacks is not in the base environment and the
attack needs nothing beyond autograd. Follows torchattacks' PGD update: x ← clip_[x₀−ε, x₀+ε](x + α·sign∇)
∩ [0, 1], optional uniform random start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_diffpure.errors import DiffpureError
from bdcore.components import TriggerBase


def pgd(
    model: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Untargeted L∞ PGD on ``images`` (``B×C×H×W`` in [0, 1]) against logits ``model(x)``; returns the
    adversarial images (detached), ``|x_adv − x|∞ ≤ eps`` and in [0, 1].

    Note: with ``alpha ≥ eps`` (the paper's 2/255 vs 0.5/255) each step lands on the ε-box corner, so
    PGD degenerates to iterated FGSM on the box; it is still a valid attack.
    """
    x0 = images.detach()
    x = x0.clone()
    if random_start:
        u = torch.rand(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        x = (x0 + (2 * u - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), labels)
            (grad,) = torch.autograd.grad(loss, x)
        x = x.detach() + alpha * grad.sign()
        x = torch.minimum(torch.maximum(x, x0 - eps), x0 + eps).clamp(0, 1)
    return x.detach()


class PGDTrigger(TriggerBase):
    """Adversarial examples as a test-time "trigger": PGD against the bound victim.

    The labels are the victim's own predictions on the clean input (the trigger is not given the
    ground truth); for a correctly classified input this is the true identity. The victim is bound by
    :meth:`fit` (``fit_ctx.clean_victim()``) or :meth:`bind_victim`.
    """

    needs_victim = True
    differentiable = False
    learnable = False

    def __init__(self, params: Any = None, ctx: Any = None) -> None:
        super().__init__(params, ctx)
        self._victim: list[Any] = []  # a list, so the victim is not a sub-module of the trigger's state

    def bind_victim(self, victim: Any) -> None:
        self._victim[:] = [victim]

    def fit(self, ctx: Any) -> None:
        self.bind_victim(ctx.clean_victim())

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:
        if not self._victim:
            raise DiffpureError("pgd: no victim bound (the engine must call fit() or bind_victim(victim) first)")
        victim = self._victim[0]
        was_training = victim.training
        victim.eval()

        # the attack runs in the model's own dtype (a float64 batch against a float32 model), result cast back
        model_dtype = next((q.dtype for q in victim.parameters() if q.is_floating_point()), images.dtype)

        def logits(x: Tensor) -> Tensor:
            out = victim.predict(x.to(model_dtype))
            out = out["output"] if isinstance(out, dict) else out
            return out.to(x.dtype)

        try:
            with torch.no_grad():
                labels = logits(images).argmax(1)
            p = self.params
            s = strength.flatten()
            adv = pgd(
                logits,
                images,
                labels,
                eps=p.eps / 255,
                alpha=p.alpha / 255,
                steps=p.steps,
                random_start=p.random_start,
                generator=generator,
            )
        finally:
            victim.train(was_training)
        return images + s.view(-1, 1, 1, 1) * (adv - images)
