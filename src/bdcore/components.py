"""Torch base classes implementing :mod:`bdcore.protocols` with sensible defaults.

Plugins subclass these; the registered factory is usually the class itself
(``Cls(params, ctx)``). Pure functions sit underneath (kornia's function + module
pair): e.g. ``ftrojan(images, ...)`` is what tests and gradchecks use, the
registered :class:`TriggerBase` subclass is a thin stateful wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs
import torch
from torch import Tensor, nn

from bdcore.context import Context, DefenseContext, FitContext, ItemsContext
from bdcore.errors import ContractError
from bdcore.protocols import Batch, DefenseStage, Split, ThreatModel
from bdcore.state import TrainStateMixin

if TYPE_CHECKING:
    from bdcore.metrics.batch import EvalBatch


def as_strength(strength: float | Tensor | None, images: Tensor, default: float = 1.0) -> Tensor:
    """Broadcastable ``B×1×1×1`` strength tensor on the images' device and dtype."""
    if strength is None:
        strength = default
    # integer images (uint8 stamps) still take fractional strengths
    dtype = images.dtype if images.is_floating_point() else torch.get_default_dtype()
    s = torch.as_tensor(strength, dtype=dtype, device=images.device)
    if s.ndim == 0:
        return s.expand(images.shape[0]).view(-1, 1, 1, 1)
    if s.shape != (images.shape[0],):
        raise ContractError(f"strength must be a scalar or shape [{images.shape[0]}], got {list(s.shape)}")
    return s.view(-1, 1, 1, 1)


