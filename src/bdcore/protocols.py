"""The component protocols: what a registered factory must return.

A batch is a plain ``dict[str, Any]`` of tensors with these conventional keys
(see :mod:`bdcore.data.sample`):

* ``"input"``: ``B×C×H×W`` float in [0, 1], what the victim sees;
* ``"target"``: the ground truth (an image ``B×C×H×W``, a score ``B``, a class ``B``);
* ``"index"``: ``B`` int64, the sample's index in its dataset;
* after :meth:`AttackLoss.poison`: ``"clean_input"`` (the input before the
  trigger), ``"attack_target"`` (what the attacker wants the victim to output),
  ``"strength"`` (``B`` float, the trigger strength α used per sample).

Most plugins subclass the torch base classes in :mod:`bdcore.components`, which
implement these protocols with sensible defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from bdcore.context import DefenseContext, FitContext
    from bdcore.metrics.batch import EvalBatch

Batch = dict[str, Any]
ThreatModel = Literal["data-poisoning", "training-controlled", "evasion"]
DefenseStage = Literal["input", "model", "detection"]
Split = Literal["clean", "poisoned"]


@runtime_checkable
class Trigger(Protocol):
    """Turns clean inputs into poisoned inputs (``inject_trigger``).

    Capabilities: ``learnable`` (has a ``fit`` stage or parameters trained with the
    victim), ``needs_victim`` (computed against the victim, e.g. adversarial; the engine
    calls ``bind_victim(model)`` with the model under attack before triggering test inputs;
    required of a ``fit`` that calls ``ctx.clean_victim()``, so the fit stage's key includes
    the victim and its clean training), ``differentiable`` (gradients flow to the images;
    gradcheck-ed by the contract suite). Optional: ``builds_victim`` (default ``False``;
    required of a ``fit`` that builds a surrogate of the victim's architecture with
    ``build_victim`` and does not use the clean victim: the key includes the victim's
    component and weights, not its training).
    """

    learnable: bool
    needs_victim: bool
    differentiable: bool

    def inject_trigger(
        self,
        images: Tensor,
        *,
        strength: float | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Poison a batch.

        Args:
            images: ``B×C×H×W`` float in [0, 1], any H and W.
            strength: the trigger strength α, a float or a ``B`` tensor; ``None`` is
                the trigger's own default (1.0). α = 0 leaves images unchanged.
            generator: source of randomness for stochastic triggers.

        Returns:
            ``B×C×H×W``, same dtype and device, clamped to [0, 1].
        """
        ...

    def fit(self, ctx: FitContext) -> None:
        """Train the trigger on the run's data (only called when ``learnable``)."""
        ...


@runtime_checkable
class PseudoTrigger(Protocol):
    """Optional trigger capability: ``pseudo_poison``, a *pseudo* (cross) trigger of the same family.

    A pseudo-triggered input looks like a triggered one but must keep the clean behaviour, which
    teaches the victim the real trigger and not any perturbation of its kind: FIBA's and WaNet's
    "cross" samples, AS-FIBA's pseudo trigger images (Eq. 4, used by its Eq. 5 loss). An attack
    loss checks ``isinstance(trigger, PseudoTrigger)`` (duck-typed: the method's presence).
    """

    def pseudo_poison(
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        strength: float | Tensor = 1.0,
    ) -> Tensor:
        """Apply a fresh pseudo trigger per image (drawn from ``generator``).

        Args:
            images: ``B×C×H×W`` float in [0, 1].
            generator: source of the random draw (CPU generator); the same seed gives the same output.
            strength: as in :meth:`Trigger.inject_trigger`.

        Returns:
            ``B×C×H×W``, same dtype and device, clamped to [0, 1].
        """
        ...


@runtime_checkable
class Victim(Protocol):
    """The model under attack: an ``nn.Module`` plus what the task needs."""

    task: str

    def predict(self, inputs: Tensor) -> Tensor | Mapping[str, Tensor]:
        """The output metrics read: an image, a score ``B``, logits ``B×K``, or a dict
        with ``"output"`` plus extras (e.g. a codec's real ``"bpp"``)."""
        ...

    def clean_loss(self, batch: Batch) -> Mapping[str, Tensor]:
        """The task's plain training loss: a dict with ``"loss"`` plus named terms."""
        ...

    def trainable_parameters(self, phase: Literal["clean", "attack"]) -> Iterable[torch.nn.Parameter]:
        """What the optimizer updates in each phase (e.g. only a codec's encoder)."""
        ...


