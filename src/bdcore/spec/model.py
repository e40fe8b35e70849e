"""The experiment spec as frozen attrs classes (phase 1 of structuring).

Component references keep their ``params`` as a plain table here; phase 2
(:mod:`bdcore.spec.structure`) structures each into the component's own
``Params`` class once the registry is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
from attrs import validators as v

_positive: Any = v.gt(0)
_non_negative: Any = v.ge(0)


def _opt(validator: Any) -> Any:
    return v.optional(validator)


@attrs.frozen
class ComponentRef:
    """``use = "name"`` plus its ``params`` table; ``label`` names it in results."""

    use: str
    params: dict[str, Any] = attrs.Factory(dict)
    label: str | None = None


@attrs.frozen
class DataSection(ComponentRef):
    """``[data]``: the data source (``use``, ``params``) and how its batches are loaded.

    ``workers``: loader worker processes decoding and augmenting in parallel (None: 0 on the CPU, on a
    GPU one per core but one, at most 8; results are identical for any value). ``prefetch``: batches
    each worker prepares ahead. ``cache_mb``: decoded images kept in memory per loader (small sets are
    decoded once; a large folder streams past the budget). ``verify``: open every image when the data
    is indexed and stop with the list of unreadable files before anything trains (without it, an
    unreadable image met during the run is logged and replaced by the next readable one).
    """

    workers: int | None = attrs.field(default=None, validator=_opt(_non_negative))
    prefetch: int = attrs.field(default=2, validator=_positive)
    cache_mb: int = attrs.field(default=1024, validator=_non_negative)
    verify: bool = False


@attrs.frozen
class RunSection:
    """``[run]``: name, seed, device, required plugins and checkpoint cadence."""

    name: str | None = None
    seed: int = attrs.field(default=0, validator=_non_negative)
    device: str = attrs.field(default="cpu", validator=v.matches_re(r"^(cpu|auto|cuda(:\d+)?|mps)$"))
    requires: tuple[str, ...] = ()
    out: Path | None = None
    checkpoint_every: int = attrs.field(default=100, validator=_positive)
    deterministic: bool = True


@attrs.frozen
class TrainSettings:
    """Optimisation settings shared by ``[train]`` (clean victim) and ``[attack]``.

    ``precision``: ``"32"`` (float32), ``"bf16"`` (bfloat16 autocast) or ``"16-mixed"`` (float16 autocast
    with loss scaling); weights stay float32, parts a component marks ``keep_fp32`` run in float32, and
    evaluation is float32. ``channels_last``: convolutional models and image batches in the channels-last
    layout (faster convolutions on GPUs, with ``bf16``/``16-mixed`` above all). ``compile``:
    ``torch.compile`` the models for the stage (opt-in: compiling takes minutes; pays on long GPU runs).
    """

    steps: int = attrs.field(default=0, validator=_non_negative)
    batch_size: int = attrs.field(default=8, validator=_positive)
    lr: float = attrs.field(default=1e-3, validator=_positive)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    momentum: float = attrs.field(default=0.9, validator=[v.ge(0.0), v.lt(1.0)])
    grad_clip: float | None = attrs.field(default=None, validator=_opt(_positive))
    precision: Literal["32", "bf16", "16-mixed"] = "32"
    channels_last: bool = False
    compile: bool = False


@attrs.frozen
class VictimSection:
    """``[victim]``: the model; ``weights`` loads a local checkpoint instead of training."""

    use: str
    params: dict[str, Any] = attrs.Factory(dict)
    weights: Path | None = None
    sha256: str | None = attrs.field(default=None, validator=_opt(v.matches_re(r"^[0-9a-fA-F]{64}$")))


@attrs.frozen
class AttackSection(TrainSettings):
    """``[attack]``: trigger, attack loss, poisoning rate and the attack's training.

    ``from_clean``: start from the trained clean victim (fine-tuning attacks, e.g.
    encoder-only BAvAFT) instead of a fresh model. ``fit_steps``: steps of the
    trigger's fit stage (learnable triggers). With ``loss = { use = "evasion" }`` the attack is
    test-time only (e.g. a PGD trigger): nothing is poisoned or trained, the clean victim is the
    model under attack, and ``poison_rate`` and ``steps`` are not used.
    """

    trigger: ComponentRef = attrs.field(kw_only=True)
    loss: ComponentRef = attrs.field(kw_only=True)
    poison_rate: float = attrs.field(default=0.1, validator=[v.ge(0.0), v.le(1.0)])
    from_clean: bool = False
    fit_steps: int = attrs.field(default=0, validator=_non_negative)


@attrs.frozen
class Sweep:
    """Evaluate a defense once per value of one of its params (a curve)."""

    param: str
    values: tuple[Any, ...] = attrs.field(validator=v.min_len(1))


@attrs.frozen
class DefenseEntry(ComponentRef):
    """One ``[[defense]]`` table; evaluated independently against the attacked model."""

    sweep: Sweep | None = None


@attrs.frozen
class EvalSection:
    """``[eval]``: batch size, how many test samples, image-grid size, references."""

    batch_size: int = attrs.field(default=8, validator=_positive)
    limit: int | None = attrs.field(default=None, validator=_opt(_positive))
    grid: int = attrs.field(default=4, validator=_non_negative)
    clean_victim: bool = True
    stealth: bool = True


@attrs.frozen
class Spec:
    """A whole experiment."""

    data: DataSection
    victim: VictimSection
    run: RunSection = attrs.Factory(RunSection)
    train: TrainSettings = attrs.Factory(TrainSettings)
    attack: AttackSection | None = None
    defense: tuple[DefenseEntry, ...] = ()
    metric: tuple[ComponentRef, ...] = ()
    eval: EvalSection = attrs.Factory(EvalSection)
