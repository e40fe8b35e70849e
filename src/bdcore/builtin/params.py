"""Params of the built-in components (torch-free, so ``bdcore check`` stays fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
from attrs import validators as v

from bdcore.metrics.batch import FIELDS
from bdcore.params import MAX_IMAGE_SIDE, image_side_bounds

_positive = v.gt(0)
#: most passes over the training items per epoch, and fixed crops per test item
MAX_REPEATS = 1_000_000
MAX_TEST_CROPS = 1_024


def _optional_positive_int(inst: object, attr: attrs.Attribute, value: int | None) -> None:  # type: ignore[type-arg]
    if value is not None and value <= 0:
        raise ValueError(f"must be > 0 (got {value})")


def _optional_side(inst: object, attr: attrs.Attribute, value: int | None) -> None:  # type: ignore[type-arg]
    """> 0 and <= 16384 pixels (when set)"""
    if value is not None and not 0 < value <= MAX_IMAGE_SIDE:
        raise ValueError(f"must be > 0 and <= {MAX_IMAGE_SIDE} pixels (got {value})")


@attrs.frozen
class SplitParams:
    """Fields every built-in data source shares.

    ``crop``: side of square crops (None: whole images; images in a batch must then
    share a size). ``train_fraction``: share of items for training (seeded split).
    ``repeats``: a training epoch visits every item this many times.
    ``test_crops``: fixed crops per test item. ``test_crop``: crop side for test items
    (None: same as ``crop``; 0: whole test images). ``limit``: use at most this many items.
    ``channels``: 3 (RGB) or 1 (grey).
    """

    crop: int | None = attrs.field(default=None, validator=_optional_side)
    flip: bool = False
    train_fraction: float = attrs.field(default=0.8, validator=[v.gt(0.0), v.lt(1.0)])
    repeats: int = attrs.field(default=1, validator=[_positive, v.le(MAX_REPEATS)])
    test_crops: int = attrs.field(default=1, validator=[_positive, v.le(MAX_TEST_CROPS)])
    test_crop: int | None = attrs.field(default=None, validator=v.optional(image_side_bounds(0)))
    limit: int | None = attrs.field(default=None, validator=_optional_positive_int)
    channels: Literal[1, 3] = 3


@attrs.frozen
class ImageFolderParams(SplitParams):
    """``path``: a folder of images; input = target = the image. ``test_path``: a separate
    folder of test images (e.g. train on LIVEC or ImageNet crops, test on Kodak); then every image
    of ``path`` trains, every image of ``test_path`` tests and ``train_fraction`` is unused;
    ``limit`` applies to each folder."""

    path: Path = attrs.field(kw_only=True)
    test_path: Path | None = None


@attrs.frozen
class PairedFolderParams(SplitParams):
    """``input_dir`` / ``target_dir``: images paired by file stem (``target_suffix`` is
    stripped from target stems, e.g. ``"-sz1"``)."""

    input_dir: Path = attrs.field(kw_only=True)
    target_dir: Path = attrs.field(kw_only=True)
    target_suffix: str = ""
    target_channels: Literal[1, 3] | None = None


@attrs.frozen
class ScoredCsvParams(SplitParams):
    """``csv``: a table with an image-name column and a score column; images in ``images``."""

    csv: Path = attrs.field(kw_only=True)
    images: Path = attrs.field(kw_only=True)
    name_column: str = "filename"
    score_column: str = "mos"


@attrs.frozen
class IdentityFolderParams(SplitParams):
    """``path``: one sub-folder per identity; target = the identity's class index.
    The split is per identity: ``train_fraction`` of each identity's images train."""

    path: Path = attrs.field(kw_only=True)
    size: int | None = attrs.field(default=None, validator=_optional_side)


@attrs.frozen
class EmbeddedParams(SplitParams):
    """Real photographs shipped inside installed packages (no download).

    ``set``: ``"scenes"`` (RGB photos from scikit-image, scikit-learn and
    matplotlib), ``"faces"`` (scikit-image's LFW subset, 100 grey 25×25 faces,
    resized to ``size``), ``"grey"`` (grey photos). ``size``: resize the shorter
    side to this many pixels first (None keeps the original).
    """

    set: Literal["scenes", "faces", "grey"] = "scenes"
    size: int | None = attrs.field(default=None, validator=_optional_side)


@attrs.frozen
class NoneTriggerParams:
    """The ``none`` trigger: inputs pass unchanged (clean baselines)."""

    strength: float = 1.0


@attrs.frozen
class PairMetricParams:
    """``between``: the two evaluation fields compared (see :data:`bdcore.metrics.batch.FIELDS`);
    ``splits``: which splits to compute on."""

    between: tuple[str, str] = attrs.field(default=("output", "target"))
    splits: tuple[Literal["clean", "poisoned"], ...] = ("clean", "poisoned")

    @between.validator
    def _check(self, attribute: attrs.Attribute, value: tuple[str, str]) -> None:  # type: ignore[type-arg]
        for name in value:
            if name not in FIELDS:
                raise ValueError(f"unknown field {name!r} (choose from {', '.join(FIELDS)})")
        if len(value) != 2:
            raise ValueError(f"needs exactly two fields, got {len(value)}")