@runtime_checkable
class AttackLoss(Protocol):
    """The attack: how to poison a batch, its target, and (training-controlled) its loss.

    Optional: ``target_description`` (a string, or None), the attack's goal in words when
    ``attack_target`` is no image worth showing; the report prints it instead of an attack-target
    column (see :class:`bdcore.components.AttackLossBase`). ``uses_clean_victim`` (a bool, default
    False): the loss calls ``ctx.clean_victim()`` while it trains (a surrogate), so the engine trains or
    loads the clean victim as its own stage first and a sweep plans that stage for the cell.
    ``prepare_items(items)`` (default: None): inputs for poisoned training items computed once, whole,
    before training (a per-image perturbation such as C-BAIQA's refinement); the engine trains on them
    in place of the items' own, before crops and flips (see ``AttackLossBase.prepare_items``).
    """

    threat_model: ThreatModel
    trains_trigger: bool

    def poison(self, batch: Batch, trigger: Trigger, *, generator: torch.Generator | None) -> Batch:
        """Return the poisoned copy of ``batch``: ``input`` triggered, ``attack_target``,
        ``clean_input`` and ``strength`` set."""
        ...

    def attack_loss(self, victim: Victim, clean: Batch, poisoned: Batch) -> Mapping[str, Tensor]:
        """The training objective (training-controlled only): ``"loss"`` plus terms."""
        ...


class DefenseResult(Protocol):
    """What a defense returns; see :class:`bdcore.components.DefenseOutcome`."""

    victim: Victim | None
    transform: Callable[[Tensor], Tensor] | None
    detector: Callable[[Victim, Tensor], Tensor] | None
    extra: dict[str, float]


@runtime_checkable
class Defense(Protocol):
    """A model-level, input-level or detection defense (``defend``)."""

    stage: DefenseStage

    def defend(self, victim: Victim, ctx: DefenseContext) -> DefenseResult: ...


@runtime_checkable
class Metric(Protocol):
    """A streaming metric (``metric``) with pyiqa-style metadata.

    ``needs`` names the :class:`bdcore.metrics.batch.EvalBatch` fields it reads
    beyond ``input``, ``output``, ``extras`` and ``strength`` (``target``,
    ``attack_target``, ``clean_input``, ``clean_model_input``, ``clean_output``,
    ``reference_output``, ``victim``, ``trigger``, ``attack``); ``splits`` the splits
    it is computed on (``"clean"``, ``"poisoned"``; there is no ``attack_target`` on
    the clean split). ``higher_is_better`` is the direction for the report (None: no
    direction).

    **Params may shape ``needs`` and ``splits``.** The engine builds one instance per
    split from the structured params and asks *the instance* for ``splits`` (and
    bdcore's checks ask it for ``needs``), so both may be computed in ``__init__`` or
    as properties::

        self.splits = tuple(params.splits)           # e.g. splits = ["poisoned"] in the spec

        @property
        def needs(self) -> frozenset[str]:           # e.g. between = ["input", "clean_input"]
            return frozenset(self.params.between) - {"input", "output"}

    The built-in ``psnr``/``ssim``/``ms-ssim`` do exactly this with their ``between``
    and ``splits`` params. ``MetricContract`` checks that ``update`` reads no field
    missing from ``needs``.

    **Streaming.** ``reset()`` starts over, ``update(batch)`` is called once per test
    batch, ``compute()`` returns ``{name: value}`` (one result row each; the first
    key is usually the metric's ``name``). The value must not depend on how the
    test set is cut into batches (accumulate per sample, as ``MeanOverImages``).

    Optional hook (not required by ``isinstance``): ``grid_columns(batch, n) ->
    dict[str, Tensor]`` returns images (``n×1×H×W`` or ``n×3×H×W`` in [0, 1]) that
    the report's image grid shows as extra columns labelled ``"<metric name>:
    <column>"``, e.g. ``grad-cam``'s heat maps. See
    :meth:`bdcore.components.MetricBase.grid_columns` for when it is called and how
    label clashes are resolved.
    """

    higher_is_better: bool | None
    needs: frozenset[str]
    splits: tuple[Split, ...]

    def reset(self) -> None: ...

    def update(self, batch: EvalBatch) -> None: ...

    def compute(self) -> dict[str, float]: ...


