"""Contexts handed to components: what a factory, a fit stage or a defense may use."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from bdcore.data.loader import LoaderSettings
    from bdcore.observe.bus import EventBus, Stage
    from bdcore.protocols import AttackLoss, Batch, Trigger, Victim
    from bdcore.registry import Registry

log = logging.getLogger("bdcore")


def derive_seed(seed: int, *salt: object) -> int:
    """A 63-bit seed derived from ``seed`` and any labels (stable across runs and OSes)."""
    text = "/".join([str(seed), *map(str, salt)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@attrs.define
class Context:
    """Given to every ``factory(params, ctx)``.

    Attributes:
        seed: the run's seed; derive component seeds with :meth:`generator`.
        device: the torch device string (``"cpu"``, ``"cuda"``...).
        spec_dir: folder of the spec file; relative paths in params resolve here.
        work_dir: a folder this component may write (stage artifacts live elsewhere).
        cache_dir: a folder shared by every run under the same output root, for a
            component's own content-keyed caches (e.g. a fitted diffusion prior that
            several defenses and later runs reuse); None outside the engine.
        registry: the component registry, to build sub-components.
        component: ``"kind:name"`` of the component being built (for messages).
        trigger: for attack losses, the run's trigger (so a loss can call it twice,
            e.g. AS-FIBA's pseudo-trigger).
        clean_victim: for attack losses, a callable returning the run's clean victim
            (trained or loaded on first call, then cached): the attacker's surrogate, e.g.
            for C-BAIQA's adversarial refinement of the poisoned images.
        build_victim: for triggers, a callable returning a fresh, untrained victim of the run's
            architecture (e.g. to rebuild a surrogate model whose weights a reused stage restores).
        options: free-form values the engine passes (image size, channels...; a
            metric gets ``registered_name``, ``spec_file`` and ``spec_path``, its table
            in the spec such as ``"metric[1]"``, for messages that name a spec key).
        events: the run's event bus (None outside the engine); use :meth:`log` and
            :meth:`progress` rather than this.
    """

    seed: int = 0
    device: str = "cpu"
    spec_dir: Path = attrs.Factory(Path.cwd)
    work_dir: Path | None = None
    cache_dir: Path | None = None
    registry: Registry | None = None
    component: str = ""
    trigger: Trigger | None = None
    clean_victim: Callable[[], Victim] | None = None
    build_victim: Callable[[], Victim] | None = None
    options: dict[str, Any] = attrs.Factory(dict)
    events: EventBus | None = None

    def generator(self, *salt: object, device: str | None = None) -> torch.Generator:
        """A ``torch.Generator`` seeded from the run seed, the component and ``salt``."""
        import torch

        gen = torch.Generator(device=device or "cpu")
        gen.manual_seed(derive_seed(self.seed, self.component, *salt))
        return gen

    def resolve_path(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.spec_dir / p).resolve()

    def log(self, message: str) -> None:
        """Say something: the console and ``run.log`` show ``[component] message``."""
        text = f"[{self.component or 'bdcore'}] {message}"
        if self.events is None:
            log.info("%s", text)
        else:
            self.events.message(text)

    def progress(self, label: str, total: int | None = None, *, unit: str = "step") -> Stage:
        """Report the progress of a long loop (a trigger fit, a purification pass, a search).

        The engine shows it like its own stages: a bar on a terminal, plain lines in CI logs
        and ``run.log``; scalars passed to ``update`` are read every ``[run] log_every`` steps,
        shown and sent to the trackers, tagged ``<enclosing stage>/<label>/<name>``::

            with ctx.progress("sf-i-net fit", total=steps) as bar:
                for step in range(steps):
                    ...
                    bar.update(step + 1, loss=loss.detach())  # a tensor is read only when logged

        Outside the engine (unit tests) it reports to nobody.
        """
        from bdcore.observe.bus import Stage

        return Stage(self.events, label, total, unit, "")

    def build(self, kind: str, name: str, params: Any = None) -> Any:
        """Build another registered component (default params when ``params`` is None)."""
        from bdcore.spec.structure import structure_params

        if self.registry is None:
            raise RuntimeError("this context has no registry")
        comp = self.registry.get(kind, name)  # type: ignore[arg-type]
        if params is None or isinstance(params, dict):
            params = structure_params(comp, params or {}, path=f"{kind}:{name}", file="<code>")
        sub = attrs.evolve(self, component=f"{kind}:{name}")
        return comp.build(params, sub)


@attrs.define
class Trainer:
    """Runs the engine's training loop on a victim; handed to fits and defenses.

    ``train(victim, loader, steps, lr, loss_fn=None)`` trains with the victim's clean
    loss (or ``loss_fn(batch) -> dict``) and returns per-step mean losses.
    """

    train: Callable[..., Any]


@attrs.define
class FitContext:
    """Given to ``Trigger.fit``: the run's data and, lazily, the clean victim.

    ``loader``: the run's loader settings (``[data] workers``...), used by :meth:`batches`.
    ``poison_items``: the training items (indices into the training set's items) the attack will
    poison, e.g. the attacker's own share of the data a surrogate is trained on (BAIQA's partial split);
    the fit stage's key includes ``[attack] poison_rate``, so a different share refits.
    """

    ctx: Context
    train_set: Dataset[Any]
    batch_size: int
    steps: int
    clean_victim: Callable[[], Victim]
    build_victim: Callable[[], Victim]
    trainer: Trainer
    checkpoint_dir: Path
    loader: LoaderSettings | None = None
    poison_items: Callable[[], list[int]] | None = None

    def progress(self, label: str, total: int | None = None, *, unit: str = "step") -> Stage:
        """The fit's progress: :meth:`Context.progress` (``trigger-fit/<label>``)."""
        return self.ctx.progress(label, total, unit=unit)

    def batches(self, *, generator_salt: object = "fit", shuffle: bool = True) -> Iterator[Batch]:
        """Endless shuffled batches of the training set (seeded, on the run device, decoded by the
        run's loader workers): batch ``k`` is :func:`bdcore.data.loading.batch_at` step ``k``."""
        from bdcore.data.loader import StepLoader

        seed = derive_seed(self.ctx.seed, "fit", generator_salt)
        loader = StepLoader(
            self.train_set, self.batch_size, seed=seed, device=self.ctx.device, shuffle=shuffle, settings=self.loader
        )
        return iter(loader)


