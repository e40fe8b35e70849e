"""Params of the diffpure components (torch-free, attrs frozen, validated)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
from attrs import validators as v

from bdcore.builtin.params import SplitParams
from bdcore.params import batch_size_bounds, image_side_bounds, steps_bounds


def _opt_nonneg(inst: object, attr: attrs.Attribute, value: int | None) -> None:  # type: ignore[type-arg]
    if value is not None and value < 0:
        raise ValueError(f"{attr.name} must be >= 0 (got {value})")


def _scales(inst: object, attr: attrs.Attribute, value: tuple[int, ...]) -> None:  # type: ignore[type-arg]
    if not value or any(s < 1 for s in value):
        raise ValueError(f"{attr.name} must be a non-empty list of integers >= 1 (got {value})")


@attrs.frozen
class DDNMParams:
    """Shared by the DDNM defenses.

    Diffusion prior: ``model`` = a local diffusers UNet folder or a state-dict file (+ ``sha256``,
    ``unet_config`` for a bare file). Without ``model`` a small DDPM is trained on the defender's clean
    training images (``fit_*``) and cached in ``cache_dir`` (default: ``<output root>/.cache`` shared by
    every run there, else ``~/.cache/bdcore/diffpure``) under a key of (images, fit params).
    ``fit_t_max``: train only t ≤ t_max (a purification-only prior, valid for ``t_start ≤ fit_t_max``;
    much faster to fit on a CPU).

    Sampler: ``steps`` sampling-grid size (DDNM: 100), ``eta`` (0.85), ``sigma_y`` (0; > 0 = DDNM+'s
    noisy-y variant, with ``add_noise`` also adding that noise to y), time travel ``travel_length`` /
    ``travel_repeat`` (1/1 = off, DDNM's face config), ``t_start`` (None = DDNM from pure noise at T;
    an integer t* < T = purification-style start from the noised A⁺y, much cheaper on CPU),
    ``path`` ``"svd"`` (paper equation) or ``"simplified"`` (DDNM's simplified code, with its noise quirk),
    ``batch_size`` images per sampler call, ``seed_salt`` for the sampler's noise.
    """

    model: Path | None = None
    sha256: str | None = None
    unet_config: dict[str, object] | None = None
    fit_steps: int = attrs.field(default=2000, validator=steps_bounds(1))
    fit_batch_size: int = attrs.field(default=16, validator=batch_size_bounds())
    fit_lr: float = attrs.field(default=1e-3, validator=v.gt(0))
    fit_images: int = attrs.field(default=1024, validator=v.ge(1))
    fit_widths: tuple[int, ...] = attrs.field(default=(32, 64, 64), converter=tuple)
    fit_t_max: int | None = attrs.field(default=None, validator=_opt_nonneg)
    cache_dir: Path | None = None
    steps: int = attrs.field(default=100, validator=[v.ge(1), v.le(1000)])
    eta: float = attrs.field(default=0.85, validator=[v.ge(0.0), v.le(1.0)])
    sigma_y: float = attrs.field(default=0.0, validator=v.ge(0.0))
    add_noise: bool = False
    travel_length: int = attrs.field(default=1, validator=v.ge(1))
    travel_repeat: int = attrs.field(default=1, validator=v.ge(1))
    t_start: int | None = attrs.field(default=None, validator=_opt_nonneg)
    path: Literal["svd", "simplified"] = "svd"
    batch_size: int = attrs.field(default=64, validator=batch_size_bounds())
    seed_salt: str = "ddnm"


@attrs.frozen
class SRParams(DDNMParams):
    """``scale``: the SR factor s (paper: 2). ``select_scale``: run the paper's scale selection over
    ``scales`` (default {2, 4, 8}) on the defender's clean training faces and PGD examples of them
    (``select_images`` faces; PGD ``select_eps``/``select_alpha`` in /255, ``select_iters``): the scale with
    the best purified-adversarial accuracy among those whose purified-clean accuracy drops by at most
    ``max_clean_drop`` (fraction). Needs a classifier victim."""

    scale: int = attrs.field(default=2, validator=v.ge(1))
    select_scale: bool = False
    scales: tuple[int, ...] = attrs.field(default=(2, 4, 8), converter=tuple, validator=_scales)
    select_images: int = attrs.field(default=64, validator=v.ge(2))
    select_eps: float = attrs.field(default=4.0, validator=v.gt(0))
    select_alpha: float = attrs.field(default=1.0, validator=v.gt(0))
    select_iters: int = attrs.field(default=10, validator=v.ge(1))
    max_clean_drop: float = attrs.field(default=0.03, validator=v.ge(0.0))


@attrs.frozen
class ColorizeParams(DDNMParams):
    """Colorization: A = channel mean (grey), A⁺ = replicate; needs 3-channel inputs."""


@attrs.frozen
class TwoStageParams(SRParams):
    """Stage 1 = ``ddnm-sr`` (``scale``, optionally selected), then stage 2 = ``ddnm-colorize``, same prior."""


@attrs.frozen
class FaceNetParams:
    """``facenet-small``: ``num_classes`` identities, ``in_channels``, conv ``width`` (×1, ×2, ×4 over three
    blocks), ``embedding_dim``, cosine-logit ``scale`` s, ``dropout`` before the embedding layer.
    ``lowres_prob``: share of training faces replaced by a ×2 down-and-up-sampled copy (average pooling,
    then nearest or bilinear up-sampling, half each) — the low-resolution augmentation of face-recognition
    training (e.g. AdaFace, CVPR 2022); 0 trains on the faces as they are. ``grey_prob``: share of training
    faces replaced by their grey version (channel mean in every channel), the random-greyscale augmentation of
    face-recognition training: it keeps identity in the face's structure rather than in its colours, so
    colorization-based purification does not erase it (measured: README "Fig. 2")."""

    num_classes: int = attrs.field(default=40, validator=v.ge(2))
    in_channels: int = attrs.field(default=3, validator=v.in_((1, 3)))
    width: int = attrs.field(default=32, validator=v.ge(4))
    embedding_dim: int = attrs.field(default=128, validator=v.ge(2))
    scale: float = attrs.field(default=16.0, validator=v.gt(0))
    dropout: float = attrs.field(default=0.2, validator=[v.ge(0.0), v.lt(1.0)])
    lowres_prob: float = attrs.field(default=0.0, validator=[v.ge(0.0), v.le(1.0)])
    grey_prob: float = attrs.field(default=0.0, validator=[v.ge(0.0), v.le(1.0)])


@attrs.frozen
class PGDParams:
    """L∞ PGD: ``eps`` and ``alpha`` in /255 units, ``steps`` iterations, ``random_start``.

    Defaults eps 4/255, alpha 1/255, 10 steps (a standard PGD-10 budget). The paper states eps 0.5/255,
    alpha 2/255, 40 iterations (alpha > eps, so every step is clipped onto the ε box); set those to
    reproduce its setting literally.
    """

    eps: float = attrs.field(default=4.0, validator=v.gt(0))
    alpha: float = attrs.field(default=1.0, validator=v.gt(0))
    steps: int = attrs.field(default=10, validator=steps_bounds(1))
    random_start: bool = False
    strength: float = 1.0


@attrs.frozen
class AccuracyParams:
    """Top-1 accuracy; ``splits`` to evaluate."""

    splits: tuple[str, ...] = attrs.field(default=("clean", "poisoned"), converter=tuple)


@attrs.frozen
class TargetLabelParams:
    """All-to-one backdoor on a classifier: poisoned training samples are relabelled ``target_class``."""

    target_class: int = attrs.field(default=0, validator=v.ge(0))
    strength: float = attrs.field(default=1.0, validator=v.gt(0))


@attrs.frozen
class LabelASRParams:
    """``label-asr``: share of triggered test inputs classified as the attack target, over the inputs whose
    true class is not the target (the usual backdoor ASR). ``splits``: evaluated on the poisoned split."""

    splits: tuple[str, ...] = attrs.field(default=("poisoned",), converter=tuple)


@attrs.frozen
class OlivettiParams(SplitParams):
    """``path``: ``olivettifaces.mat`` (variable ``faces`` 4096×400). ``size``: resize to size×size
    (None keeps 64). Split per identity (``train_fraction`` of each identity's 10 faces)."""

    path: Path = attrs.field(kw_only=True)
    size: int | None = attrs.field(default=None, validator=v.optional(image_side_bounds(1)))


def _scale_range(inst: object, attr: attrs.Attribute, value: tuple[float, float]) -> None:  # type: ignore[type-arg]
    if len(value) != 2 or not 0.0 < value[0] <= value[1] <= 1.0:
        raise ValueError(f"{attr.name} must be [low, high] with 0 < low <= high <= 1 (got {list(value)})")


@attrs.frozen
class FaceViewsParams(SplitParams):
    """Colour faces for identification when each person has one photo (CUFS photos, CelebA-HQ/FFHQ samples):
    every image under ``path`` matching the glob ``pattern`` (default: all, recursive; CUFS photos:
    ``"*_photo/*"``), sorted, is one identity (label = its rank), seen as ``views``
    seeded views — a centred square of the photo, a random square crop of ``crop_scale`` × its side at a
    random position, a horizontal flip with probability ½, resized (area) to ``size``×``size``. Views are split
    per identity (``train_fraction`` of each identity's views train; the others test), so test faces are new
    views of enrolled people. ``limit``: at most this many identities."""

    path: Path = attrs.field(kw_only=True)
    pattern: str = "**/*"
    size: int = attrs.field(default=32, validator=image_side_bounds(8))
    views: int = attrs.field(default=10, validator=[v.ge(2), v.le(10_000)])
    crop_scale: tuple[float, float] = attrs.field(default=(0.8, 1.0), converter=tuple, validator=_scale_range)
