"""The built-in components: the ``none`` trigger and defense, the ``evasion`` attack, PSNR / SSIM / MS-SSIM."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bdcore.builtin.params import PairMetricParams
from bdcore.components import AttackLossBase, DefenseBase, DefenseOutcome, MeanOverImages, TriggerBase
from bdcore.context import Context
from bdcore.errors import ContractError
from bdcore.metrics import image
from bdcore.protocols import Batch


class NoTrigger(TriggerBase):
    """Identity trigger: the clean reference of a comparison table."""

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # type: ignore[override]
        return images.clone()


class Evasion(AttackLossBase):
    """Test-time (evasion) attack: the trigger — typically an adversarial perturbation such as
    PGD — is applied to test inputs only; no training sample is poisoned and the clean victim is
    the model under attack. The attacker's goal is to leave the clean target (``attack_target``
    is the ground truth, so metrics can measure how far outputs move from it)."""

    threat_model = "evasion"
    target_description = (
        "none beyond leaving the correct output: a test-time perturbation of the clean victim's inputs "
        "(the attack target field holds the ground truth)"
    )

    def attack_target(self, batch: Batch, strength: Tensor) -> Any:  # noqa: ARG002
        return batch["target"]


class NoDefense(DefenseBase):
    """No defense: evaluates the attacked model unchanged."""

    stage = "input"

    def defend(self, victim: Any, ctx: Any) -> DefenseOutcome:
        return DefenseOutcome()


class PairMetric(MeanOverImages):
    """A full-reference image metric between two fields of the evaluation batch."""

    higher_is_better = True
    fn: Any = None

    def __init__(self, params: PairMetricParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)
        a, b = params.between
        # An unlabelled metric comparing other fields says which in its name.
        registered = ctx.options.get("registered_name") if ctx is not None else None
        if (a, b) != ("output", "target") and self.name == registered:
            self.name = f"{self.name}[{a},{b}]"

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset(f for f in self.params.between if f not in ("output", "input"))

    def per_image(self, batch: Any) -> Tensor:
        a, b = (batch.field(f) for f in self.params.between)
        if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.ndim != 4 or a.shape != b.shape:
            raise ContractError(
                f"metric {self.name}: fields {self.params.between} must be two images of one shape, got "
                f"{getattr(a, 'shape', type(a).__name__)} and {getattr(b, 'shape', type(b).__name__)}"
            )
        return type(self).fn(a.clamp(0, 1), b.clamp(0, 1))  # type: ignore[no-any-return]


class PSNR(PairMetric):
    fn = staticmethod(image.psnr)


class SSIM(PairMetric):
    fn = staticmethod(image.ssim)


class MSSSIM(PairMetric):
    fn = staticmethod(image.ms_ssim)
