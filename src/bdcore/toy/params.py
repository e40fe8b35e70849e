"""Params of the toy plugin's components (torch-free: listing and checking stay fast)."""

from __future__ import annotations

import attrs
from attrs import validators as v

__all__ = ["DenoiserParams", "InvertParams", "PatchParams", "SmoothParams"]


@attrs.frozen
class DenoiserParams:
    """``width``: channels of the hidden layers. ``noise``: standard deviation of the Gaussian
    noise the clean loss adds to inputs (the restoration task)."""

    width: int = attrs.field(default=16, validator=[v.gt(0), v.le(1024)])
    noise: float = attrs.field(default=0.05, validator=v.ge(0.0))


@attrs.frozen
class PatchParams:
    """``size``: side of the white corner square, as a fraction of the shorter image side.
    ``amplitude``: the ± value of the checkerboard added everywhere. ``strength``: default
    trigger strength α."""

    size: float = attrs.field(default=0.25, validator=[v.gt(0.0), v.le(1.0)])
    amplitude: float = attrs.field(default=0.15, validator=[v.ge(0.0), v.le(1.0)])
    strength: float = 1.0


@attrs.frozen
class InvertParams:
    """``strength``: trigger strength α of poisoned samples. ``clean_weight``: weight of the
    clean term in the training-controlled loss (the backdoor term gets ``1 - clean_weight``)."""

    strength: float = 1.0
    clean_weight: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.le(1.0)])


@attrs.frozen
class SmoothParams:
    """``count`` seeded smooth ``size``×``size`` images with ``channels`` channels; the first
    ``train_fraction`` of them train, the rest test. Input = target."""

    count: int = attrs.field(default=32, validator=[v.gt(1), v.le(100_000)])
    size: int = attrs.field(default=16, validator=[v.gt(3), v.le(1024)])
    channels: int = attrs.field(default=3, validator=v.in_([1, 3]))
    train_fraction: float = attrs.field(default=0.75, validator=[v.gt(0.0), v.lt(1.0)])
