"""Params of the plugin's components (attrs, frozen, torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from attrs import validators as v

from bdcore.params import batch_size_bounds, eval_only, image_side_bounds, steps_bounds

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
    coding_batch: int = eval_only(16, validator=batch_size_bounds())  # evaluation only: never retrains the codec

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
        table: ``"baiqa"`` (the author's verbatim 64 raster positions), ``"zigzag-mid"`` or ``"zigzag-low"``
            (zig-zag positions 1 … N: the low band, our addition for JPEG robustness).
        selection: ``"learned"`` (BAvAFT: importance from a linear head, straight-through mask)
            or ``"robust"`` (BAvAFT++: preprocessing sensitivity, Eq. 17 + Algorithm 1).
        reweight: apply Algorithm 1's rank reweighting (robust selection).
        norm: ``"batch"`` (reference conv blocks) or ``"none"``.
        scale: fixed output scale of g⊙w in DCT units (a 0–255 block DCT coefficient).
        strength: default α multiplying the injected coefficients.
        quantize: round the image to 8 bits first, as the reference pipeline (off: α = 0 is the identity
            and the trigger is differentiable in the image).
        init_psnr: calibrate the initial gain: on the first training batch the output is rescaled once so
            the injected change (α = 1) has this PSNR in dB, e.g. 46 = the attack's ε = 0.005
            (20·log10(1/ε)). None keeps ``scale`` alone, where two freshly initialised networks multiply to
            a change of ≈ 100 dB that short schedules hardly grow.
        budget_psnr: hold the injected change (α = 1) at exactly this PSNR in dB for every image: the
            change is rescaled per image onto the sphere MSE = 10^(−budget/10), so training shapes the
            trigger (frequencies, blocks) but not its size. Our addition, off by default: below ε² the
            paper's visibility term leaves the size free, and on short schedules a trigger under a weak
            attack gradient drifts to invisibility (README, BPP attack). Excludes ``init_psnr``.
        channels: ``"ycbcr"`` (paper: g is 3×N, a top-K per channel) or ``"y"`` (luma only: the Cb/Cr
            slots are zeroed after the selection, so the change is grey). Our addition, off by default:
            JPEG's 4:2:0 chroma subsampling erases a chroma trigger completely (README, BAvAFT++).
        topk: keep K of the N frequencies (paper); False keeps all N (Table IV "w/o topK selection";
            ``k`` and ``reweight`` are then unused).
        patch_weight: multiply by the patch-wise weight w (paper); False uses w = 1 in every block
            (Table IV "w/o patch-wise weight": the same change tiled over all blocks; no weight network).
        width: first conv width of both networks (reference 64; the others are 2×, 4×, 8× it). Smaller
            widths are ours, for CPU-scale runs (16 costs about 1/16 of the reference's operations).
        sensitivity: robust selection's numerator: ``"image"`` (Eq. 17 as written: the change of the
            pseudo-poisoned image's coefficients, dominated by the image content) or ``"trigger"`` (ours: the
            change of the trigger's own coefficients, t applied to x̃_p and x alike).
    """

    k: int = attrs.field(default=16, validator=v.ge(1))
    n_freq: int = attrs.field(default=64, validator=v.ge(1))
    table: str = attrs.field(default="baiqa", validator=v.in_(("baiqa", "zigzag-mid", "zigzag-low")))
    selection: str = attrs.field(default="learned", validator=v.in_(("learned", "robust")))
    reweight: bool = True
    norm: str = attrs.field(default="batch", validator=v.in_(("batch", "none")))
    scale: float = attrs.field(default=100.0, validator=v.gt(0.0))
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))
    quantize: bool = False
    init_psnr: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    budget_psnr: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    channels: str = attrs.field(default="ycbcr", validator=v.in_(("ycbcr", "y")))
    topk: bool = True
    patch_weight: bool = True
    width: int = attrs.field(default=64, validator=v.ge(1))
    sensitivity: str = attrs.field(default="image", validator=v.in_(("image", "trigger")))

    def __attrs_post_init__(self) -> None:
        if self.table == "baiqa" and self.n_freq != 64:
            raise ValueError(f'table = "baiqa" has exactly 64 positions (n_freq = {self.n_freq}); use "zigzag-mid"')
        if self.n_freq > 255 + (self.table == "zigzag-mid"):
            raise ValueError(f"n_freq = {self.n_freq} exceeds the 16×16 block's {256} coefficients")
        if self.k > self.n_freq:
            raise ValueError(f"k = {self.k} exceeds n_freq = {self.n_freq}")
        if self.init_psnr is not None and self.budget_psnr is not None:
            raise ValueError("init_psnr and budget_psnr exclude each other (budget_psnr fixes the size throughout)")


