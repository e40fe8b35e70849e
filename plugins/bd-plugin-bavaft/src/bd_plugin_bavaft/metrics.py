"""Rate metrics read from the codec victim's extras (real and estimated bpp); face-identity similarity."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_bavaft.downstream import LazyFaceEmbedder, freeze
from bd_plugin_bavaft.params import FaceIdMetricParams, RateMetricParams
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


class FaceIdSimilarity(LazyFaceEmbedder, MeanOverImages):
    """Mean cosine similarity of η embeddings between two evaluation fields (default the clean input and
    the decoded output), per split: high on clean images, low on triggered ones after the attack."""

    higher_is_better: ClassVar[bool | None] = None

    def __init__(
        self, params: FaceIdMetricParams | None = None, ctx: Context | None = None, *, embedder: nn.Module | None = None
    ) -> None:
        params = params or FaceIdMetricParams()
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)  # type: ignore[assignment]
        self._embedder = freeze(embedder) if embedder is not None else None

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        """The two compared fields (``between``), less the input and output every batch holds."""
        return frozenset(self.params.between) - {"input", "output"}

    @torch.no_grad()
    def per_image(self, batch: Any) -> Tensor:
        a_name, b_name = self.params.between
        a, b = batch.field(a_name), batch.field(b_name)
        if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.ndim != 4 or b.ndim != 4:
            raise ContractError(f"metric {self.name}: fields {a_name!r} and {b_name!r} must be B×C×H×W images")
        eta = self.embedder.to(a.device)
        return F.cosine_similarity(eta(a.clamp(0, 1)), eta(b.clamp(0, 1)), dim=1)
