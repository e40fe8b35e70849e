"""Params of the example components.

They import only attrs (no torch), so ``bdcore check`` and ``bdcore list`` stay fast.
"""

from __future__ import annotations

import attrs
from attrs import validators as v


# --8<-- [start:trigger-params]
@attrs.frozen
class CheckerboardParams:
    """``period``: side of one checkerboard cell in pixels. ``amplitude``: the
    pattern's ± value added to the image. ``strength``: default trigger strength α
    (the amplitude is multiplied by it; 0 leaves images unchanged)."""

    period: int = attrs.field(default=4, validator=v.gt(0))
    amplitude: float = attrs.field(default=0.05, validator=[v.gt(0.0), v.le(1.0)])
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))


# --8<-- [end:trigger-params]


# --8<-- [start:metric-params]
@attrs.frozen
class AsrPsnrParams:
    """``threshold``: a poisoned output counts as a success when its PSNR to the
    attack target is at least this many dB."""

    threshold: float = attrs.field(default=20.0, validator=v.gt(0.0))


# --8<-- [end:metric-params]


# --8<-- [start:victim-params]
@attrs.frozen
class TinyRestorerParams:
    """``width``: channels of the hidden layers. ``depth``: number of hidden 3×3 conv layers."""

    width: int = attrs.field(default=16, validator=v.gt(0))
    depth: int = attrs.field(default=2, validator=v.ge(1))


# --8<-- [end:victim-params]


# --8<-- [start:attack-params]
@attrs.frozen
class GreyTargetParams:
    """``level``: the grey value poisoned outputs should take. ``strength``: trigger strength α
    of poisoned samples. ``clean_weight``: weight of the clean term of the training-controlled
    loss (the backdoor term gets ``1 - clean_weight``)."""

    level: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.le(1.0)])
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))
    clean_weight: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.le(1.0)])


# --8<-- [end:attack-params]


# --8<-- [start:defense-params]
def _odd(instance: object, attribute: attrs.Attribute, value: int) -> None:  # type: ignore[type-arg]
    if value % 2 != 1:
        raise ValueError(f"must be odd (got {value})")


@attrs.frozen
class MedianFilterParams:
    """``kernel``: side of the square median window (odd, pixels)."""

    kernel: int = attrs.field(default=3, validator=[v.ge(3), _odd])


@attrs.frozen
class CleanFinetuneParams:
    """``steps`` of fine-tuning on the defender's clean data, at learning rate ``lr``."""

    steps: int = attrs.field(default=50, validator=v.gt(0))
    lr: float = attrs.field(default=1e-3, validator=v.gt(0.0))


@attrs.frozen
class BlurSensitivityParams:
    """``sigma``: standard deviation (pixels) of the Gaussian blur the detector compares with."""

    sigma: float = attrs.field(default=1.0, validator=v.gt(0.0))


# --8<-- [end:defense-params]


# --8<-- [start:dataset-params]
@attrs.frozen
class ShapesParams:
    """``count`` seeded ``size``×``size`` RGB images of ``rectangles`` flat-coloured rectangles on a
    smooth background; the first ``train_fraction`` of them train, the rest test."""

    count: int = attrs.field(default=48, validator=v.ge(2))
    size: int = attrs.field(default=32, validator=v.ge(8))
    rectangles: int = attrs.field(default=3, validator=v.ge(0))
    train_fraction: float = attrs.field(default=0.75, validator=[v.gt(0.0), v.lt(1.0)])


# --8<-- [end:dataset-params]