@runtime_checkable
class DataSource(Protocol):
    """A dataset provider for ``[data]``: train and test splits of sample dicts.

    Each split is a map-style dataset (``__len__``, ``__getitem__``) whose optional
    ``get(index, seed)`` draws sample ``index`` with the augmentation seed the engine
    passes (the same seed for the same step, so crops are reproducible); the engine reads
    it through ``torch.utils.data.DataLoader`` workers (``[data] workers``), so a split
    must pickle (module-level functions, not lambdas, where the start method is not
    ``fork``) and must draw randomness only from that seed, never from global state.

    For large sets, index file paths in ``splits()`` and decode in ``get``: the
    :class:`bdcore.data.sources.SplitSource` base does this, with a decoded-item cache the
    engine bounds (``[data] cache_mb``, through ``set_cache_budget(nbytes)``) and with an
    unreadable item logged and replaced by the next readable one. ``ctx.options["verify"]``
    is ``[data] verify``: when true, check every item while indexing and raise
    :class:`bdcore.errors.DataError` naming the unreadable files.
    """

    def splits(self) -> Mapping[str, Any]: ...


@runtime_checkable
class Observer(Protocol):
    """Watches a run through its events (an experiment tracker, a logger, a notifier).

    The engine calls ``on_event`` for every event of the run, in order (see
    :mod:`bdcore.observe.events`), and ``close`` once at the end, also when the run failed.
    An optional ``wants`` attribute (a set of event kinds such as ``{"scalars", "run_end"}``)
    limits the calls to those kinds; :class:`bdcore.observe.base.ObserverBase` computes it
    from the ``on_<kind>`` methods a subclass overrides. ``progress`` events come every training
    step: handle them cheaply or leave them out of ``wants``.

    What an observer raises is reported, never fatal to the run.
    """

    def on_event(self, event: Any) -> None:
        """Handle one event (:class:`bdcore.observe.events.RunStarted`, ``StageStarted``,
        ``Progress``, ``Scalars``, ``StageEnded``, ``Message``, ``EvalRows``, ``Images``,
        ``RunEnded``)."""
        ...

    def close(self) -> None:
        """Flush and release files or connections."""
        ...


class Resumable(Protocol):
    """Optional capability of any component (victim, trigger, attack loss, or a submodule of
    one): training state that is not in ``state_dict()``, saved with every training
    checkpoint so that a run killed and resumed with ``bdcore run --resume`` ends
    bit-identical to an uninterrupted one.

    What belongs here: a private optimizer or learning-rate scheduler (a codec's
    auxiliary quantile optimizer, a GAN discriminator's), a ``torch.Generator``,
    ``random.Random`` or ``numpy.random.Generator`` the component draws from while
    training, a step counter that changes the objective (a schedule). Parameters and
    buffers are already in ``state_dict()``.

    The engine saves, per checkpoint: every trained module's ``state_dict()``, its own
    optimizer and ``GradScaler``, the global random streams (torch CPU and CUDA, NumPy,
    Python), the position of the batch stream, and ``train_state_dict()`` of each
    component and of each of its submodules that has one. On resume it restores them in
    that order, before the first step.

    The base classes of :mod:`bdcore.components` implement both methods from a
    ``train_state_attrs`` tuple of attribute names (generators, optimizers, schedulers,
    numbers, dicts of these; see :mod:`bdcore.state`). An object created lazily (an
    optimizer made on the first :meth:`~bdcore.components.VictimBase.after_step`) must be
    created in ``load_train_state_dict`` before the state is loaded into it.
    :class:`bdcore.testing.resume.ResumeContract` checks a victim or attack loss.
    """

    def train_state_dict(self) -> dict[str, Any]:
        """The training state, as tensors, numbers, strings, lists and dicts only (it is saved with
        ``torch.save`` and read back with ``torch.load(weights_only=True)``)."""
        ...

    def load_train_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`train_state_dict` returned, in place."""
        ...


@runtime_checkable
class FullPrecision(Protocol):
    """Optional attribute of a module: parts that must run in float32 under mixed precision
    (``[train] precision = "bf16"`` or ``"16-mixed"``).

    ``keep_fp32 = True`` on a module runs its ``forward`` in float32; on a victim or trigger,
    a tuple runs those submodules in float32: classes (subclasses included), class names
    such as ``"EntropyBottleneck"``, or dotted paths as in ``named_modules()``. Entropy models,
    DCT tables and statistics belong here: 8 bits of mantissa (bfloat16) do not resolve a
    likelihood or a transform coefficient. The engine switches autocast off around those
    calls and casts half-precision inputs to float32. For a plain function, decorate it with
    :func:`bdcore.precision.fp32`. Evaluation and metrics always run in float32.
    """

    keep_fp32: bool | tuple[str | type, ...]