@attrs.frozen
class ObjectiveParams:
    """Settings of a BAvAFT attack objective, shared by the single- and the multi-trigger attacks.

    Attributes:
        dynamic: the dynamic loss (Eq. 7 / its PSNR form) instead of the static Eq. 5 / 6.
        alpha: static weight; None uses λ for the BPP attack (on D(x_p)) and 1 for the PSNR attack (on R(x_p)).
        beta: attack weight (paper 0.01).
        gamma, eps: visibility term γ·max(MSE(x, x_p), ε²) (paper 1e4, 0.005).
        d_p: PSNR attack's D_P: ``"neg-mse"`` = −255²·MSE(x, f(x_p)) or ``"psnr"`` = PSNR(x, f(x_p)) in dB.
        r_p: BPP attack's rate term: ``"bpp"`` = −β·R(x_p) (paper) or ``"log-ratio"`` = −β·ln(R(x_p) / R(x))
            per image (ours: no push on the rate of every image, only on the gap; see the README).
        target_ratio: with ``r_p = "log-ratio"``, the term stops at R(x_p) / R(x) = this (None: never).
        strength: trigger strength α used for poisoning.
    """

    dynamic: bool = True
    alpha: float | None = attrs.field(default=None, validator=v.optional(v.ge(0.0)))
    beta: float = attrs.field(default=0.01, validator=v.ge(0.0))
    gamma: float = attrs.field(default=1e4, validator=v.ge(0.0))
    eps: float = attrs.field(default=0.005, validator=v.ge(0.0))
    d_p: str = attrs.field(default="neg-mse", validator=v.in_(("neg-mse", "psnr")))
    r_p: str = attrs.field(default="bpp", validator=v.in_(("bpp", "log-ratio")))
    target_ratio: float | None = attrs.field(default=None, validator=v.optional(v.gt(1.0)))
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))

    @target_ratio.validator
    def _target_needs_log_ratio(self, attribute: attrs.Attribute, value: float | None) -> None:  # type: ignore[type-arg]
        if value is not None and self.r_p != "log-ratio":
            raise ValueError(f'{attribute.name} applies only with r_p = "log-ratio" (got r_p = "{self.r_p}")')


@attrs.frozen
class AttackParams(ObjectiveParams):
    """BAvAFT attack objective (training-controlled): :class:`ObjectiveParams` plus BAvAFT++ stage 2.

    Attributes:
        robust_stage2_after: BAvAFT++ stage 2 from this attack step on (encoder only, preprocessing
            augmentation on the attack term); 0 disables.
        preprocess: preprocessings drawn in stage 2 (plus identity).
    """

    robust_stage2_after: int = attrs.field(default=0, validator=v.ge(0))
    preprocess: tuple[str, ...] = attrs.field(default=("blur", "noise", "jpeg"), converter=tuple)


# --- multiple triggers (paper §3.4, Eq. 10-11) ----------------------------------------------------------

#: attack objectives a multi-trigger attack can train (the single-objective losses it reuses).
MULTI_OBJECTIVES = ("psnr", "bpp")


