"""Params of the plugin's components (attrs, frozen, torch-free)."""

from __future__ import annotations

import attrs
from attrs import validators as v

#: λ per quality 1–8 (CompressAI / the paper), for D = 255²·MSE.
LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)

MODELS = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "cheng2020-anchor")


@attrs.frozen
class CodecParams:
    """A CompressAI codec.

    Attributes:
        model: CompressAI zoo name.
        quality: 1–8 (1–6 for cheng2020-anchor); picks channel widths and λ.
        lmbda: override of the paper's λ for this quality.
        n, m: override of the channel widths (small CPU codecs); 0 keeps the zoo's.
        aux_lr: learning rate of the quantile (aux) optimizer used in ``after_step``.
        coding_batch: images per ``compress``/``decompress`` call in ``predict``.
    """

    model: str = attrs.field(default="bmshj2018-hyperprior", validator=v.in_(MODELS))
    quality: int = attrs.field(default=3, validator=[v.ge(1), v.le(8)])
    lmbda: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    n: int = attrs.field(default=0, validator=v.ge(0))
    m: int = attrs.field(default=0, validator=v.ge(0))
    aux_lr: float = attrs.field(default=1e-3, validator=v.gt(0.0))
    coding_batch: int = attrs.field(default=16, validator=v.ge(1))

    def __attrs_post_init__(self) -> None:
        if self.model == "cheng2020-anchor" and self.quality > 6:
            raise ValueError("cheng2020-anchor has qualities 1–6")

    @property
    def lam(self) -> float:
        return self.lmbda if self.lmbda is not None else LAMBDAS[self.quality - 1]


@attrs.frozen
class BavaftTriggerParams:
    """The BAvAFT injection network.

    Attributes:
        k: frequencies kept per channel (top-K of N).
        n_freq: N, frequencies the general trigger covers.
        table: ``"baiqa"`` (the author's verbatim 64 raster positions) or ``"zigzag-mid"``.
        selection: ``"learned"`` (BAvAFT: importance from a linear head, straight-through mask)
            or ``"robust"`` (BAvAFT++: preprocessing sensitivity, Eq. 17 + Algorithm 1).
        reweight: apply Algorithm 1's rank reweighting (robust selection).
        norm: ``"batch"`` (reference conv blocks) or ``"none"``.
        scale: fixed output scale of g⊙w in DCT units (a 0–255 block DCT coefficient).
        strength: default α multiplying the injected coefficients.
        quantize: round the image to 8 bits first, as the reference pipeline (off: α = 0 is the identity
            and the trigger is differentiable in the image).
    """

    k: int = attrs.field(default=16, validator=v.ge(1))
    n_freq: int = attrs.field(default=64, validator=v.ge(1))
    table: str = attrs.field(default="baiqa", validator=v.in_(("baiqa", "zigzag-mid")))
    selection: str = attrs.field(default="learned", validator=v.in_(("learned", "robust")))
    reweight: bool = True
    norm: str = attrs.field(default="batch", validator=v.in_(("batch", "none")))
    scale: float = attrs.field(default=100.0, validator=v.gt(0.0))
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))
    quantize: bool = False

    def __attrs_post_init__(self) -> None:
        if self.k > self.n_freq:
            raise ValueError(f"k = {self.k} exceeds n_freq = {self.n_freq}")


@attrs.frozen
class AttackParams:
    """BAvAFT attack objective (training-controlled).

    Attributes:
        dynamic: the dynamic loss (Eq. 7 / its PSNR form) instead of the static Eq. 5 / 6.
        alpha: static weight; None uses λ for the BPP attack (on D(x_p)) and 1 for the PSNR attack (on R(x_p)).
        beta: attack weight (paper 0.01).
        gamma, eps: visibility term γ·max(MSE(x, x_p), ε²) (paper 1e4, 0.005).
        d_p: PSNR attack's D_P: ``"neg-mse"`` = −255²·MSE(x, f(x_p)) or ``"psnr"`` = PSNR(x, f(x_p)) in dB.
        robust_stage2_after: BAvAFT++ stage 2 from this attack step on (encoder only, preprocessing
            augmentation on the attack term); 0 disables.
        preprocess: preprocessings drawn in stage 2 (plus identity).
        strength: trigger strength α used for poisoning.
    """

    dynamic: bool = True
    alpha: float | None = attrs.field(default=None, validator=v.optional(v.ge(0.0)))
    beta: float = attrs.field(default=0.01, validator=v.ge(0.0))
    gamma: float = attrs.field(default=1e4, validator=v.ge(0.0))
    eps: float = attrs.field(default=0.005, validator=v.ge(0.0))
    d_p: str = attrs.field(default="neg-mse", validator=v.in_(("neg-mse", "psnr")))
    robust_stage2_after: int = attrs.field(default=0, validator=v.ge(0))
    preprocess: tuple[str, ...] = attrs.field(default=("blur", "noise", "jpeg"), converter=tuple)
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))


@attrs.frozen
class RateMetricParams:
    """Rate metrics read the victim's extras; ``splits`` as other metrics."""

    splits: tuple[str, ...] = attrs.field(default=("clean", "poisoned"), converter=tuple)