@attrs.define
class ItemsContext:
    """Given to ``AttackLossBase.prepare_items``: the poisoned training items, whole (before crops/flips).

    ``items``: the poisoned item indices (sorted; indices into the training set's items).
    ``fields(item)``: the item's decoded fields, image fields as ``C×H×W`` float32 tensors in [0, 1] on
    the run device, other fields (a score, a split mark) as they are.
    ``crop`` / ``flip``: the training crop side (None: whole images) and whether training flips, for an
    attack that optimises over the views training will see (C-BAIQA's EOT crops).
    """

    ctx: Context
    items: list[int]
    fields: Callable[[int], dict[str, Any]]
    crop: int | None = None
    flip: bool = False

    def progress(self, label: str, total: int | None = None, *, unit: str = "item") -> Stage:
        """The preparation's progress: :meth:`Context.progress` (``attack/<label>``)."""
        return self.ctx.progress(label, total, unit=unit)


@attrs.define
class DefenseContext:
    """Given to ``Defense.defend``: the defender's clean data and helpers.

    Attributes:
        clean_train: clean training samples the defender holds.
        test_clean_batches / test_poisoned_batches: callables yielding evaluation
            batches (for detection defenses and for curves).
        trigger, attack: the run's trigger and attack (some defenses are
            evaluated against a known trigger; never used by the defense itself
            unless documented).
        trainer: the engine's training loop, for fine-tuning.
        build_victim: a fresh victim of the same architecture.
        loader: the run's loader settings (``[data] workers``...), used by :meth:`batches`.
    """

    ctx: Context
    clean_train: Dataset[Any]
    batch_size: int
    trainer: Trainer
    build_victim: Callable[[], Victim]
    test_clean_batches: Callable[[], Iterator[Batch]]
    test_poisoned_batches: Callable[[], Iterator[Batch]]
    trigger: Trigger | None = None
    attack: AttackLoss | None = None
    loader: LoaderSettings | None = None

    def progress(self, label: str, total: int | None = None, *, unit: str = "step") -> Stage:
        """The defense's progress: :meth:`Context.progress` (``defense/<label>/<this label>``)."""
        return self.ctx.progress(label, total, unit=unit)

    def batches(self, *, salt: object = "defense", dataset: Dataset[Any] | None = None) -> Iterator[Batch]:
        """Endless seeded batches of ``dataset`` (default: :attr:`clean_train`; e.g. a subset of it) on the
        run device, through the run's loader workers; batch ``k`` is :func:`bdcore.data.loading.batch_at` step ``k``."""
        from bdcore.data.loader import StepLoader

        loader = StepLoader(
            self.clean_train if dataset is None else dataset,
            self.batch_size,
            seed=derive_seed(self.ctx.seed, "defense", salt),
            device=self.ctx.device,
            settings=self.loader,
        )
        return iter(loader)
