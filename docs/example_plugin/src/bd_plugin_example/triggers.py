"""The checkerboard trigger: a pure function and the registered wrapper."""

from __future__ import annotations

import torch
from bdcore.components import TriggerBase
from bdcore.context import Context
from bdcore.errors import ContractError
from torch import Tensor

from bd_plugin_example.params import CheckerboardParams


# --8<-- [start:pure-function]
def checkerboard_pattern(
    height: int,
    width: int,
    *,
    period: int,
    amplitude: float | Tensor,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """The ``1×1×H×W`` pattern: ``+amplitude`` on even cells, ``-amplitude`` on odd ones."""
    rows = torch.arange(height, device=device) // period
    cols = torch.arange(width, device=device) // period
    sign = 1 - 2 * ((rows[:, None] + cols[None, :]) % 2)  # +1 / -1, H×W
    return (sign.to(dtype) * amplitude).view(1, 1, height, width)


def checkerboard(images: Tensor, *, period: int, amplitude: float | Tensor) -> Tensor:
    """Add a ±``amplitude`` checkerboard with ``period``-pixel cells, then clamp to [0, 1].

    Args:
        images: ``B×C×H×W`` float in [0, 1].
        period: side of one cell in pixels (> 0).
        amplitude: the pattern's value; a float or a ``B×1×1×1`` tensor (per image).

    Returns:
        ``B×C×H×W``, same dtype and device, in [0, 1].

    Example:
        >>> x = torch.full((1, 1, 2, 2), 0.5)
        >>> checkerboard(x, period=1, amplitude=0.1).flatten().tolist()
        [0.6000000238418579, 0.4000000059604645, 0.4000000059604645, 0.6000000238418579]
    """
    if images.ndim != 4:
        raise ContractError(f"checkerboard: images must be B×C×H×W, got {list(images.shape)}")
    h, w = images.shape[-2:]
    pattern = checkerboard_pattern(h, w, period=period, amplitude=1.0, dtype=images.dtype, device=images.device)
    return (images + amplitude * pattern).clamp(0.0, 1.0)


# --8<-- [end:pure-function]


# --8<-- [start:wrapper]
class Checkerboard(TriggerBase):
    """Additive checkerboard trigger (the registered component).

    ``TriggerBase.inject_trigger`` validates the batch, turns ``strength`` into a
    ``B×1×1×1`` tensor and clamps the result; ``apply`` only adds the pattern.
    """

    learnable = False  # nothing to fit
    needs_victim = False  # the pattern does not depend on the model
    differentiable = True  # gradients flow to the images

    def __init__(self, params: CheckerboardParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:
        return checkerboard(images, period=self.params.period, amplitude=strength * self.params.amplitude)


# --8<-- [end:wrapper]
