"""The experiment spec as frozen attrs classes (phase 1 of structuring).

Component references keep their ``params`` as a plain table here; phase 2
(:mod:`bdcore.spec.structure`) structures each into the component's own
``Params`` class once the registry is known.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import attrs
from attrs import validators as v

from bdcore.params import batch_size_bounds, learning_rate_bounds, seed_bounds, steps_bounds

_positive: Any = v.gt(0)
_non_negative: Any = v.ge(0)

_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d{1,3})?)$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _quote(value: str) -> str:
    return f'the string "{value[:80]}{"…" if len(value) > 80 else ""}"'


def _opt(validator: Any) -> Any:
    return v.optional(validator)


def _device(inst: object, attribute: attrs.Attribute, value: str) -> None:  # type: ignore[type-arg]
    """one of `"cpu"`, `"auto"`, `"cuda"`, `"cuda:N"`, `"mps"`"""
    if not _DEVICE.match(value):
        raise ValueError(f'expected "cpu", "auto", "cuda", "cuda:N" or "mps", got {_quote(value)}')


def _sha256(inst: object, attribute: attrs.Attribute, value: str | None) -> None:  # type: ignore[type-arg]
    """64 hexadecimal digits (when set)"""
    if value is not None and not _SHA256.match(value):
        raise ValueError(f"expected 64 hexadecimal digits (a sha256), got {_quote(value)}")


@attrs.frozen
class ComponentRef:
    """``use = "name"`` plus its ``params`` table; ``label`` names it in results."""

    use: str
    params: dict[str, Any] = attrs.Factory(dict)
    label: str | None = None


@attrs.frozen
class ObserverRef(ComponentRef):
    """One entry of ``[run] observers``: a name (``"tensorboard"``) or a table
    ``{ use = "mlflow", params = { tracking_uri = "..." } }``."""


@attrs.frozen
class DataSection(ComponentRef):
    """``[data]``: the data source (``use``, ``params``) and how its batches are loaded.

    ``workers``: loader worker processes decoding and augmenting in parallel (None: 0 on the CPU, on a
    GPU one per core but one, at most 8; results are identical for any value). ``prefetch``: batches
    each worker prepares ahead. ``cache_mb``: decoded images kept in memory per loader (small sets are
    decoded once; a large folder streams past the budget). ``verify``: open every image when the data
    is indexed and stop with the list of unreadable files before anything trains (without it, an
    unreadable image met during the run is logged and replaced by the next readable one).
    Bounds: ``workers`` at most 256, ``prefetch`` at most 1024, ``cache_mb`` at most 10^8.
    """

    workers: int | None = attrs.field(default=None, validator=_opt([_non_negative, v.le(256)]))
    prefetch: int = attrs.field(default=2, validator=[_positive, v.le(1024)])
    cache_mb: int = attrs.field(default=1024, validator=[_non_negative, v.le(10**8)])
    verify: bool = False


@attrs.frozen
class RunSection:
    """``[run]``: name, seed, device, required plugins, checkpoint cadence, and how the run is watched.

    ``observers``: experiment trackers (``bdcore list observers``), e.g. ``["tensorboard",
    { use = "mlflow", params = { experiment = "asfiba" } }]``; ``bdcore run --observe NAME`` adds one.
    ``log_every``: training steps per logged record (the mean of each loss term over them): the
    loss history of the report and the curves the trackers receive. ``progress_every``: seconds
    between two plain progress lines of a stage when stderr is not a terminal, and in
    ``run.log``; ``progress_steps``: also a line every this many steps (0: by time only).

    ``seed`` is from 0 to 2^63-1 (what torch and numpy generators take); ``requires`` is an array of
    requirement strings (``["bd-plugin-asfiba>=0.2"]``).
    """

    name: str | None = None
    seed: int = attrs.field(default=0, validator=seed_bounds())
    device: str = attrs.field(default="cpu", validator=_device)
    requires: tuple[str, ...] = ()
    out: Path | None = None
    checkpoint_every: int = attrs.field(default=100, validator=_positive)
    deterministic: bool = True
    observers: tuple[ObserverRef, ...] = ()
    log_every: int = attrs.field(default=10, validator=_positive)
    progress_every: float = attrs.field(default=30.0, validator=_non_negative)
    progress_steps: int = attrs.field(default=0, validator=_non_negative)


@attrs.frozen
class TrainSettings:
    """Optimisation settings shared by ``[train]`` (clean victim) and ``[attack]``.

    ``precision``: ``"32"`` (float32), ``"bf16"`` (bfloat16 autocast) or ``"16-mixed"`` (float16 autocast
    with loss scaling); weights stay float32, parts a component marks ``keep_fp32`` run in float32, and
    evaluation is float32. ``channels_last``: convolutional models and image batches in the channels-last
    layout (faster convolutions on GPUs, with ``bf16``/``16-mixed`` above all). ``compile``:
    ``torch.compile`` the models for the stage (opt-in: compiling takes minutes; pays on long GPU runs).

    Bounds: ``steps`` at most 10^8, ``batch_size`` at most 65536, ``lr`` positive; every
    number must be finite (``nan`` and ``inf`` are refused everywhere).
    """

    steps: int = attrs.field(default=0, validator=steps_bounds())
    batch_size: int = attrs.field(default=8, validator=batch_size_bounds())
    lr: float = attrs.field(default=1e-3, validator=learning_rate_bounds())
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
    sha256: str | None = attrs.field(default=None, validator=_sha256)


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
    fit_steps: int = attrs.field(default=0, validator=steps_bounds())


@attrs.frozen
class Sweep:
    """Evaluate a defense once per value of one of its params (a curve), inside one run.

    ``[[defense]] sweep = { param = "quality", values = [90, 50, 10] }`` reuses the run's attacked
    model for every value. A grid of whole runs (attacks × victims × seeds) is the ``[sweep]``
    section and ``bdcore sweep`` (see :class:`GridSection`).
    """

    param: str
    values: tuple[Any, ...] = attrs.field(validator=v.min_len(1))


@attrs.frozen
class DefenseEntry(ComponentRef):
    """One ``[[defense]]`` table; evaluated independently against the attacked model."""

    sweep: Sweep | None = None


@attrs.frozen
class EvalSection:
    """``[eval]``: batch size, how many test samples, image-grid size, references.

    ``grid``: how many example test images the report shows, each from a distinct source image (never
    two crops of one photograph), with every model's outputs on them; 0 shows none.
    """

    batch_size: int = attrs.field(default=8, validator=batch_size_bounds())
    limit: int | None = attrs.field(default=None, validator=_opt(_positive))
    grid: int = attrs.field(default=4, validator=_non_negative)
    clean_victim: bool = True
    stealth: bool = True


@attrs.frozen
class GridResources:
    """``[sweep.resources]``: what one cell asks of a worker under ``bdcore sweep --executor ray``
    (Ray task resources; fractions share a GPU between cells). ``cpus`` (rounded down, at least 1) is
    also the number of torch threads a cell computes with under every executor, so local, pool and
    Ray give the same numbers to the last bit."""

    cpus: float = attrs.field(default=1.0, validator=v.gt(0))
    gpus: float = attrs.field(default=0.0, validator=_non_negative)


@attrs.frozen
class GridTable:
    """``[sweep.table]``: the paper-shaped table of a sweep (mean ± std over seeds).

    Fields that ``rows`` and ``columns`` can name: an axis (its dotted key, or its short name
    such as ``quality`` for ``defense[0].params.quality``), ``model`` (``clean-victim``,
    ``attacked``, a defense label), ``split`` (``clean``, ``poisoned``) and ``metric``. A field that
    still varies but is named nowhere is added to the columns (axes to the rows). ``values``,
    ``models`` and ``splits`` keep only those metrics, models and splits (empty: all), in that
    order. ``x``: the axis on the x axis of the report's figures (default: the first axis with
    numbers, else the first axis). ``export``: also write the table as ``EXPORT.md`` and the
    aggregated rows as ``EXPORT.csv`` (a path without suffix, relative to the spec file), e.g. for
    a committed results file.
    """

    rows: Any = attrs.field(default=(), metadata={"toml_type": "array of string"})
    columns: Any = attrs.field(default=(), metadata={"toml_type": "array of string"})
    values: Any = attrs.field(default=(), metadata={"toml_type": "array of string"})
    models: Any = attrs.field(default=(), metadata={"toml_type": "array of string"})
    splits: Any = attrs.field(default=(), metadata={"toml_type": "array of string"})
    digits: int = attrs.field(default=3, validator=[v.ge(0), v.le(12)])
    x: str | None = None
    export: str | None = None


@attrs.frozen
class GridSection:
    """``[sweep]``: a grid of runs for ``bdcore sweep`` (a paper's whole table).

    Each cell is an ordinary run of this spec with some values changed, exactly as ``bdcore run
    SPEC --set KEY=VALUE ...`` would change them: ``axes`` maps dotted keys (the keys ``--set``
    takes, e.g. ``"attack.loss.use"``, ``"defense[0].params.quality"``, or a whole
    ``"defense"`` array) to the values to try. Cells are the product of the axes; the axes of
    one ``zip`` group move together (equal lengths; one axis of a group may repeat a value as long as
    no two positions are equal on every axis, e.g. a table's rows as whole trigger and loss params); ``seeds`` repeats every cell once per
    ``run.seed`` (results are aggregated as mean ± std over them); ``exclude`` drops the cells
    matching every key of one of its tables (axis key or short name = a value or its label).
    ``labels`` gives an axis's values readable names (default: from the values), ``names`` an
    axis a short name (default: the last part of its key, e.g. ``quality``). Cells are named
    ``name=label,...,seed=N`` from them (a ``zip`` group by its first axis). Cells whose stages have equal keys (same data,
    victim, clean training, attack) share one trained artifact in the stage ``store`` (a folder,
    or any fsspec URL such as ``s3://bucket/stages``; default: ``.stages`` in the output root, as
    for ``bdcore run``; relative paths resolve against the spec file). ``shared_first``: start a cell only once
    the stages it shares with earlier cells are finished (others run meanwhile). ``max_retries``:
    how often Ray reruns a cell whose worker was lost.

    Example::

        [sweep]
        seeds = [0, 1, 2]
        axes = { "attack.loss.use" = ["toy-invert", "toy-invert-controlled"], "attack.poison_rate" = [0.1, 0.5] }
        exclude = [{ "attack.loss.use" = "toy-invert-controlled", poison_rate = 0.5 }]

        [sweep.table]
        rows = ["loss"]
        columns = ["poison_rate", "metric"]
        values = ["psnr"]
    """

    name: str | None = None
    axes: Any = attrs.field(factory=dict, metadata={"toml_type": "table: dotted key → array of values"})
    zip: Any = attrs.field(default=(), metadata={"toml_type": "array of arrays of axis keys"})
    seeds: Any = attrs.field(default=(), metadata={"toml_type": "array of integer"})
    exclude: Any = attrs.field(default=(), metadata={"toml_type": "array of tables (axis → value)"})
    labels: Any = attrs.field(factory=dict, metadata={"toml_type": "table: axis key → array of string"})
    names: Any = attrs.field(factory=dict, metadata={"toml_type": "table: axis key → string"})
    store: str | None = None
    shared_first: bool = True
    max_retries: int = attrs.field(default=3, validator=_non_negative)
    resources: GridResources = attrs.Factory(GridResources)
    table: GridTable = attrs.Factory(GridTable)

    def validate(self) -> list[Any]:
        """Cross-field checks of the grid (axes, zip, labels, exclude, seeds, table fields)."""
        from bdcore.sweep.grid import section_issues

        return section_issues(self)


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
    sweep: GridSection | None = None