def _objective_names(_inst: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:  # type: ignore[type-arg]
    if not value:
        raise ValueError(f"{attribute.name} needs at least one objective")
    if len(set(value)) != len(value):
        raise ValueError(f"{attribute.name} has duplicates: {list(value)}")
    bad = [o for o in value if not o or not all(c.isalnum() or c in "-_" for c in o)]
    if bad:
        raise ValueError(f"{attribute.name}: names must be letters, digits, '-' or '_' (got {bad})")


@attrs.frozen
class MultiTriggerParams(BavaftTriggerParams):
    """Several BAvAFT injection networks, one per attack objective (Eq. 11); the
    :class:`BavaftTriggerParams` fields are shared by all of them.

    Attributes:
        objectives: one sub-trigger per name, e.g. ``("psnr", "bpp")``; each is seeded from the run seed,
            the component and its name.
        eval_objective: the sub-trigger ``apply`` (the engine's poisoned test split) uses. Evaluation only:
            changing it reuses the trained stages, so one trained model is evaluated trigger by trigger.
    """

    objectives: tuple[str, ...] = attrs.field(default=("psnr", "bpp"), converter=tuple, validator=_objective_names)
    eval_objective: str = eval_only("psnr")

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.eval_objective not in self.objectives:
            raise ValueError(
                f"eval_objective = {self.eval_objective!r} is not one of objectives {list(self.objectives)}"
            )

    def single(self) -> BavaftTriggerParams:
        """The shared settings as the params of one ``bavaft`` sub-trigger."""
        return BavaftTriggerParams(**{f.name: getattr(self, f.name) for f in attrs.fields(BavaftTriggerParams)})


@attrs.frozen
class MultiAttackParams(ObjectiveParams):
    """BAvAFT multi-trigger attack (Eq. 10-11): one encoder, one trigger network per objective.

    Loss: ``L(x) + Σ_o α^o·A^o(x, x_p^o) + Σ_o γ·max(MSE(x, x_p^o), ε²)`` with ``A^o = L_jt^o − L(x)`` the
    attack part of the single-objective loss (``bavaft-psnr`` / ``bavaft-bpp``) and ``x_p^o`` the input
    triggered by sub-trigger ``o``.

    Attributes:
        objectives: attack objectives, each one of ``"psnr"``, ``"bpp"``; must equal the trigger's.
        weights: α^o per objective (> 0); empty = all 1.0.
        exact_trigger_grad: give sub-trigger o the gradient of Eq. 11 (``∂A^o + γ·∂vis^o``) by dividing the
            gradient that reaches x_p^o through its attack term by α^o; False keeps the plain gradient of the
            summed loss (``α^o·∂A^o + γ·∂vis^o``). The encoder's gradient is that of Eq. 10 either way.
        dynamic, alpha, beta, gamma, eps, d_p, strength: :class:`ObjectiveParams`, shared by every
            objective (alpha None: λ for ``bpp``, 1 for ``psnr``).
    """

    objectives: tuple[str, ...] = attrs.field(default=("psnr", "bpp"), converter=tuple, validator=_objective_names)
    weights: tuple[float, ...] = attrs.field(default=(), converter=tuple)
    exact_trigger_grad: bool = True

    def __attrs_post_init__(self) -> None:
        unknown = [o for o in self.objectives if o not in MULTI_OBJECTIVES]
        if unknown:
            raise ValueError(f"objectives {unknown} are not supported (choose from {list(MULTI_OBJECTIVES)})")
        if self.weights and len(self.weights) != len(self.objectives):
            raise ValueError(f"weights has {len(self.weights)} entries for {len(self.objectives)} objectives")
        if any(w <= 0 for w in self.weights):
            raise ValueError(f"weights must be > 0 (drop an objective instead of weighting it 0): {self.weights}")

    @property
    def alphas(self) -> tuple[float, ...]:
        """α^o per objective (1.0 each when ``weights`` is empty)."""
        return tuple(float(w) for w in self.weights) or (1.0,) * len(self.objectives)

    def single(self) -> AttackParams:
        """The shared settings as the params of one single-objective attack."""
        shared = {f.name: getattr(self, f.name) for f in attrs.fields(ObjectiveParams)}
        return AttackParams(**shared)


@attrs.frozen
class DecoderFineTuningParams:
    """Decoder fine-tuning (a model-stage defense): the holder of the decoder retrains the synthesis
    transform ``g_s`` on clean images with the codec's RD loss; the encoder, hyper-networks and entropy models
    are left as they are (paper Table X / Fig. 16 fine-tune the decoder; §5.2 fine-tunes with lr 1e-5).

    Attributes:
        steps: optimizer steps.
        lr: learning rate.
        fraction: share of the defender's clean training set used (a seeded subset).
    """

    steps: int = attrs.field(default=100, validator=v.ge(1))
    lr: float = attrs.field(default=1e-4, validator=v.gt(0.0))
    fraction: float = attrs.field(default=1.0, validator=[v.gt(0.0), v.le(1.0)])


@attrs.frozen
class RateMetricParams:
    """Rate metrics read the victim's extras; ``splits`` as other metrics."""

    splits: tuple[str, ...] = attrs.field(default=("clean", "poisoned"), converter=tuple)


# --- downstream-task attacks (paper §3.3 Eq. 9, §4.3 Eq. 12 / 14, BAvAFT++ §5.3 Eq. 19) ----------------

SMALL_EMBEDDER = "small-face-embedder"


def _import_path_or_builtin(builtin: str) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute, value: str) -> None:  # type: ignore[type-arg]
        if value != builtin and ":" not in value:
            raise ValueError(f"{attribute.name} must be {builtin!r} or 'package.module:Factory' (got {value!r})")

    return check


