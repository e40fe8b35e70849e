"""Rate metrics read from the codec victim's extras (real and estimated bpp); face-identity similarity;
CarToRoad pixel-wise attack success rate."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_bavaft.downstream import LazyFaceEmbedder, build_segmenter, freeze, pixel_asr_counts
from bd_plugin_bavaft.params import FaceIdMetricParams, PixelAsrParams, RateMetricParams
from bdcore.components import MeanOverImages, MetricBase
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


class PixelAsr(MetricBase):
    """CarToRoad pixel-wise ASR (Eq. 13) in %, on the poisoned split: g segments the model's decoded clean
    image (``clean_output``) and its decoded triggered image (``output``); over the whole test set,
    ``100·Σ[g(f(x)) = s ∧ g(f(x_p)) = t] / Σ[g(f(x)) = s]`` (a ratio of sums, as Eq. 13's two expectations).
    Also reports ``<name>/source_pixels``, the denominator's share of all pixels (NaN ASR when it is 0)."""

    higher_is_better: ClassVar[bool | None] = True
    needs: ClassVar[frozenset[str]] = frozenset({"clean_output"})

    def __init__(
        self, params: PixelAsrParams | None = None, ctx: Context | None = None, *, segmenter: nn.Module | None = None
    ) -> None:
        params = params or PixelAsrParams()
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)  # type: ignore[assignment]
        self._segmenter = segmenter

    @property
    def segmenter(self) -> nn.Module:
        if self._segmenter is None:
            self._segmenter = build_segmenter(self.params, self.ctx)
        return self._segmenter

    def reset(self) -> None:
        self._hits = 0
        self._source = 0
        self._pixels = 0

    @torch.no_grad()
    def update(self, batch: Any) -> None:
        clean, out = batch.clean_output, batch.output
        if not isinstance(clean, Tensor) or not isinstance(out, Tensor) or clean.ndim != 4 or out.ndim != 4:
            raise ContractError(f"metric {self.name}: clean_output and output must be B×3×H×W decoded images")
        seg = self.segmenter.to(out.device)
        p: PixelAsrParams = self.params
        hits, source = pixel_asr_counts(
            seg(clean.clamp(0, 1)).argmax(1), seg(out.clamp(0, 1)).argmax(1), p.source_class, p.target_class
        )
        self._hits += int(hits.sum())
        self._source += int(source.sum())
        self._pixels += out.shape[0] * out.shape[2] * out.shape[3]

    def compute(self) -> dict[str, float]:
        asr = 100.0 * self._hits / self._source if self._source else float("nan")
        return {self.name: asr, f"{self.name}/source_pixels": self._source / max(self._pixels, 1)}
