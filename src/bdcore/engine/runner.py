"""A run: data → [fit trigger] → clean victim → [poison + train] → [defend]* → evaluate → report.

Each stage that produces weights is stored in the :class:`StageStore` under a key
hashed from the spec parts it depends on; a later run that needs the same stage
loads it (and says so in the log). Training stages checkpoint into their
``.partial`` folder; ``resume=True`` continues from there.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from bdcore.context import Context, DefenseContext, FitContext, ItemsContext, Trainer, derive_seed
from bdcore.data.dataset import AugmentedDataset
from bdcore.data.images import to_tensor
from bdcore.data.loader import LoaderSettings, StepLoader, set_cache_budget, set_unreadable_log
from bdcore.engine import checks, keys
from bdcore.engine.evaluate import Evaluator, Row
from bdcore.engine.store import StageStore, prefix_state, split_state
from bdcore.engine.train import Checkpointer, train_loop
from bdcore.errors import BdcoreError, ComponentError, ContractError, DataError, RunError
from bdcore.io.atomic import append_line, write_text
from bdcore.io.checkpoint import extract_state_dict, load_weights
from bdcore.observe.bus import EventBus, Stage
from bdcore.observe.events import EvalRows, Images
from bdcore.observe.progress import run_bus
from bdcore.plugins import PluginHost
from bdcore.spec.model import TrainSettings
from bdcore.spec.structure import LoadedSpec, Resolved
from bdcore.state import preserved_rng, seed_everything
from bdcore.text import exception_text

log = logging.getLogger("bdcore")


@attrs.define
class RunResult:
    run_dir: Path
    rows: list[Row]
    reused: list[str]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f'run.device is "{name}" but CUDA is not available on this machine')
    if name.startswith("cuda:") and int(name.split(":")[1]) >= torch.cuda.device_count():
        raise RunError(f'run.device is "{name}" but this machine has {torch.cuda.device_count()} CUDA device(s)')
    if name == "mps" and not torch.backends.mps.is_available():
        raise RunError('run.device is "mps" but the MPS backend is not available on this machine')
    return name


def configure_backends(device: str, deterministic: bool) -> None:
    """cuDNN for ``[run] deterministic``: deterministic kernels (same numbers run to run) or the fastest
    ones (``cudnn.benchmark``); nothing to set on the CPU."""
    if not device.startswith("cuda"):
        return
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic


def _item_of(dataset: Any, index: int) -> int:
    f = getattr(dataset, "item_of", None)
    if f is not None:
        return int(f(index))
    loaders = getattr(dataset, "loaders", None)
    return index % len(loaders) if loaders is not None else index


def _num_items(dataset: Any) -> int:
    loaders = getattr(dataset, "loaders", None)
    return len(loaders) if loaders is not None else len(dataset)


class Runner:
    """Executes one loaded spec. Use :func:`bdcore.engine.run.run_spec_file` from code."""

    def __init__(
        self,
        loaded: LoadedSpec,
        host: PluginHost,
        *,
        out_root: Path,
        run_dir: Path,
        resume: bool = False,
        events: EventBus | None = None,
        store: StageStore | None = None,
    ) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.host = host
        self.out_root = out_root
        self.run_dir = run_dir
        self.resume = resume
        self.store = store if store is not None else StageStore(out_root / ".stages")
        self.device = resolve_device(self.spec.run.device)
        self.seed = self.spec.run.seed
        self.reused: list[str] = []
        self.events = events if events is not None else run_bus(run_dir, self.spec.run)
        self.rows: list[Row] = []
        self.keys: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self._clean_victim: Any = None
        self._fitting = False  # inside the trigger's fit(): an undeclared trigger may not build victims
        self.artifacts: dict[str, Any] = {}
        data = self.spec.data
        self.loader_settings = LoaderSettings.for_device(self.device, data.workers, data.prefetch)
        self.cache_bytes = data.cache_mb * 2**20

    # -- helpers -----------------------------------------------------------------
    def ctx(self, r: Resolved, **extra: Any) -> Context:
        return Context(
            seed=self.seed,
            device=self.device,
            spec_dir=self.loaded.file.parent.resolve(),
            work_dir=self.run_dir / "work",
            cache_dir=self.store.root.parent / ".cache",
            registry=self.host.registry,
            component=f"{r.kind}:{r.label}",
            events=self.events,
            **extra,
        )

    def build(self, r: Resolved, **extra: Any) -> Any:
        try:
            obj = r.component.build(r.params, self.ctx(r, **extra))
        except BdcoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - wrapped with provenance
            raise ComponentError(f"{checks.who(r)}: failed to build: {exception_text(exc)}") from exc
        if isinstance(obj, nn.Module):
            obj.to(self.device)
        return obj

    def part(self, r: Resolved | None) -> Any:
        return keys.part(r)

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Record the wall-clock seconds of a stage (``manifest.json``: ``stage_seconds``)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - t0, 4)

    def say(self, message: str) -> None:
        """A line for the console and ``run.log`` (through the event bus)."""
        self.events.message(message)

    def stage(self, name: str, total: int | None = None, *, unit: str = "step", description: str = "") -> Stage:
        """One of the engine's own stages (a top-level path: ``clean-victim``, ``defense/jpeg``)."""
        return self.events.stage(name, total, unit=unit, description=description, root=True)

    # -- stages ------------------------------------------------------------------
    def seed_stage(self, stage: str) -> None:
        """Seed every global random stream for ``stage``: a stage's numbers then depend on its own inputs,
        not on which earlier stages ran in this process and which were reused or resumed."""
        seed_everything(derive_seed(self.seed, "stage", stage))

    def step_loader(self, dataset: Any, batch_size: int, seed: int, stop: int | None = None) -> StepLoader:
        """The batches of training steps over ``dataset`` (``[data]`` workers, pinned memory on CUDA)."""
        return StepLoader(
            dataset,
            batch_size,
            seed=seed,
            device=self.device,
            stop=stop,
            settings=self.loader_settings,
            cache_bytes=self.cache_bytes,
        )

    def run(self) -> RunResult:
        t0 = time.perf_counter()
        torch.manual_seed(self.seed)
        configure_backends(self.device, self.spec.run.deterministic)
        self.say(f"run {self.loaded.name}: seed {self.seed}, device {self.device}, output {self.run_dir}")
        with self.timed("data"):
            with self.stage("data", unit="item", description=f"indexing {self.loaded.data.component.name}"):
                self.data()
            self.trigger = self.build_trigger()
            self.attack_obj = (
                self.build(self.loaded.attack, trigger=self.trigger, clean_victim=self.clean_victim)
                if self.loaded.attack
                else None
            )
        if (
            self.trigger is not None
            and getattr(self.trigger, "learnable", False)
            and self.spec.attack
            and self.spec.attack.fit_steps > 0
        ):
            with self.timed("trigger-fit"):
                self.fit_trigger()
        # An evasion attack trains nothing: the clean victim is the model under attack.
        evasion = getattr(self.attack_obj, "threat_model", None) == "evasion"
        need_clean = (
            self.spec.eval.clean_victim
            or self.spec.attack is None
            or self.spec.attack.from_clean
            or evasion
            or bool(getattr(self.attack_obj, "uses_clean_victim", False))  # its own stage, not inside the attack
        )
        with self.timed("clean-victim"):
            clean = self.clean_victim() if need_clean else None
        if evasion:
            self.say("attack: evasion (test-time trigger on the clean victim; no poisoning, no training)")
            attacked = clean
        else:
            with self.timed("attack"):
                attacked = self.attack() if self.attack_obj is not None else None
        with self.timed("evaluate"):
            self.evaluate(clean, attacked)
        unreadable = self.run_dir / "unreadable.txt"
        if unreadable.is_file():
            n = len(set(unreadable.read_text().splitlines()))
            self.say(f"data: {n} unreadable item(s) were replaced by the next readable one: see {unreadable}")
        self.say(f"finished in {time.perf_counter() - t0:.1f} s")
        return RunResult(self.run_dir, self.rows, self.reused)

    def data(self) -> None:
        r = self.loaded.data
        source = self.build(r, options={"verify": self.spec.data.verify})
        try:
            with checks.calling(checks.who(r), "splits()"):
                splits = source.splits()
        except ComponentError as exc:
            if isinstance(exc.__cause__, OSError):
                raise DataError(f"data: {exception_text(exc.__cause__)}") from exc.__cause__
            raise
        if "train" not in splits or "test" not in splits:
            raise ContractError(f'data source "{r.component.name}" must return "train" and "test" splits')
        self.train_set, self.test_set = splits["train"], splits["test"]
        for dataset in (self.train_set, self.test_set):
            set_cache_budget(dataset, self.cache_bytes)
            set_unreadable_log(dataset, self.run_dir / "unreadable.txt")
        if len(self.train_set) == 0 or len(self.test_set) == 0:
            raise DataError(f"data: empty split (train {len(self.train_set)}, test {len(self.test_set)} samples)")
        self.say(f"data: {len(self.train_set)} training and {len(self.test_set)} test samples")

    def build_trigger(self) -> Any:
        if self.loaded.trigger is None:
            return None
        trig = self.build(self.loaded.trigger, build_victim=self._trigger_victim)
        for attr in ("learnable", "needs_victim", "differentiable"):
            if not hasattr(trig, attr):
                raise ContractError(
                    f'trigger "{self.loaded.trigger.component.name}" lacks the capability flag {attr!r}'
                )
        return trig

    def _key(self, stage: str, **parts: Any) -> str:
        key = keys.key_of(self.loaded, stage, parts)
        self.keys[stage] = key
        return key

    def _victim_parts(self) -> dict[str, Any]:
        return keys.victim_parts(self.loaded)

    def fit_trigger(self) -> None:
        assert self.spec.attack is not None and self.loaded.trigger is not None  # noqa: S101 - guarded by caller
        parts = keys.trigger_fit_parts(
            self.loaded, needs_victim=self._declares_victim(), builds_victim=self._declares_builds()
        )
        key = self._key("trigger-fit", **parts)
        reuse = self.store.done("trigger-fit", key)
        description = (
            self._reused_text("trigger-fit", key)
            if reuse
            else f"fitting {self.loaded.trigger.component.name} for {self.spec.attack.fit_steps} steps"
        )
        with self.stage("trigger-fit", description=description) as stage:
            if reuse:
                tensors, _ = self.store.load("trigger-fit", key)
                self.trigger.load_state_dict(tensors)
                stage.reused()
                self.reused.append("trigger-fit")
                return
            self._fit_trigger(key, parts)

    def _fit_trigger(self, key: str, parts: dict[str, Any]) -> None:
        assert self.spec.attack is not None and self.loaded.trigger is not None  # noqa: S101 - guarded by caller
        fit_ctx = FitContext(
            ctx=self.ctx(self.loaded.trigger),
            train_set=self.train_set,
            batch_size=self.spec.attack.batch_size,
            steps=self.spec.attack.fit_steps,
            clean_victim=self.clean_victim if self._declares_victim() else self._undeclared_victim,
            build_victim=self._trigger_victim,
            trainer=Trainer(train=functools.partial(self.trainer_train, owner=checks.who(self.loaded.trigger))),
            checkpoint_dir=self.store.partial("trigger-fit", key),
            loader=self.loader_settings,
            poison_items=self.poison_items,
        )
        self.seed_stage("trigger-fit")
        self._fitting = True
        try:
            self.trigger.fit(fit_ctx)
        except BdcoreError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ComponentError(f"{checks.who(self.loaded.trigger)}: fitting failed: {exception_text(exc)}") from exc
        finally:
            self._fitting = False
        self.store.save("trigger-fit", key, dict(self.trigger.state_dict()), {"parts": parts})

    def _reuse(self, stage: str, key: str) -> None:
        self.reused.append(stage)
        self.say(f"stage {stage}: {self._reused_text(stage, key)}")

    def _reused_text(self, stage: str, key: str) -> str:
        return f"reused finished stage {self.store.path(stage, key)}"

    def fresh_victim(self) -> Any:
        torch.manual_seed(derive_seed(self.seed, "victim-init"))
        victim = self.build(self.loaded.victim)
        for name in ("predict", "clean_loss", "trainable_parameters"):
            if not callable(getattr(victim, name, None)):
                raise ContractError(f'victim "{self.loaded.victim.component.name}" has no {name}() method')
        return victim

    def _declares_victim(self) -> bool:
        return bool(getattr(self.trigger, "needs_victim", False))

    def _declares_builds(self) -> bool:
        return bool(getattr(self.trigger, "builds_victim", False))

    def _trigger_victim(self) -> Any:
        """``build_victim`` for the trigger (its ``ctx`` and its ``FitContext``): a fresh victim, except
        inside the fit of a trigger that declares neither ``builds_victim`` nor ``needs_victim`` (see
        :meth:`_undeclared_victim`); outside a fit (a reused fit's ``load_state_dict`` rebuilding a
        surrogate) it is always given."""
        if self._fitting and not (self._declares_builds() or self._declares_victim()):
            self._undeclared_victim("ctx.build_victim()", "builds_victim")
        return self.fresh_victim()

    def _undeclared_victim(self, call: str = "ctx.clean_victim()", flag: str = "needs_victim") -> Any:
        """``FitContext.clean_victim`` for a trigger that does not declare ``needs_victim`` (and
        ``build_victim`` during the fit for one that declares neither flag): its fit stage's key leaves
        the victim out, so a fit against the clean victim, or a surrogate of the victim's architecture,
        would be reused for another victim."""
        raise ContractError(
            f'trigger "{self.loaded.trigger.component.name if self.loaded.trigger else "?"}" calls '
            f"{call} in fit() but does not declare {flag} = True: its stored fit would be "
            "reused for any victim (the stage key leaves the victim out); declare it"
        )

    def clean_victim(self) -> Any:
        """The clean victim: loaded from ``[victim] weights`` or trained with its clean loss (cached).

        The caller's global random streams are left as they were (an attack loss may ask for the clean
        victim in the middle of its own stage)."""
        if self._clean_victim is not None:
            return self._clean_victim
        with preserved_rng():
            return self._make_clean_victim()

    def _make_clean_victim(self) -> Any:
        victim = self.fresh_victim()
        v = self.spec.victim
        if v.weights is not None:
            state = extract_state_dict(load_weights(v.weights, sha256=v.sha256, map_location=self.device))
            try:
                victim.load_state_dict(state)
            except RuntimeError as exc:
                raise DataError(
                    f"victim.weights: {v.weights} does not fit {self.loaded.victim.component.name}: {exc}"
                ) from exc
            self.say(f"stage clean-victim: loaded weights from {v.weights}")
        if self.spec.train.steps > 0:
            key = self._key("clean-victim", **self._victim_parts())
            steps = self.spec.train.steps
            reuse = self.store.done("clean-victim", key)
            description = (
                self._reused_text("clean-victim", key)
                if reuse
                else f"training {self.loaded.victim.component.name} for {steps} steps"
            )
            with self.stage("clean-victim", steps, description=description) as stage:
                if reuse:
                    tensors, meta = self.store.load("clean-victim", key)
                    self._load_victim(victim, tensors)
                    self.artifacts["clean_history"] = meta.get("history", [])
                    stage.reused()
                    self.reused.append("clean-victim")
                else:
                    if not self.resume:
                        self.store.discard_partial("clean-victim", key)
                    history = self._train_clean(victim, key, stage)
                    self.artifacts["clean_history"] = history
                    self.store.save("clean-victim", key, self._victim_tensors(victim), {"history": history})
        victim.eval()
        self._clean_victim = victim
        return victim

    def _victim_tensors(self, victim: Any, trigger: Any = None) -> dict[str, Any]:
        out = prefix_state(victim.state_dict(), "victim")
        if trigger is not None and isinstance(trigger, nn.Module):
            out.update(prefix_state(trigger.state_dict(), "trigger"))
        return out

    def _load_victim(self, victim: Any, tensors: dict[str, Any], trigger: Any = None) -> None:
        victim.load_state_dict(split_state(tensors, "victim"))
        if trigger is not None and isinstance(trigger, nn.Module):
            state = split_state(tensors, "trigger")
            if state:
                trigger.load_state_dict(state)

    def _train_clean(self, victim: Any, key: str, stage: Stage) -> list[dict[str, float]]:
        settings = self.spec.train
        seed = derive_seed(self.seed, "clean-train")
        source = checks.who(self.loaded.victim)

        def loss_fn(batch: dict[str, Any], step: int) -> Any:
            with checks.calling(source, "clean_loss()"):
                terms = victim.clean_loss(batch)
            return checks.loss_terms(terms, f"{source}: clean_loss()")

        self.seed_stage("clean-victim")
        with self.step_loader(self.train_set, settings.batch_size, seed, settings.steps) as batches:
            return train_loop(
                modules={"victim": victim},
                params=list(victim.trainable_parameters("clean")),
                settings=settings,
                steps=settings.steps,
                batch_fn=batches,
                loss_fn=loss_fn,
                after_step=getattr(victim, "after_step", None),
                checkpointer=Checkpointer(self.store.partial("clean-victim", key), self.spec.run.checkpoint_every),
                progress=stage.train_callback(),
                log_every=self.spec.run.log_every,
            )

    def trainer_train(
        self,
        victim: Any,
        batches: Iterator[dict[str, Any]] | Callable[[int], dict[str, Any]],
        steps: int,
        lr: float,
        loss_fn: Callable[[dict[str, Any]], Any] | None = None,
        params: list[nn.Parameter] | None = None,
        settings: TrainSettings | None = None,
        owner: str = "the engine's trainer",
    ) -> list[dict[str, float]]:
        """The engine's loop for fits and defenses (no checkpoints: they are short); ``owner``
        (the fitting trigger or the defense) is named when its loss is not a loss."""
        if callable(batches) and not hasattr(batches, "__next__"):
            batch_fn = batches
        else:
            it = iter(batches)  # type: ignore[arg-type]

            def batch_fn(step: int) -> dict[str, Any]:
                return next(it)

        fn = loss_fn or victim.clean_loss
        # nested under whatever called it: "trigger-fit/train", "defense/fine-pruning/train"
        with self.events.stage("train", steps) as stage:
            return train_loop(
                modules={"victim": victim} if isinstance(victim, nn.Module) else {},
                params=list(params if params is not None else victim.trainable_parameters("clean")),
                settings=settings or attrs.evolve(self.spec.train, lr=lr),
                steps=steps,
                batch_fn=batch_fn,  # type: ignore[arg-type]
                loss_fn=lambda batch, step: checks.loss_terms(fn(batch), f"{owner}: the training loss"),
                after_step=getattr(victim, "after_step", None),
                lr=lr,
                progress=stage.train_callback(),
                log_every=self.spec.run.log_every,
            )

    def poison_items(self) -> list[int]:
        """The fixed, seeded subset of training items the attacker poisons."""
        rate = self.spec.attack.poison_rate if self.spec.attack else 0.0
        n = _num_items(self.train_set)
        k = round(rate * n)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "poison-index"))
        return sorted(torch.randperm(n, generator=gen)[:k].tolist())

    def attack(self) -> Any:
        attack = self.spec.attack
        assert attack is not None and self.loaded.attack is not None  # noqa: S101 - guarded by caller
        threat = getattr(self.attack_obj, "threat_model", None)
        if threat not in ("data-poisoning", "training-controlled"):
            raise ContractError(f'attack loss "{self.loaded.attack.component.name}" has threat_model {threat!r}')
        parts = keys.attack_parts(self.loaded, trigger_fit_key=self.keys.get("trigger-fit"))
        key = self._key("attack", **parts)
        poison = self.poison_items()
        write_text(self.run_dir / "poison_index.json", json.dumps({"items": poison, "of": _num_items(self.train_set)}))
        victim = copy.deepcopy(self.clean_victim()) if attack.from_clean else self.fresh_victim()
        reuse = self.store.done("attack", key)
        description = (
            self._reused_text("attack", key)
            if reuse
            else f"{self.loaded.attack.component.name} ({threat}) with trigger "
            f"{self.loaded.trigger.component.name if self.loaded.trigger else 'none'} for {attack.steps} steps"
        )
        with self.stage("attack", attack.steps, description=description) as stage:
            if reuse:
                tensors, meta = self.store.load("attack", key)
                self._load_victim(victim, tensors, self.trigger)
                self.artifacts["attack_history"] = meta.get("history", [])
                stage.reused()
                self.reused.append("attack")
                victim.eval()
                return victim
            if not self.resume:
                self.store.discard_partial("attack", key)
            train_set = self._prepared_train_set(poison)
            history = self._train_attack(victim, key, set(poison), threat, stage, train_set)
            self.artifacts["attack_history"] = history
            self.store.save(
                "attack", key, self._victim_tensors(victim, self.trigger), {"history": history, "poison": poison}
            )
        victim.eval()
        return victim

    def _prepared_train_set(self, poison: list[int]) -> Any:
        """The training set the attack trains on: the run's, with the inputs the attack prepared once
        for its poisoned items (``prepare_items``) in place of their own, before crops and flips."""
        atk: Any = self.attack_obj
        prepare = getattr(atk, "prepare_items", None)
        if prepare is None or not poison:
            return self.train_set
        dataset = self.train_set
        device = self.device

        def fields(item: int) -> dict[str, Any]:
            if not isinstance(dataset, AugmentedDataset):
                raise ContractError(
                    f"{checks.who(self.loaded.attack)}: prepare_items() needs a dataset of items "
                    f"(bdcore.data.dataset.AugmentedDataset); the run's training set is a {type(dataset).__name__}"
                )
            raw = dataset.raw(item)
            return {
                k: to_tensor(v).to(device) if isinstance(v, np.ndarray) and v.ndim == 3 else v for k, v in raw.items()
            }

        augment = getattr(dataset, "augment", None)
        items = ItemsContext(
            ctx=getattr(atk, "ctx", None) or Context(seed=self.seed, device=device),
            items=sorted(poison),
            fields=fields,
            crop=getattr(augment, "crop", None),
            flip=bool(getattr(augment, "flip", False)),
        )
        with checks.calling(checks.who(self.loaded.attack), "prepare_items()"):
            prepared = prepare(items)

        def input_shape(item: int) -> tuple[int, ...]:  # C×H×W of the decoded H×W×C array, without converting it
            h, w, c = dataset.raw(item)["input"].shape  # type: ignore[union-attr]
            return (c, h, w)

        inputs = checks.prepared_inputs(prepared, set(poison), input_shape, attack=self.loaded.attack)
        if not inputs:
            return self.train_set
        assert isinstance(dataset, AugmentedDataset)  # noqa: S101 - fields() raised otherwise
        self.say(f"attack: {len(inputs)} poisoned items prepared by {checks.who(self.loaded.attack)}")
        return dataset.with_inputs({i: x.permute(1, 2, 0).to("cpu", torch.float32).numpy() for i, x in inputs.items()})

    def _train_attack(
        self, victim: Any, key: str, poison: set[int], threat: str, stage: Stage, train_set: Any = None
    ) -> list[dict[str, float]]:
        attack = self.spec.attack
        assert attack is not None  # noqa: S101
        seed = derive_seed(self.seed, "attack-train")
        atk: Any = self.attack_obj
        trig = self.trigger
        params = list(victim.trainable_parameters("attack"))
        modules: dict[str, nn.Module] = {"victim": victim}
        if getattr(atk, "trains_trigger", False) and isinstance(trig, nn.Module):
            params += [p for p in trig.parameters() if p.requires_grad]
            modules["trigger"] = trig
        extra_params = getattr(atk, "parameters", None)
        if callable(extra_params) and isinstance(atk, nn.Module):
            atk.to(self.device)
            params += [p for p in atk.parameters() if p.requires_grad]
            modules["attack"] = atk
        train_set = self.train_set if train_set is None else train_set
        item_of = train_set

        def poison_gen(step: int) -> torch.Generator:
            return torch.Generator(device="cpu").manual_seed(derive_seed(self.seed, "train-poison", step))

        after_step = getattr(victim, "after_step", None)
        victim_who, attack_who = checks.who(self.loaded.victim), checks.who(self.loaded.attack)

        def poisoned_of(batch: dict[str, Any], step: int) -> Any:
            with checks.calling(attack_who, "poison()"):
                p = atk.poison(batch, trig, generator=poison_gen(step))
            return checks.poisoned_batch(p, batch, trigger=self.loaded.trigger, attack=self.loaded.attack)

        if threat == "data-poisoning":
            poison_t = torch.tensor(sorted(poison), dtype=torch.int64)
            # The victim's auxiliary update (e.g. a GAN discriminator) must see the batch
            # the loss saw, poisoned pairs included, not the clean batch it came from.
            used: dict[str, dict[str, Any]] = {}

            def loss_fn(batch: dict[str, Any], step: int) -> Any:
                items = torch.tensor([_item_of(item_of, i) for i in batch["index"].tolist()], dtype=torch.int64)
                mask = torch.isin(items, poison_t).to(batch["input"].device)
                if bool(mask.any()):
                    sub = {
                        k: (v[mask] if isinstance(v, torch.Tensor) and v.shape[:1] == mask.shape else v)
                        for k, v in batch.items()
                    }
                    with torch.no_grad():
                        p = poisoned_of(sub, step)
                    attack_target = checks.attack_target(
                        p.get("attack_target"), sub["target"], attack=self.loaded.attack
                    )
                    batch = dict(batch)
                    batch["input"] = batch["input"].clone()
                    batch["input"][mask] = p["input"].to(batch["input"].dtype)
                    target = batch["target"].clone()
                    target[mask] = attack_target.to(target.dtype)
                    batch["target"] = target
                    batch["poisoned"] = mask
                used["batch"] = batch
                with checks.calling(victim_who, "clean_loss() on a poisoned batch"):
                    terms = victim.clean_loss(batch)
                return checks.loss_terms(terms, f"{victim_who}: clean_loss()")

            if after_step is not None:
                victim_after_step = after_step

                def after_poisoned_step(batch: dict[str, Any]) -> Any:  # noqa: ARG001
                    return victim_after_step(used.pop("batch"))

                after_step = after_poisoned_step
        else:

            def loss_fn(batch: dict[str, Any], step: int) -> Any:
                p = poisoned_of(batch, step)
                with checks.calling(attack_who, "attack_loss()"):
                    terms = atk.attack_loss(victim, batch, p)
                return checks.loss_terms(terms, f"{attack_who}: attack_loss()")

        self.seed_stage("attack")
        with self.step_loader(train_set, attack.batch_size, seed, attack.steps) as batches:
            return train_loop(
                modules=modules,
                params=params,
                settings=attack,
                steps=attack.steps,
                batch_fn=batches,
                loss_fn=loss_fn,
                after_step=after_step,
                checkpointer=Checkpointer(self.store.partial("attack", key), self.spec.run.checkpoint_every),
                progress=stage.train_callback(),
                log_every=self.spec.run.log_every,
                owners={"trigger": trig, "attack": atk},
            )

    # -- evaluation ----------------------------------------------------------------
    def evaluate(self, clean: Any, attacked: Any) -> None:
        self.seed_stage("evaluate")
        ev = Evaluator(
            test_set=self.test_set,
            batch_size=self.spec.eval.batch_size,
            limit=self.spec.eval.limit,
            device=self.device,
            seed=self.seed,
            metrics=self.loaded.metrics,
            metric_ctx=lambda r: self.ctx(
                r,
                trigger=self.trigger,
                options={"registered_name": r.component.name, "spec_path": r.path, "spec_file": str(self.loaded.file)},
            ),
            trigger=self.trigger,
            attack=self.attack_obj,
            grid=self.spec.eval.grid,
            victim_ref=self.loaded.victim,
            trigger_ref=self.loaded.trigger,
            attack_ref=self.loaded.attack,
            events=self.events,
            loader=self.loader_settings,
            cache_bytes=self.cache_bytes,
        )
        self.evaluator = ev
        target_model = attacked if attacked is not None else clean
        if getattr(self.trigger, "needs_victim", False) and hasattr(self.trigger, "bind_victim"):
            # e.g. PGD: test inputs are crafted against the model under attack, once; defenses
            # then see the same triggered inputs (the attacker does not know the defense)
            self.trigger.bind_victim(target_model)
        if clean is not None:
            ev.set_reference(clean)
        if self.spec.eval.stealth:
            self._emit(ev.stealth_rows())
        # the report's examples: each model's outputs on the same test samples (distinct source images)
        self.artifacts["test_set"] = ev.test_set_summary()
        grids: dict[str, Any] = self.artifacts.setdefault("grids", {})
        if clean is not None and self.spec.eval.clean_victim and attacked is not clean:
            rows, grid = ev.evaluate(clean, stage="clean-victim", collect_grid=True)
            self._emit(rows)
            grids["clean victim"] = grid
            self._emit_grid("clean victim", grid)
        if attacked is None:
            return
        rows, grid = ev.evaluate(attacked, stage="attacked", collect_grid=True)
        self._emit(rows)
        label = "attacked model" if attacked is not clean else "clean victim (under attack)"
        grids[label] = grid
        self._emit_grid(label, grid)
        self.artifacts["detections"] = {}
        for r in self.loaded.defenses:
            self.defend(r, attacked, ev)

    def _emit_grid(self, label: str, grid: Any) -> None:
        """The trackers' image grid of one model (``grid/attacked model``): its inputs and outputs."""
        if grid is not None and grid.columns:
            self.events.emit(Images(f"grid/{label}", dict(grid.columns)))

    def defend(self, r: Resolved, attacked: Any, ev: Evaluator) -> None:
        name = f"defense/{r.label}" + (f"@{r.setting}" if r.setting else "")
        description = f"{r.component.name}" + (f" ({r.setting})" if r.setting else "")
        with self.stage(name, description=description):
            self._defend(r, attacked, ev)

    def _defend(self, r: Resolved, attacked: Any, ev: Evaluator) -> None:
        label = r.label
        self.seed_stage(f"defense/{label}@{r.setting}")
        defense = self.build(r)
        stage = getattr(defense, "stage", None)
        if stage not in ("input", "model", "detection"):
            raise ContractError(f'defense "{r.component.name}" has stage {stage!r}; expected input, model or detection')
        dctx = DefenseContext(
            ctx=self.ctx(r, trigger=self.trigger),
            clean_train=self.train_set,
            batch_size=self.spec.attack.batch_size if self.spec.attack else self.spec.train.batch_size,
            trainer=Trainer(train=functools.partial(self.trainer_train, owner=checks.who(r))),
            build_victim=self.fresh_victim,
            test_clean_batches=lambda: iter(ev.batches()),
            test_poisoned_batches=lambda: iter(ev.poisoned() or []),
            trigger=self.trigger,
            attack=self.attack_obj,
            loader=self.loader_settings,
        )
        key = None
        victim = attacked
        if stage == "model":
            # the defended model: the attacked one, or the clean one under an evasion attack
            model_key = self.keys.get("attack") or self.keys.get("clean-victim")
            key = self._key("defense", **keys.defense_parts(model_key, r))
            if self.store.done("defense", key):
                victim = copy.deepcopy(attacked)
                tensors, meta = self.store.load("defense", key)
                self._load_victim(victim, tensors)
                self._reuse(f"defense {label}", key)
                outcome = None
                extra = meta.get("extra", {})
            else:
                outcome = self._call_defense(defense, copy.deepcopy(attacked), dctx, r)
                victim = outcome.victim if outcome.victim is not None else attacked
                extra = dict(outcome.extra)
                self.store.save("defense", key, self._victim_tensors(victim), {"extra": extra})
        else:
            outcome = self._call_defense(defense, attacked, dctx, r)
            extra = dict(outcome.extra)
            if outcome.victim is not None:
                victim = outcome.victim
        transform = outcome.transform if outcome is not None else None
        rows, _ = ev.evaluate(
            victim, stage="defended", defense=label, setting=r.setting, transform=transform, defense_ref=r
        )
        for name, value in sorted(extra.items()):
            rows.append(
                {
                    "stage": "defended",
                    "defense": label,
                    "setting": r.setting,
                    "split": None,
                    "metric": name,
                    "value": float(value),
                    "higher_is_better": None,
                }
            )
        if outcome is not None and outcome.detector is not None:
            det_rows, scores = ev.detection_rows(
                victim, outcome.detector, defense=label, setting=r.setting, defense_ref=r
            )
            rows += det_rows
            self.artifacts["detections"][f"{label}{'@' + r.setting if r.setting else ''}"] = scores
        self._emit(rows)

    def _call_defense(self, defense: Any, victim: Any, dctx: DefenseContext, r: Resolved) -> Any:
        with checks.calling(checks.who(r), "defend()"):
            outcome = defense.defend(victim, dctx)
        return checks.defense_outcome(outcome, r)

    def _emit(self, rows: list[Row]) -> None:
        context = {
            "run": self.loaded.name,
            "victim": self.loaded.victim.label,
            "trigger": self.loaded.trigger.label if self.loaded.trigger else None,
            "attack": self.loaded.attack.label if self.loaded.attack else None,
        }
        emitted = []
        for row in rows:
            full = {**row, **context}
            self.rows.append(full)
            emitted.append(full)
            append_line(self.run_dir / "results.partial.jsonl", json.dumps(full, sort_keys=True))
        if emitted:
            self.events.emit(EvalRows(tuple(emitted)))