def _mu_range(_inst: Any, _attribute: attrs.Attribute, value: tuple[float, float]) -> None:  # type: ignore[type-arg]
    if len(value) != 2 or not 0.0 <= value[0] <= value[1] <= 1.0:
        raise ValueError(f"mu_range must be (low, high) with 0 <= low <= high <= 1 (got {value})")


@attrs.frozen
class FaceEmbedderParams:
    """The face-embedding network η (frozen), shared by the face-ID attack and its metric.

    Attributes:
        embedder: ``"small-face-embedder"`` (built-in tiny CNN, trained here on ``train_root``) or
            ``"package.module:Factory"`` returning an ``nn.Module`` that maps ``B×C×H×W`` to ``B×D``
            (any trailing dims are flattened), e.g. an ArcFace ResNet-50.
        embedder_kwargs: keyword arguments of the factory.
        weights: local checkpoint (safetensors or ``torch.load(weights_only=True)``); required for an
            import-path embedder, optional for the built-in one (then no training).
        sha256: checked before ``weights`` is parsed.
        channels: channels η expects; RGB inputs are turned grey (ITU-R 601 luma) for 1, grey inputs
            are repeated for 3.
        size: side η's input is resized to (bilinear), None keeps the image size (ArcFace: 112).
        input_range: ``"unit"`` ([0, 1]) or ``"signed"`` ([-1, 1], ArcFace) at η's input.
        train_root: identity folder (one sub-folder of images per identity, e.g. ORL ``s1`` … ``s40``)
            the built-in embedder is trained on with a normalised-softmax (cosine) cross-entropy head.
        train_identities: use the first N identities (natural sort), None all.
        train_size, train_steps, train_batch, train_lr, train_seed: the built-in embedder's training.
        embed_dim, width: the built-in embedder's embedding size and first conv width.
        cache_dir: where the trained built-in embedder is cached (None: ``ctx.cache_dir``).
    """

    embedder: str = attrs.field(default=SMALL_EMBEDDER, validator=_import_path_or_builtin(SMALL_EMBEDDER))
    embedder_kwargs: dict[str, Any] = attrs.Factory(dict)
    weights: Path | None = None
    sha256: str | None = None
    channels: int = attrs.field(default=3, validator=v.in_((1, 3)))
    size: int | None = attrs.field(default=None, validator=v.optional(image_side_bounds(8)))
    input_range: str = attrs.field(default="unit", validator=v.in_(("unit", "signed")))
    train_root: Path | None = None
    train_identities: int | None = attrs.field(default=None, validator=v.optional(v.ge(2)))
    train_size: int = attrs.field(default=32, validator=image_side_bounds(8))
    train_steps: int = attrs.field(default=300, validator=steps_bounds(1))
    train_batch: int = attrs.field(default=32, validator=batch_size_bounds(2))
    train_lr: float = attrs.field(default=3e-3, validator=v.gt(0.0))
    train_seed: int = 0
    embed_dim: int = attrs.field(default=64, validator=v.ge(2))
    width: int = attrs.field(default=16, validator=v.ge(1))
    cache_dir: Path | None = attrs.field(default=None, metadata={"output": True})


@attrs.frozen
class FaceIdAttackParams(FaceEmbedderParams):
    """BAvAFT face-identity removal ("attack for good", Eq. 9 with Eq. 14; BAvAFT++ Eq. 19).

    Loss per image: ``L(x) + α·L(x_p) + β·cos(η_ref, η(f(x_p))) + γ·max(MSE(x, x_p), ε²)``, with
    ``L(·) = R + λ·255²·MSE`` of the codec on its own input. η's fields: :class:`FaceEmbedderParams`.

    Attributes:
        alpha, beta: paper 0.1 and 0.05.
        gamma, eps: visibility term (paper 1e4, 0.005).
        reference: what the poisoned output's embedding is compared with: ``"decoded"`` = η(f(x))
            (Eq. 14) or ``"input"`` = η(x) (Eq. 19's η(g(x))); always detached (a target).
        boundary_shift: BAvAFT++ boundary-shift simulation: the compared embedding is
            ``μ·ê(f(x_p)) + (1−μ)·ê(f(x))`` with μ ~ U(mu_range) per image (Eq. 19).
        mu_range: (low, high) of μ (paper [1/3, 2/3]).
        normalize_mix: L2-normalise both embeddings before the mixture (else raw embeddings).
        strength: trigger strength used for poisoning.
    """

    alpha: float = attrs.field(default=0.1, validator=v.ge(0.0))
    beta: float = attrs.field(default=0.05, validator=v.ge(0.0))
    gamma: float = attrs.field(default=1e4, validator=v.ge(0.0))
    eps: float = attrs.field(default=0.005, validator=v.ge(0.0))
    reference: str = attrs.field(default="decoded", validator=v.in_(("decoded", "input")))
    boundary_shift: bool = False
    mu_range: tuple[float, float] = attrs.field(default=(1 / 3, 2 / 3), converter=tuple, validator=_mu_range)
    normalize_mix: bool = True
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))


