"""Params of the baseline defenses and metrics (torch-free, so ``bdcore check`` stays fast).

Every numeric field a paper sweeps (blur σ, noise σ, JPEG quality, bit depth, pruning
rate) is a plain scalar so that a ``[[defense]]`` table can sweep it with
``sweep = {param = "...", values = [...]}`` (e.g. BAvAFT++ Table V).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
from attrs import validators as v

from bdcore.params import seed_bounds, steps_bounds

#: Evaluation fields a metric may compare (mirrors :data:`bdcore.metrics.batch.FIELDS`).
_FIELDS = ("output", "target", "attack_target", "input", "clean_input", "clean_output", "reference_output")

Split = Literal["clean", "poisoned"]
LpipsNet = Literal["alex", "vgg", "squeeze"]


def _optional_positive_float(inst: object, attribute: attrs.Attribute, value: float | None) -> None:  # type: ignore[type-arg]
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 (got {value})")


def _field_name(inst: object, attribute: attrs.Attribute, value: str) -> None:  # type: ignore[type-arg]
    if value not in _FIELDS:
        raise ValueError(f"{attribute.name}: unknown field {value!r} (choose from {', '.join(_FIELDS)})")


def _odd_kernel(inst: object, attribute: attrs.Attribute, value: int | None) -> None:  # type: ignore[type-arg]
    if value is not None and (value <= 0 or value % 2 == 0):
        raise ValueError(f"kernel_size must be a positive odd integer (got {value})")


# --------------------------------------------------------------------------- input defenses


@attrs.frozen
class GaussianBlurParams:
    """``sigma``: std of the Gaussian in pixels (0 = identity). ``kernel_size``: odd side of
    the kernel; None = ``2·int(truncate·σ + 0.5) + 1`` (scipy's ``gaussian_filter`` rule).
    ``truncate``: kernel radius in σ when ``kernel_size`` is None, i.e. radius
    ``int(truncate·σ + 0.5)`` as in scipy. Borders are mirrored without repeating the edge
    pixel (kornia/torch ``"reflect"`` = scipy ``mode="mirror"``)."""

    sigma: float = attrs.field(default=1.0, validator=v.ge(0.0))
    kernel_size: int | None = attrs.field(default=None, validator=_odd_kernel)
    truncate: float = attrs.field(default=4.0, validator=v.gt(0.0))


@attrs.frozen
class GaussianNoiseParams:
    """``sigma``: std of additive noise on [0, 1] images; ``clamp``: clip back to [0, 1]."""

    sigma: float = attrs.field(default=0.05, validator=v.ge(0.0))
    clamp: bool = True


@attrs.frozen
class JpegParams:
    """``quality``: libjpeg quality 1–100 (real codec round trip, 8-bit, 4:2:0 chroma)."""

    quality: int = attrs.field(default=75, validator=[v.ge(1), v.le(100)])


@attrs.frozen
class BitSqueezeParams:
    """``bits``: colour depth per channel (Xu et al., NDSS 2018): ``round(x·(2^b−1)) / (2^b−1)``."""

    bits: int = attrs.field(default=4, validator=[v.ge(1), v.le(8)])


# --------------------------------------------------------------------------- model defenses


@attrs.frozen
class FineTuningParams:
    """Fine-tune a copy of the attacked victim on a clean subset with its ``clean_loss``.

    ``fraction``: share of the defender's clean training set used (seeded subset).
    ``steps`` or ``epochs`` (over the subset; exactly one of them): training length.
    ``lr``: learning rate of the engine's trainer.
    """

    fraction: float = attrs.field(default=0.1, validator=[v.gt(0.0), v.le(1.0)])
    steps: int | None = attrs.field(default=100, validator=v.optional(steps_bounds(1)))
    epochs: float | None = attrs.field(default=None, validator=_optional_positive_float)
    lr: float = attrs.field(default=1e-4, validator=v.gt(0.0))

    def __attrs_post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("fine-tuning: give exactly one of steps or epochs (set the other to none/omit it)")


@attrs.frozen
class FinePruningParams:
    """Fine-pruning (Liu et al., RAID 2018) of one conv layer, task-generic.

    ``layer``: dotted module name (``victim.named_modules()``); None = the last
    ``nn.Conv2d``. ``rate``: fraction of output channels pruned, lowest mean clean
    activation first. ``rank_by``: activation statistic (``relu``: mean of
    ReLU(output), the paper's dormant neurons; ``abs``: mean |output|; ``raw``: mean).
    ``calib_batches``: clean batches for the ranking. ``finetune_steps`` / ``lr`` /
    ``fraction``: optional fine-tuning after pruning (pruned channels stay zero).
    """

    layer: str | None = None
    rate: float = attrs.field(default=0.2, validator=[v.ge(0.0), v.lt(1.0)])
    rank_by: Literal["relu", "abs", "raw"] = "relu"
    calib_batches: int = attrs.field(default=4, validator=v.gt(0))
    finetune_steps: int = attrs.field(default=0, validator=steps_bounds())
    lr: float = attrs.field(default=1e-4, validator=v.gt(0.0))
    fraction: float = attrs.field(default=0.1, validator=[v.gt(0.0), v.le(1.0)])


@attrs.frozen
class StripParams:
    """STRIP (Gao et al., ACSAC 2019) adapted to image and score outputs.

    Each input is blended with ``n_overlays`` clean images from a pool of ``pool_size``
    defender images: ``x' = (1 − alpha)·x + alpha·c``. Statistic (higher = more likely
    poisoned): minus the output spread over the overlays — ``variance`` (mean
    per-pixel variance; std for score outputs) or ``pairwise`` (mean pairwise RMS
    distance between outputs). ``redraw``: False (default) draws the ``n_overlays`` images once, so every
    input, clean or triggered, is blended with the same images and the statistic compares the inputs;
    True draws afresh for every detector call (every test batch), STRIP's per-input randomness at batch
    granularity, which with few overlays lets the draw, not the input, decide the comparison.
    """

    n_overlays: int = attrs.field(default=8, validator=v.ge(2))
    alpha: float = attrs.field(default=0.5, validator=[v.gt(0.0), v.lt(1.0)])
    pool_size: int = attrs.field(default=32, validator=v.gt(0))
    statistic: Literal["variance", "pairwise"] = "variance"
    chunk: int = attrs.field(default=64, validator=v.gt(0))
    redraw: bool = False


# --------------------------------------------------------------------------- metrics


@attrs.frozen
class LpipsParams:
    """LPIPS (Zhang et al., CVPR 2018) through the ``lpips`` package.

    ``net``: backbone. ``weights``: the torchvision ImageNet backbone file
    (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` / ``squeezenet1_1-b8a52dc0.pth``);
    None looks in the torch hub cache (``$TORCH_HOME/hub/checkpoints``). ``sha256``:
    optional checksum of that file. ``random_backbone``: use a randomly initialised
    backbone (seeded by ``seed``) instead — NOT the perceptual metric; a labelled
    stand-in for offline smoke runs and wiring tests. The linear calibration layers
    always come from the ``lpips`` wheel.
    """

    between: tuple[str, str] = attrs.field(default=("output", "target"))
    splits: tuple[Split, ...] = ("clean", "poisoned")
    net: LpipsNet = "alex"
    version: Literal["0.0", "0.1"] = "0.1"
    weights: Path | None = None
    sha256: str | None = None
    random_backbone: bool = False
    seed: int = attrs.field(default=0, validator=seed_bounds())

    @between.validator
    def _check(self, attribute: attrs.Attribute, value: tuple[str, str]) -> None:  # type: ignore[type-arg]
        if len(value) != 2:
            raise ValueError(f"between needs exactly two fields, got {len(value)}")
        for name in value:
            _field_name(self, attribute, name)


@attrs.frozen
class StealthParams:
    """Trigger stealth: PSNR / SSIM (and LPIPS when ``lpips`` is true) of ``input``
    (triggered) vs ``clean_input``, on the poisoned split. The ``lpips_*`` fields are
    :class:`LpipsParams`' ``net`` / ``weights`` / ``random_backbone``."""

    lpips: bool = False
    lpips_net: LpipsNet = "alex"
    lpips_weights: Path | None = None
    lpips_random_backbone: bool = False


@attrs.frozen
class FreqDistanceParams:
    """Low/high-frequency distance (AS-FIBA Table IV) between ``between[0]`` and ``between[1]``.

    FIBA's band split: centred FFT, low band = the ``(2b+1)×(2b+1)`` square around DC with
    ``b = floor(min(H, W)·beta)``; high band = the rest. The distance is the MSE between
    the two band-limited images on a ``0…scale`` range (Parseval: low + high = total MSE).
    """

    beta: float = attrs.field(default=0.1, validator=[v.gt(0.0), v.lt(0.5)])
    scale: float = attrs.field(default=255.0, validator=v.gt(0.0))
    between: tuple[str, str] = attrs.field(default=("input", "clean_input"), validator=v.deep_iterable(_field_name))
    splits: tuple[Split, ...] = ("poisoned",)


@attrs.frozen
class ImageAsrParams:
    """Thresholded image-target attack success rate.

    Without ``threshold``: an output succeeds when it is closer (under ``distance``) to
    ``attack_target`` than to ``reference`` (the clean victim's output on the clean
    input by default). With ``threshold`` τ: it succeeds when ``d(output, attack_target)``
    is below τ (``mse``, ``lpips``) or above τ (``psnr`` dB, ``ssim``) — e.g.
    VillanDiffusion's MSE < 0.1. ``lpips_*`` as in :class:`StealthParams`.
    """

    distance: Literal["mse", "psnr", "ssim", "lpips"] = "mse"
    threshold: float | None = None
    reference: str = attrs.field(default="reference_output", validator=_field_name)
    splits: tuple[Split, ...] = ("poisoned",)
    lpips_net: LpipsNet = "alex"
    lpips_weights: Path | None = None
    lpips_random_backbone: bool = False


def _colormap_name(inst: object, attribute: attrs.Attribute, value: str) -> None:  # type: ignore[type-arg]
    import matplotlib  # only when a spec uses grad-cam: keeps `bdcore check` of other specs light

    if value not in matplotlib.colormaps:
        raise ValueError(f"{attribute.name}: unknown matplotlib colormap {value!r} (e.g. jet, viridis, inferno, turbo)")


@attrs.frozen
class GradCamParams:
    """Grad-CAM (Selvaraju et al., ICCV 2017) of the victim on clean vs triggered inputs.

    ``target``: the scalar explained per image. Regression has no class logit, so the default
    ``output-mean`` is the mean of the output over all its values (pixels and channels) — the
    overall brightness the model produces, a linear functional whose gradient is the average
    sensitivity of every output pixel (pytorch-grad-cam's semantic-segmentation target with a
    full mask, up to a constant); a score output (IQA) is the score itself. ``output-l2``: the
    L2 norm of the output (its energy; sign-free). ``layer``: the module (dotted name in
    ``victim.named_modules()``) whose output ``A`` is explained; None = the bottleneck: among
    ``Conv2d``/``ConvTranspose2d`` layers that run once and receive a nonzero gradient, the one
    with the smallest spatial output, the last to run on ties (probed on the first test image).
    ``call``: what is differentiated — ``predict`` (what metrics evaluate) or ``forward``
    (codecs: their ``predict`` entropy-codes under no_grad; their quantised latent passes no
    gradient to the encoder, so name a decoder layer). ``colormap`` / ``overlay``: the grid's
    heat maps (a matplotlib colormap; the weight of the input image blended under it, 0 = the
    map alone).
    """

    target: Literal["output-mean", "output-l2"] = "output-mean"
    layer: str | None = attrs.field(default=None, validator=v.optional(v.min_len(1)))
    call: Literal["predict", "forward"] = "predict"
    colormap: str = attrs.field(default="jet", validator=_colormap_name)
    overlay: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.le(1.0)])
