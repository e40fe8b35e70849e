"""Sketch metrics: FSIM (pyiqa), stroke intensity and the stroke-based attack success rate."""

from __future__ import annotations

from typing import Any

import torch
from bdcore.components import MeanOverImages, MetricBase
from bdcore.context import Context
from bdcore.errors import ComponentError, ContractError
from torch import Tensor

from bd_plugin_sketch.ops import stroke_intensity, stroke_reduction, to_grey
from bd_plugin_sketch.params import FsimParams, StrokeAsrParams, StrokeIntensityParams

_FSIM_CACHE: dict[bool, Any] = {}


def fsim(a: Tensor, b: Tensor, *, chromatic: bool = False) -> Tensor:
    """Per-image FSIM (Zhang et al., TIP 2011) by pyiqa, ``B`` in [0, 1] (1 = identical).

    ``a``, ``b``: ``B×C×H×W`` in [0, 1]; with ``chromatic=False`` 3-channel images are
    compared on their luma (pyiqa's YIQ Y), 1-channel ones directly. pyiqa's FSIM has no
    weights, so it works offline.
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"expected two B×C×H×W tensors of equal shape, got {list(a.shape)} and {list(b.shape)}")
    if chromatic and a.shape[1] != 3:
        raise ValueError("chromatic FSIM (FSIMc) needs 3-channel images")
    if chromatic not in _FSIM_CACHE:
        try:
            from pyiqa.archs.fsim_arch import FSIM
        except ImportError as exc:
            raise ComponentError("metric fsim needs pyiqa (pip install pyiqa)") from exc
        _FSIM_CACHE[chromatic] = FSIM(chromatic=chromatic)
    with torch.no_grad():
        return _FSIM_CACHE[chromatic](a.float().clamp(0, 1), b.float().clamp(0, 1)).to(torch.float64).flatten()


def _images(batch: Any, names: tuple[str, ...], metric: str) -> list[Tensor]:
    out = [batch.field(n) for n in names]
    for n, t in zip(names, out, strict=True):
        if not isinstance(t, Tensor) or t.ndim != 4:
            raise ContractError(f"metric {metric}: field {n!r} must be a B×C×H×W image, got {type(t).__name__}")
    return out


class Fsim(MeanOverImages):
    """FSIM between two fields (default output vs ground-truth sketch), in percent by default."""

    higher_is_better = True
    params: FsimParams

    def __init__(self, params: FsimParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)
        if tuple(params.between) != ("output", "target"):
            self.name = f"{self.name}[{params.between[0]},{params.between[1]}]"

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset(f for f in self.params.between if f not in ("output", "input"))

    def per_image(self, batch: Any) -> Tensor:
        a, b = _images(batch, tuple(self.params.between), self.name)
        if a.shape[1] != b.shape[1]:  # e.g. a 3-channel output vs a grey sketch
            a, b = to_grey(a), to_grey(b)
        return fsim(a, b, chromatic=self.params.chromatic) * self.params.scale


class StrokeIntensity(MeanOverImages):
    """Mean darkness (``1 − grey``) of ``of`` over the stroke pixels of ``mask_from``."""

    higher_is_better = None
    params: StrokeIntensityParams

    def __init__(self, params: StrokeIntensityParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)
        if params.of != "output":
            self.name = f"{self.name}[{params.of}]"

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset(f for f in (self.params.of, self.params.mask_from) if f not in ("output", "input"))

    def per_image(self, batch: Any) -> Tensor:
        img, ref = _images(batch, (self.params.of, self.params.mask_from), self.name)
        si = stroke_intensity(img, ref, self.params.threshold)
        return si[~torch.isnan(si)]


class StrokeAsr(MetricBase):
    """Share (%) of triggered outputs whose stroke intensity is ≥ ``reduction`` below the clean
    output's on the same photo (mask from the ground-truth sketch); also reports the mean
    relative reduction (``<name>/reduction``, %)."""

    higher_is_better = None  # the attacker's success; a defense wants it low
    needs = frozenset({"target", "clean_output"})
    splits = ("poisoned",)
    params: StrokeAsrParams

    def reset(self) -> None:
        self._hits = 0
        self._count = 0
        self._red = 0.0

    def update(self, batch: Any) -> None:
        out, clean, ref = _images(batch, ("output", "clean_output", "target"), self.name)
        red = stroke_reduction(out, clean, ref, self.params.threshold)
        red = red[~torch.isnan(red)]
        self._hits += int((red >= self.params.reduction).sum())
        self._count += int(red.numel())
        self._red += float(red.double().sum())

    def compute(self) -> dict[str, float]:
        n = max(self._count, 1)
        return {self.name: 100.0 * self._hits / n, f"{self.name}/reduction": 100.0 * self._red / n}