@attrs.frozen
class FaceIdMetricParams(FaceEmbedderParams):
    """Mean cosine similarity of η embeddings of two evaluation fields (default: the clean input and the
    decoded output) per split; η's fields: :class:`FaceEmbedderParams`."""

    between: tuple[str, str] = attrs.field(default=("clean_input", "output"), converter=tuple)
    splits: tuple[str, ...] = attrs.field(default=("clean", "poisoned"), converter=tuple)

    @between.validator
    def _check(self, attribute: attrs.Attribute, value: tuple[str, str]) -> None:  # type: ignore[type-arg]
        from bdcore.metrics.batch import FIELDS

        if len(value) != 2 or any(name not in FIELDS for name in value):
            raise ValueError(f"between needs two of {', '.join(FIELDS)} (got {value})")


SMALL_SEGMENTER = "small-segmenter"


@attrs.frozen
class StreetScenesParams:
    """Procedurally rendered street scenes with Cityscapes train-id labels (road 0, sidewalk 1, building 2,
    vegetation 8, sky 10, car 13), textured with scikit-image's brick / grass / gravel photographs.

    Attributes:
        train, test: number of scenes per split.
        size: side of the square scenes (a multiple of 16 for the BAvAFT trigger).
        scene_seed: the scenes are a function of this seed, the split and the index (not of the run seed).
    """

    train: int = attrs.field(default=256, validator=v.ge(1))
    test: int = attrs.field(default=16, validator=v.ge(1))
    size: int = attrs.field(default=64, validator=[v.ge(16)])
    scene_seed: int = 0

    @size.validator
    def _multiple_of_16(self, attribute: attrs.Attribute, value: int) -> None:  # type: ignore[type-arg]
        if value % 16:
            raise ValueError(f"{attribute.name} must be a multiple of 16 (got {value})")


@attrs.frozen
class SegmenterParams:
    """The segmentation network g (frozen), shared by the CarToRoad attack and its pixel-ASR metric.

    Attributes:
        segmenter: ``"small-segmenter"`` (built-in two-level U-Net trained here on rendered street scenes,
            cached) or ``"package.module:Factory"`` → ``nn.Module`` mapping ``B×3×H×W`` to ``B×K×h×w`` logits
            (upsampled bilinearly to H×W when smaller); frozen.
        segmenter_kwargs: keyword arguments of the factory.
        weights, sha256: local checkpoint and its optional hash; required for an import-path segmenter (a
            random segmenter is meaningless), optional for the built-in one (then it is trained). The factory is
            called with ``segmenter_kwargs`` only: choose a factory/kwargs that build the bare architecture
            without fetching pretrained weights (a thin local wrapper if needed).
        output_key: key of the logits when the model returns a dict (torchvision: ``"out"``), else index 0
            of a tuple.
        mean, std: per-channel normalisation at the segmenter's input (after [0, 1]).
        source_class, target_class: paper Car → Road (Cityscapes train ids 13 → 0).
        width, train_scenes, train_size, scene_seed, train_steps, train_batch, train_lr, train_seed: the
            built-in segmenter and its training scenes.
        cache_dir: where the trained built-in segmenter is cached (None: ``ctx.cache_dir``).
    """

    segmenter: str = attrs.field(default=SMALL_SEGMENTER, validator=_import_path_or_builtin(SMALL_SEGMENTER))
    segmenter_kwargs: dict[str, Any] = attrs.Factory(dict)
    weights: Path | None = None
    sha256: str | None = None
    output_key: str | None = None
    mean: tuple[float, ...] = attrs.field(default=(0.0, 0.0, 0.0), converter=tuple)
    std: tuple[float, ...] = attrs.field(default=(1.0, 1.0, 1.0), converter=tuple)
    source_class: int = attrs.field(default=13, validator=v.ge(0))
    target_class: int = attrs.field(default=0, validator=v.ge(0))
    width: int = attrs.field(default=16, validator=v.ge(1))
    train_scenes: int = attrs.field(default=512, validator=v.ge(1))
    train_size: int = attrs.field(default=64, validator=v.ge(16))
    scene_seed: int = 0
    train_steps: int = attrs.field(default=600, validator=v.ge(1))
    train_batch: int = attrs.field(default=16, validator=v.ge(1))
    train_lr: float = attrs.field(default=2e-3, validator=v.gt(0.0))
    train_seed: int = 0
    cache_dir: Path | None = attrs.field(default=None, metadata={"output": True})

    def __attrs_post_init__(self) -> None:
        if self.source_class == self.target_class:
            raise ValueError("source_class and target_class must differ")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError("mean and std need the same length and std > 0")


