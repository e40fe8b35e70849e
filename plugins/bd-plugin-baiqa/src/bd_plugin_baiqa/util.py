"""Small helpers shared by the BAIQA components."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from bdcore.errors import ComponentError


class BaiqaError(ComponentError):
    """A BAIQA component failed (bad file, missing weights, wrong setup)."""


def scores(victim: Any, images: Tensor) -> Tensor:
    """``victim.predict(images)`` as a flat ``B`` float tensor (accepts a dict with ``"output"``)."""
    out = victim.predict(images)
    if isinstance(out, Mapping):
        out = out["output"]
    return torch.as_tensor(out).reshape(images.shape[0], -1).mean(dim=1)
