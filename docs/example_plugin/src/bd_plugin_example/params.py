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