class TriggerBase(TrainStateMixin, nn.Module):
    """Base trigger: subclass and implement :meth:`apply` (strength already a ``B×1×1×1``).

    ``inject_trigger`` validates the input, calls :meth:`apply` and clamps to [0, 1].
    State that defines the trigger (a warping grid, a pattern, a secret) goes in
    buffers or parameters so it is saved with the stage artifact; state that only
    training changes (a generator it draws from) goes in ``train_state_attrs``
    (:class:`bdcore.protocols.Resumable`).
    """

    learnable: ClassVar[bool] = False
    needs_victim: ClassVar[bool] = False
    #: ``fit`` builds fresh victims of the run's architecture (``ctx.build_victim()``, e.g. a surrogate
    #: trained on the attacker's share) but never uses the clean victim: the fit stage's key includes the
    #: victim's component and weights, not its clean training, and the fit does not wait for it
    builds_victim: ClassVar[bool] = False
    differentiable: ClassVar[bool] = True
    #: ``apply`` already returns values in [0, 1] (e.g. it clamps in place, fused with its last op),
    #: so ``inject_trigger`` skips its own clamp: one full pass over the batch and one allocation less.
    output_in_range: ClassVar[bool] = False

    def __init__(self, params: Any = None, ctx: Context | None = None) -> None:
        super().__init__()
        self.params = params
        self.ctx = ctx or Context()

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # type: ignore[override]
        raise NotImplementedError

    def inject_trigger(
        self,
        images: Tensor,
        *,
        strength: float | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if images.ndim != 4:
            raise ContractError(f"{type(self).__name__}: images must be B×C×H×W, got {list(images.shape)}")
        s = as_strength(strength, images, getattr(self.params, "strength", 1.0))
        out = self.apply(images, s, generator)
        return out if self.output_in_range else out.clamp(0.0, 1.0)

    def forward(self, images: Tensor, strength: float | Tensor | None = None) -> Tensor:
        return self.inject_trigger(images, strength=strength)

    def fit(self, ctx: FitContext) -> None:  # noqa: ARG002 - default: nothing to fit
        return None

    def bind_victim(self, victim: Any) -> None:  # noqa: ARG002 - default: the trigger ignores the victim
        """Called with the model under attack before the test set is triggered, for triggers
        that declare ``needs_victim`` (e.g. PGD crafts its perturbation against it)."""
        return None


class VictimBase(TrainStateMixin, nn.Module):
    """Base victim. Subclass, set ``task``, build layers, implement :meth:`forward`.

    Defaults: ``predict`` = ``forward``; ``clean_loss`` = L1 between ``forward(input)``
    and ``target``; every parameter trains in both phases. A private optimizer (for
    :meth:`after_step`) is named in ``train_state_attrs`` so checkpoints keep it
    (:class:`bdcore.protocols.Resumable`); parts that must stay float32 under mixed
    precision are named in ``keep_fp32`` (:class:`bdcore.protocols.FullPrecision`).
    """

    task: ClassVar[str] = "image-to-image"

    def predict(self, inputs: Tensor) -> Tensor | Mapping[str, Tensor]:
        return self(inputs)  # type: ignore[no-any-return]

    def clean_loss(self, batch: Batch) -> dict[str, Tensor]:
        out = self(batch["input"])
        loss = torch.nn.functional.l1_loss(out, batch["target"])
        return {"loss": loss}

    def trainable_parameters(self, phase: Literal["clean", "attack"]) -> Iterable[nn.Parameter]:  # noqa: ARG002
        return [p for p in self.parameters() if p.requires_grad]

    def after_step(self, batch: Batch) -> dict[str, float | Tensor] | None:  # noqa: ARG002
        """Called after each optimizer step (an auxiliary update: a GAN
        discriminator, a codec's quantile aux loss), in float32. Returns numbers to log
        (0-dim tensors are fine and avoid a device sync per step)."""
        return None


class AttackLossBase(TrainStateMixin):
    """Base attack. Subclass and implement :meth:`attack_target`; training-controlled
    attacks also implement :meth:`attack_loss`.

    ``poison`` applies the trigger to every sample of the batch with the strength
    from :meth:`sample_strength` (the params' ``strength`` by default). Generators,
    counters or optimizers the attack advances while training go in
    ``train_state_attrs`` (:class:`bdcore.protocols.Resumable`).
    """

    threat_model: ClassVar[ThreatModel] = "data-poisoning"
    trains_trigger: ClassVar[bool] = False
    #: The loss calls ``ctx.clean_victim()`` while it trains (a surrogate, e.g. C-BAIQA's PGD): the engine
    #: then trains or loads the clean victim as its own stage before the attack, and a sweep plans it as
    #: a stage the cell shares. A class attribute, or a property when it depends on params.
    uses_clean_victim: ClassVar[bool] = False
    #: The attack's goal in words, for when ``attack_target`` is no image worth showing (BAvAFT's PSNR
    #: attack returns the codec's own input: its goal, a destroyed reconstruction, lives in the loss).
    #: The report then prints this text instead of an "attack target" image column. Leave it None when
    #: the target is an image that means something (AS-FIBA's degraded face): the report shows it, unless
    #: it equals the clean input or target. A class attribute or a property (it may depend on params).
    target_description: str | None = None

    def __init__(self, params: Any = None, ctx: Context | None = None) -> None:
        self.params = params
        self.ctx = ctx or Context()

    def sample_strength(self, batch: Batch, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        n = batch["input"].shape[0]
        s = float(getattr(self.params, "strength", 1.0))
        return torch.full((n,), s, dtype=batch["input"].dtype, device=batch["input"].device)

    def attack_target(self, batch: Batch, strength: Tensor) -> Any:
        raise NotImplementedError

    def poison(self, batch: Batch, trigger: Any, *, generator: torch.Generator | None = None) -> Batch:
        strength = self.sample_strength(batch, generator)
        poisoned = dict(batch)
        poisoned["clean_input"] = batch["input"]
        poisoned["input"] = trigger.inject_trigger(batch["input"], strength=strength, generator=generator)
        poisoned["strength"] = strength
        poisoned["attack_target"] = self.attack_target(batch, strength)
        return poisoned

    def attack_loss(self, victim: Any, clean: Batch, poisoned: Batch) -> Mapping[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} is a data-poisoning attack")

    def prepare_items(self, items: ItemsContext) -> Mapping[int, Tensor] | None:  # noqa: ARG002
        """Edit poisoned training items once, whole, before training: item → new ``C×H×W`` input in
        [0, 1] (the item's own shape), or None (the default: nothing to prepare).

        The engine calls it at the start of the attack stage and trains on the training set with these
        inputs in place of the items' own, *before* crops and flips; :meth:`poison` still runs on every
        batch (the trigger, the target). For perturbations an attack computes per image, once, as the
        official code of clean-label attacks does (C-BAIQA's PGD refinement): a per-batch refinement
        would redo the optimisation at every step on every crop. Only poisoned items may be returned;
        seed any randomness from ``items.ctx.generator(...)`` so a resumed run prepares the same inputs.
        """
        return None


@attrs.define
class DefenseOutcome:
    """The result of ``Defense.defend``.

    Attributes:
        victim: the defended model (model-level defenses), else None.
        transform: a batched input transform applied to every test input.
        detector: ``detector(victim, inputs) -> B`` scores, higher = more likely
            poisoned (detection defenses); the engine reports AUROC and the
            per-input statistic for clean and poisoned inputs.
        extra: numbers to report as they are (e.g. channels pruned).
    """

    victim: Any = None
    transform: Callable[[Tensor], Tensor] | None = None
    detector: Callable[[Any, Tensor], Tensor] | None = None
    extra: dict[str, float] = attrs.Factory(dict)


class DefenseBase:
    """Base defense. Subclass, set ``stage`` and implement :meth:`defend`."""

    stage: ClassVar[DefenseStage] = "input"

    def __init__(self, params: Any = None, ctx: Context | None = None) -> None:
        self.params = params
        self.ctx = ctx or Context()

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:
        raise NotImplementedError


class InputTransformDefense(DefenseBase):
    """An input-level defense: implement :meth:`transform` (batched, [0, 1] in and out)."""

    stage: ClassVar[DefenseStage] = "input"

    def transform(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:  # noqa: ARG002
        return DefenseOutcome(transform=self.transform)


class MetricBase:
    """Base streaming metric: implement :meth:`update` and :meth:`compute`.

    ``name`` is filled in by the engine from the registered name (or the spec's
    ``label``) and is the default key of the computed value. Override
    :meth:`grid_columns` to add images to the report's grid.
    """

    higher_is_better: ClassVar[bool | None] = True
    needs: ClassVar[frozenset[str]] = frozenset()
    splits: tuple[Split, ...] = ("clean", "poisoned")

    def __init__(self, params: Any = None, ctx: Context | None = None) -> None:
        self.params = params
        self.ctx = ctx or Context()
        self.name = ctx.component.split(":", 1)[-1] if ctx and ctx.component else type(self).__name__.lower()
        self.reset()

    def reset(self) -> None:
        return None

    def update(self, batch: Any) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def grid_columns(self, batch: EvalBatch, n: int) -> dict[str, Tensor]:  # noqa: ARG002 - default: none
        """Images this metric adds to the report's image grid (optional hook; default none).

        Called once per grid-collecting evaluation (the attacked model, or the clean victim
        of a run without attack), on the first test batch, for each split in ``splits``,
        after :meth:`update` saw that batch; under ``torch.no_grad()`` (use
        ``torch.enable_grad()`` locally for gradient-based maps).

        Args:
            batch: the evaluation batch of one split (all of it; only the first ``n``
                images are shown).
            n: how many images the grid shows (``[eval] grid``, at most the batch size).

        Returns:
            ``{column: images}``, each ``n×1×H×W`` (grey) or ``n×3×H×W`` (RGB) float
            in [0, 1]. The engine labels each column ``"<metric name>: <column>"``
            after its own columns; a label already taken gets `` [<split>]`` and then
            a counter appended (deterministic: engine columns, then the clean split's
            metrics in spec order, then the poisoned split's).
        """
        return {}


class MeanOverImages(MetricBase):
    """A metric that averages a per-image value: implement :meth:`per_image` (→ ``B``)."""

    def reset(self) -> None:
        self._sum = 0.0
        self._count = 0

    def per_image(self, batch: Any) -> Tensor:
        raise NotImplementedError

    def update(self, batch: Any) -> None:
        values = self.per_image(batch).detach().double()
        self._sum += float(values.sum())
        self._count += int(values.numel())

    def compute(self) -> dict[str, float]:
        return {self.name: self._sum / max(self._count, 1)}
