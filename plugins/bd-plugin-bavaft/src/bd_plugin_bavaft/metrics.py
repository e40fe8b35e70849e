"""Rate metrics read from the codec victim's extras (real and estimated bpp)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from bd_plugin_bavaft.params import RateMetricParams
from bdcore.components import MeanOverImages
from bdcore.context import Context
from bdcore.errors import ContractError


class _ExtraMean(MeanOverImages):
    higher_is_better = None
    key: ClassVar[str] = ""

    def __init__(self, params: RateMetricParams | None = None, ctx: Context | None = None) -> None:
        params = params or RateMetricParams()
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)  # type: ignore[assignment]

    def per_image(self, batch: Any) -> Tensor:
        extras = getattr(batch, "extras", None) or {}
        if self.key not in extras:
            raise ContractError(
                f"metric {self.name}: the victim's predict() gave no {self.key!r} extra "
                "(use a compression victim such as bd-plugin-bavaft's codecs)"
            )
        return extras[self.key]


class RealBpp(_ExtraMean):
    """Mean real bits per pixel of the entropy-coded bitstreams."""

    key = "bpp"


class EstimatedBpp(_ExtraMean):
    """Mean likelihood-estimated bits per pixel."""

    key = "bpp_est"