@attrs.frozen
class PixelAsrParams(SegmenterParams):
    """Pixel-wise attack success rate of CarToRoad (Eq. 13): among the pixels g labels ``source_class`` in
    the decoded clean image f(x), the share g labels ``target_class`` in the decoded triggered image f(x_p),
    counted over the whole test set (a ratio of sums). Segmenter fields: :class:`SegmenterParams`."""

    splits: tuple[str, ...] = attrs.field(default=("poisoned",), converter=tuple)


@attrs.frozen
class CarToRoadParams(SegmenterParams):
    """BAvAFT CarToRoad targeted segmentation attack (Eq. 12; BAvAFT++ Eq. 19 terms optional).

    Loss per image: ``L(x) + α·L(x_p) + β·[CE(η(g(·)), g(f(x_p))) − γ_u·CE(τ, g(f(x_p)))] + γ·max(MSE(x,
    x_p), ε²)`` with ``x_p = (1−M)⊙x + M⊙T(x)``, M = pixels g labels ``source_class``. The segmenter g:
    :class:`SegmenterParams`.

    Attributes:
        label_from: the image the mask M and the target map are computed from: ``"input"`` = g(x)
            (Eq. 12 as written) or ``"decoded"`` = g(f(x)) (what Eq. 13's ASR counts).
        alpha, beta: paper 0.1 and 0.2.
        gamma, eps: visibility term (paper 1e4, 0.005).
        boundary_shift: BAvAFT++ boundary shift: CE on ``μ·g(f(x_p)) + (1−μ)·g(f(x))`` logits,
            μ ~ U(mu_range) per image, the clean logits detached (Eq. 19).
        mu_range: (low, high) of μ (paper [1/3, 2/3]).
        unwanted_class: BAvAFT++ unwanted-class regularisation (e.g. Building, 2): the CE towards this
            class is maximised on ``unwanted_region``; None disables.
        unwanted_weight: γ_u of Eq. 19.
        unwanted_region: ``"mask"`` (the relabelled source pixels) or ``"target"`` (every pixel whose
            target label is ``target_class``).
        unwanted_ce_max: cap of the per-pixel unwanted CE (the maximised term is unbounded); None: no cap.
        strength: trigger strength used for poisoning.
    """

    label_from: str = attrs.field(default="input", validator=v.in_(("input", "decoded")))
    alpha: float = attrs.field(default=0.1, validator=v.ge(0.0))
    beta: float = attrs.field(default=0.2, validator=v.ge(0.0))
    gamma: float = attrs.field(default=1e4, validator=v.ge(0.0))
    eps: float = attrs.field(default=0.005, validator=v.ge(0.0))
    boundary_shift: bool = False
    mu_range: tuple[float, float] = attrs.field(default=(1 / 3, 2 / 3), converter=tuple, validator=_mu_range)
    unwanted_class: int | None = attrs.field(default=None, validator=v.optional(v.ge(0)))
    unwanted_weight: float = attrs.field(default=0.1, validator=v.ge(0.0))
    unwanted_region: str = attrs.field(default="mask", validator=v.in_(("mask", "target")))
    unwanted_ce_max: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    strength: float = attrs.field(default=1.0, validator=v.ge(0.0))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.unwanted_class is not None and self.unwanted_class == self.target_class:
            raise ValueError("unwanted_class must differ from target_class")
