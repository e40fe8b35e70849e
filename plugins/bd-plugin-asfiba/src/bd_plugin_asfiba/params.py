"""Params of the AS-FIBA plugin's components (torch-free, attrs frozen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
from attrs import validators as v

from bdcore.builtin.params import SplitParams
from bdcore.params import eval_only, image_side_bounds, steps_bounds

_pos = v.gt(0)


def _unit(inst: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1] (got {value})")


def _range(inst: object, attribute: attrs.Attribute, value: tuple[float, float]) -> None:  # type: ignore[type-arg]
    if len(value) != 2 or value[0] > value[1] or value[0] < 0:
        raise ValueError(f"{attribute.name} must be [low, high] with 0 <= low <= high (got {value})")


# ---------------------------------------------------------------- victims
@attrs.frozen
class UNetRestorerParams:
    """Small residual U-Net restorer: ``base`` channels at full scale, ``depth`` stride-2 levels,
    ``blocks`` conv blocks per level."""

    base: int = attrs.field(default=16, validator=_pos)
    depth: int = attrs.field(default=2, validator=[v.ge(1), v.le(4)])
    blocks: int = attrs.field(default=1, validator=_pos)
    channels: Literal[1, 3] = 3


@attrs.frozen
class RRDBRestorerParams:
    """SRResNet/RRDB-style restorer (same-size in/out): ``nf`` features, ``nb`` RRDBs, growth ``gc``."""

    nf: int = attrs.field(default=32, validator=_pos)
    nb: int = attrs.field(default=2, validator=_pos)
    gc: int = attrs.field(default=16, validator=_pos)
    channels: Literal[1, 3] = 3


@attrs.frozen
class RestorationModuleParams:
    """Any installed restoration ``nn.Module``.

    ``target``: ``"package.module:Class"``; ``kwargs``: constructor arguments; ``checkpoint``: a local
    weights file (loaded with ``weights_only=True``; ``sha256`` checked when given; ``key`` picks a
    sub-dict such as ``"params_ema"``); ``input_range``: ``"unit"`` ([0,1]) or ``"signed"`` ([-1,1], GFP-GAN,
    CodeFormer); ``output_index``: which element when ``forward`` returns a tuple/list; ``forward_kwargs``:
    extra keyword arguments of ``forward`` (e.g. ``{w = 0.5}`` for CodeFormer).
    """

    target: str = attrs.field(kw_only=True)
    kwargs: dict[str, Any] = attrs.Factory(dict)
    forward_kwargs: dict[str, Any] = attrs.Factory(dict)
    checkpoint: Path | None = None
    sha256: str | None = None
    key: str | None = None
    strict: bool = True
    input_range: Literal["unit", "signed"] = "unit"
    output_index: int = 0

    @target.validator
    def _check(self, attribute: attrs.Attribute, value: str) -> None:  # type: ignore[type-arg]
        if ":" not in value:
            raise ValueError(f"target must be 'package.module:Class' (got {value!r})")


# ---------------------------------------------------------------- data
@attrs.frozen
class DegradedFacesParams(SplitParams):
    """HQ faces → LQ by the BFR degradation (seeded per sample); input = LQ, target = HQ.

    ``path``: a folder of HQ faces (searched recursively); None uses bdcore's embedded faces (100 grey
    LFW crops, replicated to 3 channels). ``size``: HQ faces are resized (bicubic) so the shorter side is
    ``size`` before cropping. Ranges: Gaussian blur σ (px), downscale factor r, noise σ (on [0,1]),
    JPEG quality. ``test_path``: a folder of real LQ faces (CelebChild, WebPhoto, LFW; the paper's test
    sets) as the test split instead of the held-out degraded faces: input = target = the LQ image (no
    ground truth, no synthetic degradation; resized like ``path``). Training is the same ``train_fraction``
    share of ``path`` either way, so ``test_path`` is evaluation-only: runs that differ only in it share
    the trained stages (one attack, three test sets).
    """

    path: Path | None = None
    test_path: Path | None = eval_only(None)  # noqa: RUF009 - an attrs field (immutable default), not a shared value
    size: int = attrs.field(default=64, validator=image_side_bounds(1))
    blur_sigma: tuple[float, float] = attrs.field(default=(0.2, 3.0), validator=_range)
    scale: tuple[float, float] = attrs.field(default=(1.0, 4.0), validator=_range)
    noise: tuple[float, float] = attrs.field(default=(0.0, 10.0 / 255.0), validator=_range)
    jpeg_quality: tuple[int, int] = attrs.field(default=(60, 95), validator=_range)


@attrs.frozen
class LQFolderParams(SplitParams):
    """Real low-quality faces without ground truth (CelebChild / WebPhoto / LFW style); input = target.
    ``size``: resize the shorter side first (None keeps the original)."""

    path: Path = attrs.field(kw_only=True)
    size: int | None = attrs.field(default=None, validator=v.optional(image_side_bounds(1)))


# ---------------------------------------------------------------- trigger
@attrs.frozen
class SFINetParams:
    """SF-I-Net trigger (AS-FIBA §III-B).

    ``preset``: ``"small"`` (CPU) or ``"paper"`` (≈1/4 of SFNet). ``epsilon``: ℓ∞ bound of ``I_p − I``
    (paper: unspecified; 4/255 here). ``alpha``: Eq. 3 balance (unspecified; 0.5). ``loss``: L_im
    (``"mse"`` = Euclidean, ``"l1"``). ``target_psnr``: visibility target of the trigger (dB vs the benign
    input): the image term is floored per image at the L_im of that PSNR (:func:`~bd_plugin_asfiba.trigger.
    hinged_image_loss`), so Eq. 3 stops pulling ``I_p`` towards ``I`` once it is that faint (None: the plain
    term, which drives the residual to ≈ 0). ``channel_noise``: σ of Gaussian noise added to the residual
    ``I − I_p`` before D_η during the fit (a steganography noise layer; 0 disables); it makes recovery
    depend on the residual's amplitude, so the fit uses the visibility budget. ``trigger_dir``: folder of trigger images (None: embedded non-face
    photographs). ``trigger_image``: the fixed trigger (file name or stem in the pool); the rest of the
    pool are the pseudo triggers. ``pool_size``: side the pool images are resized/cropped to.
    ``steps``: fit steps (None: the spec's ``fit_steps``). ``weights``: a trained SF-I-Net state dict
    (skips ``fit``). ``strength``: blend between I and G(I; I_t).
    """

    preset: Literal["small", "paper"] = "small"
    epsilon: float = attrs.field(default=4.0 / 255.0, validator=[v.gt(0.0), v.le(1.0)])
    alpha: float = attrs.field(default=0.5, validator=_unit)
    loss: Literal["mse", "l1"] = "mse"
    target_psnr: float | None = attrs.field(default=40.0, validator=v.optional(v.gt(0.0)))
    channel_noise: float = attrs.field(default=4.0 / 255.0, validator=v.ge(0.0))
    trigger_dir: Path | None = None
    trigger_image: str = "coffee"
    pool_size: int = attrs.field(default=128, validator=_pos)
    lr: float = attrs.field(default=1e-3, validator=v.gt(0.0))
    steps: int | None = attrs.field(default=None, validator=v.optional(steps_bounds()))
    weights: Path | None = None
    sha256: str | None = None
    strength: float = 1.0


# ---------------------------------------------------------------- attack loss
@attrs.frozen
class ASFIBAParams:
    """Eq. 5: ``λ1‖F(I)−I_gt‖ + λ2‖F(I_p)−I_0.1‖ + (1−λ1−λ2)‖F(I'_p)−I_gt‖``; ``norm``: the unspecified
    norm (``"l1"`` mean absolute error, default, as BFR losses; ``"l2"`` MSE); ``factor``: the I_0.1 scale.
    ``pseudo``: where ``I'_p`` comes from — the trigger's ``pseudo_poison`` (bdcore's ``PseudoTrigger``
    capability: SF-I-Net's pseudo trigger images, baselines' WaNet/FIBA cross samples, ISSBA's other
    secrets). ``"required"`` (default) refuses a trigger without one when the run is set up, before any
    training; ``"auto"`` drops the third term for such a trigger (logged once); ``"off"`` drops it always
    (an ablation)."""

    lambda1: float = attrs.field(default=0.75, validator=_unit)
    lambda2: float = attrs.field(default=0.125, validator=_unit)
    norm: Literal["l1", "l2"] = "l1"
    factor: float = attrs.field(default=0.1, validator=[v.gt(0.0), v.lt(1.0)])
    strength: float = 1.0
    pseudo: Literal["required", "auto", "off"] = "required"

    def __attrs_post_init__(self) -> None:
        if self.lambda1 + self.lambda2 > 1.0 + 1e-9:
            raise ValueError(f"lambda1 + lambda2 must be <= 1 (got {self.lambda1} + {self.lambda2})")


# ---------------------------------------------------------------- metrics
@attrs.frozen
class RestorationRuleParams:
    """ASR/BA rule of AS-FIBA §IV-A: restored iff ``d(out, I_hq) < d(out, I_0.1)``.

    ``distance``: ``"auto"`` (default) is the paper's LPIPS whenever ``lpips_weights`` is given (a local
    torchvision backbone state dict for ``lpips_net``) and the documented offline fallback 1 − MS-SSIM
    otherwise; it is resolved when the params are built, so the run's resolved spec names the distance that
    was used, and the metric reports its value a second time under ``<name>.<distance>``. Explicit choices:
    ``"lpips"`` (needs ``lpips_weights``), ``"ms-ssim"`` (1 − MS-SSIM), ``"gmsd"``, ``"fsim"`` (1 − FSIM;
    pyiqa), ``"mse"``. ``factor``: the I_0.1 scale.
    """

    distance: Literal["auto", "lpips", "ms-ssim", "gmsd", "fsim", "mse"] = "auto"
    lpips_weights: Path | None = None
    lpips_sha256: str | None = None
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
    factor: float = attrs.field(default=0.1, validator=[v.gt(0.0), v.lt(1.0)])

    def __attrs_post_init__(self) -> None:
        if self.distance == "auto":  # resolved once, here, so manifests and resolved specs show the choice
            object.__setattr__(self, "distance", "lpips" if self.lpips_weights is not None else "ms-ssim")


@attrs.frozen
class NIQEParams:
    """NIQE of ``field`` (default the output) with the MATLAB pristine model.

    ``params_path``: ``niqe_pris_params.npz`` (basicsr layout) or a ``.mat`` with ``mu_prisparam`` /
    ``cov_prisparam``; None looks in ``cache_dir`` (default ``~/.cache/bd-plugin-asfiba``), filled by
    ``python -m bd_plugin_asfiba.niqe_params fetch`` (pip-downloads the basicsr 1.4.2 sdist from PyPI).
    """

    params_path: Path | None = None
    cache_dir: Path | None = None
    field: Literal["output", "input", "clean_output", "reference_output", "target"] = "output"


@attrs.frozen
class SDDFIQAParams:
    """SDD-FIQA face quality (IR-50 + linear head, Tencent/TFace) of ``field``; ``checkpoint``: the user's
    ``SDD_FIQA_checkpoints_r50.pth`` (no public download offline)."""

    checkpoint: Path = attrs.field(kw_only=True)
    sha256: str | None = None
    field: Literal["output", "input", "clean_output", "reference_output", "target"] = "output"


@attrs.frozen
class FreqDistanceParams:
    """Table IV–style low/high-frequency distance between the poisoned and the benign input (AS-FIBA §IV-E).

    Amplitude spectra ``|FFT2|`` (orthonormal, per channel, images on ``0…scale``) of both inputs; the low
    band is FIBA's centred window — ``window = "square"``: ``|k_y|, |k_x| ≤ ⌊beta·min(H, W)⌋`` (FIBA's
    ``(2b+1)×(2b+1)`` square), ``"disk"``: ``k_y² + k_x² ≤ (beta·min(H, W))²`` — and the high band the rest.
    ``reduction``: ``"mse"`` (Table IV's caption) or ``"mae"`` of the amplitude difference over the band's
    bins and channels.
    """

    beta: float = attrs.field(default=0.1, validator=[v.gt(0.0), v.lt(0.5)])
    window: Literal["square", "disk"] = "square"
    reduction: Literal["mse", "mae"] = "mse"
    scale: float = attrs.field(default=255.0, validator=v.gt(0.0))
