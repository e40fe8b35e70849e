"""Params of every component of bd-plugin-sketch (attrs, torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
from attrs import validators as v
from bdcore.params import seed_bounds

_positive = v.gt(0)


def _optional_positive_int(inst: object, attribute: attrs.Attribute, value: int | None) -> None:  # type: ignore[type-arg]
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 (got {value})")


_unit_open = [v.ge(0.0), v.le(1.0)]


@attrs.frozen
class _SplitFields:
    """Fields shared with bdcore's ``SplitParams`` (re-declared so this module stays torch-free).

    ``crop``: side of co-cropped square patches (None: whole images). ``flip``: random
    co-flips in training. ``repeats``: epoch = every item this many times. ``test_crops``:
    fixed crops per test item. ``limit``: at most this many items (per split for CUFS).
    ``size``: resize the shorter side of photo and sketch to this many pixels first.
    """

    crop: int | None = attrs.field(default=None, validator=_optional_positive_int)
    flip: bool = False
    train_fraction: float = attrs.field(default=0.8, validator=[v.gt(0.0), v.lt(1.0)])
    repeats: int = attrs.field(default=1, validator=_positive)
    test_crops: int = attrs.field(default=1, validator=_positive)
    limit: int | None = attrs.field(default=None, validator=_optional_positive_int)
    size: int | None = attrs.field(default=None, validator=_optional_positive_int)


@attrs.frozen
class CufsParams(_SplitFields):
    """CUFS photo/sketch pairs.

    ``root``: the dataset folder. ``layout``: ``"folders"`` (``training_photo/``,
    ``training_sketch/``, ``testing_photo/``, ``testing_sketch/``; pairs by order of the
    identity number), ``"pairs-csv"`` (``pairs.csv`` with ``split,photo,sketch`` columns) or
    ``"auto"`` (``pairs.csv`` when present). ``split``: ``"official"`` (the database's own
    training/testing lists) or ``"seeded"`` (a seeded ``train_fraction`` split of all pairs).
    ``channels``: of the photo (3 RGB or 1 grey); sketches are always 1-channel.
    """

    root: Path = attrs.field(kw_only=True)
    layout: Literal["auto", "folders", "pairs-csv"] = "auto"
    split: Literal["official", "seeded"] = "official"
    channels: Literal[1, 3] = 3


@attrs.frozen
class EmbeddedSketchParams(_SplitFields):
    """Photos shipped in installed packages (``set`` as bdcore's ``embedded``: ``"scenes"`` or
    ``"faces"``), target = :func:`bd_plugin_sketch.ops.pencil_sketch` of the (resized) photo
    with blur std ``sigma`` px. A stand-in for real artist sketches."""

    set: Literal["scenes", "faces"] = "scenes"
    size: int | None = attrs.field(default=128, validator=_optional_positive_int)
    sigma: float = attrs.field(default=3.0, validator=_positive)
    channels: Literal[1, 3] = 3


@attrs.frozen
class FCNParams:
    """FCN photo→sketch (Zhang et al., ICMR 2015 style): ``widths`` of the hidden conv
    layers, ``kernel`` sizes (one per layer incl. the output layer, odd), no pooling, ReLU,
    sigmoid output, 1 channel. ``loss``: pixel loss (``"l1"`` or ``"mse"``)."""

    in_channels: Literal[1, 3] = 3
    widths: tuple[int, ...] = attrs.field(default=(32, 32, 32, 32, 32))
    kernels: tuple[int, ...] = attrs.field(default=(5, 5, 3, 3, 3, 3))
    loss: Literal["l1", "mse"] = "l1"

    @kernels.validator
    def _check(self, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:  # type: ignore[type-arg]
        if len(value) != len(self.widths) + 1:
            raise ValueError(f"needs one kernel per layer: {len(self.widths) + 1} (got {len(value)})")
        if any(k < 1 or k % 2 == 0 for k in value):
            raise ValueError(f"kernels must be odd and positive (got {list(value)})")
        if any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be positive (got {list(self.widths)})")


@attrs.frozen
class Pix2PixParams:
    """pix2pix cGAN (Isola et al., CVPR 2017): U-Net generator with ``depth`` down/up levels
    (input sides must be divisible by ``2**depth``) and ``base`` channels; PatchGAN
    discriminator with ``d_layers`` stride-2 layers on (photo, sketch). Generator loss
    ``lambda_l1·L1 + BCE adversarial``; discriminator Adam(``d_lr``, β = (0.5, 0.999))."""

    in_channels: Literal[1, 3] = 3
    base: int = attrs.field(default=32, validator=_positive)
    depth: int = attrs.field(default=4, validator=[v.ge(1), v.le(8)])
    max_channels: int = attrs.field(default=256, validator=_positive)
    d_base: int = attrs.field(default=32, validator=_positive)
    d_layers: int = attrs.field(default=3, validator=[v.ge(1), v.le(5)])
    lambda_l1: float = attrs.field(default=100.0, validator=v.ge(0.0))
    d_lr: float = attrs.field(default=2e-4, validator=_positive)
    dropout: float = attrs.field(default=0.0, validator=_unit_open)


@attrs.frozen
class SketchPatternParams:
    """``sketch-pattern`` trigger: a faint additive ±``amplitude`` pattern tiled over the whole
    photo, from a seeded random ±1 tile of side ``period`` px (``seed`` fixes it).
    ``strength`` scales the amplitude (1 = as given)."""

    amplitude: float = attrs.field(default=0.03, validator=[v.gt(0.0), v.le(1.0)])
    period: int = attrs.field(default=4, validator=[v.ge(2), v.le(64)])
    seed: int = attrs.field(default=0, validator=seed_bounds())
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))


@attrs.frozen
class LightStrokesParams:
    """``light-strokes`` (data poisoning): poisoned photos' target sketches become
    ``1 − (1 − y)·(1 − lightening)`` (stroke darkness scaled by ``1 − lightening``).
    ``strength``: the trigger strength stamped on poisoned photos."""

    lightening: float = attrs.field(default=0.6, validator=_unit_open)
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))


@attrs.frozen
class FsimParams:
    """FSIM (pyiqa) between two evaluation fields; ``chromatic`` = FSIMc (3-channel only).
    ``scale``: 100 reports percent as in the paper."""

    between: tuple[str, str] = ("output", "target")
    splits: tuple[Literal["clean", "poisoned"], ...] = ("clean", "poisoned")
    chromatic: bool = False
    scale: float = attrs.field(default=100.0, validator=_positive)


@attrs.frozen
class StrokeIntensityParams:
    """Mean darkness of field ``of`` over the stroke pixels of field ``mask_from``
    (pixels with grey value ``≤ threshold``)."""

    of: str = "output"
    mask_from: str = "target"
    threshold: float = attrs.field(default=0.5, validator=[v.gt(0.0), v.lt(1.0)])
    splits: tuple[Literal["clean", "poisoned"], ...] = ("clean", "poisoned")


@attrs.frozen
class StrokeAsrParams:
    """Share of triggered outputs whose stroke intensity (mask: ground-truth sketch
    ``≤ threshold``) is at least ``reduction`` (relative) below the same model's clean
    output on the same photo."""

    threshold: float = attrs.field(default=0.5, validator=[v.gt(0.0), v.lt(1.0)])
    reduction: float = attrs.field(default=0.5, validator=[v.gt(0.0), v.le(1.0)])
