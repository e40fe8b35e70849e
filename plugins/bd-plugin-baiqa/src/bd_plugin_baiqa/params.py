"""Params of the BAIQA components (torch-free, attrs frozen, validated)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
from attrs import validators as v

from bdcore.builtin.params import SplitParams
from bdcore.params import image_side_bounds, learning_rate_bounds, steps_bounds

#: BAIQA's evaluation grid: ±0.1 … ±1.0 (20 non-zero α; code ``test_backdoor``).
ALPHA_GRID: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(10, 0, -1)) + tuple(
    round(-0.1 * k, 1) for k in range(1, 11)
)


def _optional_path(value: object) -> Path | None:
    return None if value is None else Path(str(value))


@attrs.frozen
class DctTriggerParams:
    """``baiqa-dct``: the UAP-DCT trigger added to every 16×16 block of the YCbCr DCT.

    ``path``: a ``3×64`` trigger (``.pt`` plain tensor, loaded with ``weights_only=True``, or ``.npy``),
    e.g. the published ``trigger_p0.2_adam_e8.pt``; without it the trigger is fitted with Algorithm 1
    (needs ``[attack] fit_steps > 0``). ``sha256``: optional checksum of ``path``.
    ``band``: ``"code"`` = the authors' 64 positions verbatim (methods.md §1.2), ``"zigzag"`` = a clean
    zig-zag mid band, ``"high"`` = the last 64 zig-zag ranks. ``strength``: default α.
    Algorithm 1: ``epsilon`` (in /255 units, 8 on LIVEC), ``init_range`` (U(−r, r) init, 300),
    ``lr`` (Adam, 1), ``inner_steps`` (Adam steps per batch, 10; Adam re-created per batch),
    ``penalty`` (1e8 = (1e4)²). ``quantize``: round 255·x before the DCT, as the code.
    ``surrogate``: the model Algorithm 1 searches against — ``"partial"`` (the paper: a fresh victim trained
    for ``surrogate_steps`` at ``surrogate_lr`` on only the items the attack poisons, i.e. the attacker's
    ``[attack] poison_rate`` share; the search then runs on those items too) or ``"clean-victim"`` (the
    run's clean victim and the whole training set). With a ``path`` the fit only trains/captures the
    surrogate (``c-baiqa`` with ``surrogate = "trigger"`` attacks it).
    """

    path: Path | None = attrs.field(default=None, converter=_optional_path)
    sha256: str | None = None
    band: Literal["code", "zigzag", "high"] = "code"
    strength: float = 1.0
    epsilon: float = attrs.field(default=8.0, validator=v.gt(0.0))
    init_range: float = attrs.field(default=300.0, validator=v.gt(0.0))
    lr: float = attrs.field(default=1.0, validator=v.gt(0.0))
    inner_steps: int = attrs.field(default=10, validator=steps_bounds(1))
    penalty: float = attrs.field(default=1e8, validator=v.ge(0.0))
    quantize: bool = True
    surrogate: Literal["partial", "clean-victim"] = "partial"
    surrogate_steps: int = attrs.field(default=1000, validator=steps_bounds(1))
    surrogate_lr: float = attrs.field(default=1e-3, validator=learning_rate_bounds())


@attrs.frozen
class SmallIqaParams:
    """``iqa-small``: a small CNN NR-IQA regressor (CPU-trainable). ``width``: base channels;
    ``depth``: stride-2 stages; ``loss``: L1 (HyperIQA/TReS) or MSE (DBCNN) to the MOS;
    ``score_offset``/``score_scale``: head output = offset + scale·z (MOS 0..100 → 50 ± 25)."""

    width: int = attrs.field(default=32, validator=v.gt(0))
    depth: int = attrs.field(default=4, validator=[v.gt(0), v.le(6)])
    loss: Literal["l1", "mse"] = "l1"
    score_offset: float = 50.0
    score_scale: float = 25.0


@attrs.frozen
class CnnIqaParams:
    """``cnniqa`` (Kang et al., CVPR 2014). ``patch``: side of the non-overlapping patches (32);
    ``kernel``/``filters``: the single conv layer (7×7, 50); ``hidden``: the two FC layers (800);
    ``dropout`` (0.5); ``lcn_window``/``lcn_c``: local normalisation window (7 = the paper's P = Q = 3) and
    the constant added to σ, on [0, 1] grey levels (10/255, i.e. C = 10 on 0..255; the paper leaves C
    open); ``color``: normalise and convolve the three RGB channels instead of the grey image (the paper is
    grey; colour lets the network see chroma triggers such as FTrojan's Cb/Cr pattern);
    ``loss``: per-patch L1 (the paper) or MSE; ``score_offset``/``score_scale``: head output = offset + scale·z."""

    patch: int = attrs.field(default=32, validator=v.ge(8))
    kernel: int = attrs.field(default=7, validator=v.gt(0))
    filters: int = attrs.field(default=50, validator=v.gt(0))
    hidden: int = attrs.field(default=800, validator=v.gt(0))
    dropout: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.lt(1.0)])
    lcn_window: int = attrs.field(default=7, validator=v.gt(0))
    lcn_c: float = attrs.field(default=10.0 / 255.0, validator=v.gt(0.0))
    color: bool = False
    loss: Literal["l1", "mse"] = "l1"
    score_offset: float = 50.0
    score_scale: float = 25.0


@attrs.frozen
class WadiqamParams:
    """``wadiqam``: WaDIQaM-NR (Bosse et al., TIP 2018; pyiqa's architecture) trained from scratch, as the
    paper did. ``weighted_average``: the learned patch-weight branch (WaDIQaM) or a plain patch mean
    (DIQaM); ``loss``: L1 on the image score (the paper) or MSE; ``score_offset``/``score_scale``: image
    score = offset + scale·z (MOS 0..100 → 50 ± 25, a faster start than pyiqa's raw output)."""

    weighted_average: bool = True
    loss: Literal["l1", "mse"] = "l1"
    score_offset: float = 50.0
    score_scale: float = 25.0


@attrs.frozen
class PyiqaVictimParams:
    """``hyperiqa`` / ``dbcnn`` / ``tres``: pyiqa's architectures, trained from a local backbone.

    ``backbone_weights``: a local ImageNet state dict for the backbone (resnet50 / vgg16 /
    resnet18-50, torchvision or timm key layout); ``backbone_sha256``: optional checksum.
    ``scnn_weights``: DBCNN's pretrained SCNN (``scnn.pkl`` converted to a state dict).
    ``allow_random_backbone``: build with random backbone weights (tests, ablations) instead of
    failing fast. ``weights``: a full IQA checkpoint for the whole model (optional).
    ``backbone``: TReS/HyperNet backbone name. ``test_crops``: multi-crop at eval (1 on CPU).
    ``loss``: l1 or mse.
    """

    backbone_weights: Path | None = attrs.field(default=None, converter=_optional_path)
    backbone_sha256: str | None = None
    scnn_weights: Path | None = attrs.field(default=None, converter=_optional_path)
    allow_random_backbone: bool = False
    weights: Path | None = attrs.field(default=None, converter=_optional_path)
    backbone: str | None = None
    test_crops: int = attrs.field(default=1, validator=v.gt(0))
    loss: Literal["l1", "mse"] = "l1"


@attrs.frozen
class LivecParams(SplitParams):
    """``livec``: LIVE In the Wild Challenge. ``root``: the release folder (``Data/All*_release.mat``
    and ``Images/``) — or give ``csv`` (``filename,mos``) with images under ``root/Images``.
    ``split_index``: ``CLIVE_traintest_index.pkl``/``.json`` (BAIQA's order: first ``n_train``
    train); without it a seeded split by ``train_fraction``. Files missing on disk are skipped
    (e.g. the JPEG-only subset) unless ``strict``."""

    root: Path = attrs.field(kw_only=True, converter=Path)
    csv: Path | None = attrs.field(default=None, converter=_optional_path)
    split_index: Path | None = attrs.field(default=None, converter=_optional_path)
    n_train: int = attrs.field(default=930, validator=v.gt(0))
    strict: bool = False


@attrs.frozen
class KoniqParams(SplitParams):
    """``koniq``: KonIQ-10k from its CSV. ``csv`` + ``images``; ``score_column`` (``MOS_zscore``:
    0..100, or ``MOS``: 1..5); ``split_column`` (e.g. ``set`` of ``koniq10k_distributions_sets.csv``:
    training/validation/test) else seeded; ``resize``: (W, H) as BAIQA (512, 384), or None."""

    csv: Path = attrs.field(kw_only=True, converter=Path)
    images: Path = attrs.field(kw_only=True, converter=Path)
    name_column: str = "image_name"
    score_column: str = "MOS_zscore"
    split_column: str | None = None
    resize: tuple[int, int] | None = None


@attrs.frozen
class EmbeddedIqaParams(SplitParams):
    """``iqa-embedded``: a STAND-IN IQA set — bdcore's embedded scene photos with a documented
    distortion ladder (Gaussian blur, Gaussian noise, JPEG at ``levels`` levels) and a synthetic
    MOS = ``mos_top − level·mos_step`` (plus per-kind offsets). Not human opinion scores.
    ``size``: shorter side of each scene before distortion. The split is by scene."""

    size: int = attrs.field(default=128, validator=image_side_bounds(16))
    levels: int = attrs.field(default=5, validator=[v.gt(0), v.le(5)])
    mos_top: float = 85.0
    mos_step: float = 13.0


def _check_probs(inst: object, attr: attrs.Attribute, value: tuple[float, ...]) -> None:  # type: ignore[type-arg]
    if len(value) != 4 or any(p < 0 for p in value) or abs(sum(value) - 1.0) > 1e-6:
        raise ValueError(f"must be 4 non-negative probabilities summing to 1 (got {value})")


@attrs.frozen
class PBaiqaParams:
    """``p-baiqa``: poison-label. ``sampling``: ``"code"`` (|α| ∈ {.25,.5,.75,1} with ``probs``
    .1/.2/.3/.4, sign 50/50; the paper's default), ``"uniform-discrete"`` (the 8 values equally likely),
    ``"continuous"`` (α ~ U[−1, 1]) — the ablation's three strategies. ``delta_y``: label shift per unit α
    (40 on a 0..100 MOS). ``clip_label``: clip the shifted label to [lo, hi] (the code does not)."""

    sampling: Literal["code", "uniform-discrete", "continuous"] = "code"
    probs: tuple[float, float, float, float] = attrs.field(default=(0.1, 0.2, 0.3, 0.4), validator=_check_probs)
    delta_y: float = attrs.field(default=40.0, validator=v.gt(0.0))
    clip_label: tuple[float, float] | None = None


@attrs.frozen
class CBaiqaParams:
    """``c-baiqa``: clean-label. α = (y − ``mean_score``)/``delta_y`` from the kept clean label
    (Remark 1, not clipped); the image is first replaced by a PGD targeted adversarial example towards
    ``mean_score`` (Remark 2): ``pgd_steps`` signed-gradient steps of ``pgd_step`` (/255 units), L∞ ball
    ``pgd_eps`` (/255), no random start, the loss summed over ``pgd_views`` random views (EOT) drawn afresh
    at every step: a random square crop of side ``pgd_view_crop``·side and, with ``pgd_view_flip``, a
    horizontal flip with probability ½ (the official code: 20 steps, 25 crop+flip views). ``pgd_views = 1``
    with ``pgd_view_crop = 1`` and ``pgd_view_flip = false`` is plain PGD on the image itself.
    CPU-friendly setting (documented in the README): ``pgd_steps = 5, pgd_views = 4``.
    ``refine``: ``"image"`` (the official code's way, default) refines each poisoned training image once,
    whole, before training — the views are random crops of the training crop's side (and flips) of the
    whole image, ``pgd_batch`` images per PGD batch — and training crops the refined image;
    ``"batch"`` refines every poisoned training crop again at every step (views of ``pgd_view_crop``·side
    of the crop), about ``steps × crops per step / images`` times the work.
    ``surrogate``: the model PGD attacks — ``"clean-victim"`` (the run's clean victim, trained on the whole
    clean training set), ``"trigger"`` (the ``baiqa-dct`` fit's surrogate: Algorithm 1's model trained on
    the poisoned 20 %, the paper's Algorithm 2) or ``"auto"`` (the trigger's when it has one)."""

    mean_score: float = 50.0
    delta_y: float = attrs.field(default=40.0, validator=v.gt(0.0))
    pgd_eps: float = attrs.field(default=2.0, validator=v.ge(0.0))
    pgd_step: float = attrs.field(default=1.6, validator=v.gt(0.0))
    pgd_steps: int = attrs.field(default=20, validator=steps_bounds())
    pgd_views: int = attrs.field(default=25, validator=[v.ge(1), v.le(1024)])
    pgd_view_crop: float = attrs.field(default=0.875, validator=[v.gt(0.0), v.le(1.0)])
    pgd_view_flip: bool = True
    surrogate: Literal["auto", "clean-victim", "trigger"] = "auto"
    refine: Literal["image", "batch"] = "image"
    pgd_batch: int = attrs.field(default=8, validator=[v.ge(1), v.le(4096)])


@attrs.frozen
class ScoreMetricParams:
    """``plcc`` / ``srocc`` / ``rmse``: the prediction vs ``against`` (``target`` = MOS) on ``splits``."""

    against: Literal["target", "reference_output", "clean_output"] = "target"
    splits: tuple[Literal["clean", "poisoned"], ...] = ("clean",)


def _check_alphas(inst: object, attr: attrs.Attribute, value: tuple[float, ...]) -> None:  # type: ignore[type-arg]
    if not value or any(a == 0 for a in value):
        raise ValueError(f"must be a non-empty list of non-zero α (got {value})")


@attrs.frozen
class AlphaResponseParams:
    """``mmae`` / ``mmra``: sweep α over ``alphas`` (BAIQA's 20-value grid by default), inject α·t into
    the clean test inputs and compare f(x_α) with f(x) + α·``delta_y``. Per-α values come as
    ``mae@α`` / ``mra@α`` extra keys (the response curve)."""

    alphas: tuple[float, ...] = attrs.field(default=ALPHA_GRID, validator=_check_alphas)
    delta_y: float = attrs.field(default=40.0, validator=v.gt(0.0))
    splits: tuple[Literal["clean", "poisoned"], ...] = ("clean",)


@attrs.frozen
class PsnrAlphaParams:
    """``psnr-alpha``: PSNR (dB) of inject(x, α·t) vs x on the clean test inputs at ``alpha`` (1.0)."""

    alpha: float = 1.0
    splits: tuple[Literal["clean", "poisoned"], ...] = ("clean",)
