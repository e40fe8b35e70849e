"""Which stages each cell computes, by stage key, before anything is trained.

The keys come from :mod:`bdcore.engine.keys`, the functions the runner itself calls, and the
choice of stages follows :meth:`bdcore.engine.runner.Runner.run`. Cells with equal keys share one
artifact of the stage store; the number of distinct keys not yet in the store is the number of
trainings the grid really needs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import attrs

from bdcore.context import Context
from bdcore.engine import keys as stage_keys
from bdcore.spec.structure import LoadedSpec, Resolved

#: (stage, key): ``stage`` is ``trigger-fit``, ``clean-victim``, ``attack`` or ``defense``.
StageRef = tuple[str, str]


@attrs.frozen
class CellPlan:
    """The stages one cell computes (or loads), in the order the runner reaches them.

    ``stages`` maps a label (``clean-victim``, ``attack``, ``defense fine-pruning (rate=0.5)``) to
    its stage and key.
    """

    cell: str
    stages: dict[str, StageRef]


@attrs.frozen
class Plan:
    """Stage keys of every cell and what they share.

    Attributes:
        cells: one :class:`CellPlan` per cell, in grid order.
        users: every distinct stage → the cells that need it (first = the one that computes it).
        done: the stages already finished in the store (loaded, not trained).
    """

    cells: tuple[CellPlan, ...]
    users: dict[StageRef, tuple[str, ...]]
    done: frozenset[StageRef] = frozenset()

    @property
    def computations(self) -> int:
        """Stage computations if every cell trained its own stages."""
        return sum(len(c.stages) for c in self.cells)

    @property
    def trainings(self) -> int:
        """Trainings the grid really needs: distinct stages not yet in the store."""
        return sum(1 for s in self.users if s not in self.done)

    @property
    def shared(self) -> dict[StageRef, tuple[str, ...]]:
        """The stages two or more cells need."""
        return {s: c for s, c in self.users.items() if len(c) > 1}

    def leaders(self, cell: str) -> dict[StageRef, str]:
        """The stages ``cell`` shares with an earlier cell → that cell (which computes it)."""
        plan = next(c for c in self.cells if c.cell == cell)
        return {s: self.users[s][0] for s in plan.stages.values() if self.users[s][0] != cell}

    def to_json(self) -> dict[str, Any]:
        return {
            "cells": len(self.cells),
            "stage_computations": self.computations,
            "distinct_stages": len(self.users),
            "already_in_store": len([s for s in self.users if s in self.done]),
            "trainings_needed": self.trainings,
            "shared": [{"stage": s, "key": k, "cells": list(cells)} for (s, k), cells in self.shared.items()],
        }


def capability(r: Resolved, name: str, default: Any, build: Callable[[Resolved], Any]) -> Any:
    """A component's class-level flag (``learnable``, ``threat_model``, ``stage``...) without
    building it when its factory is a class that declares it; else read from a built instance."""
    factory = r.component.load_factory()
    if isinstance(factory, type) and hasattr(factory, name):
        declared = inspect.getattr_static(factory, name)
        if not isinstance(declared, property | functools.cached_property):  # a property depends on params
            return getattr(factory, name)
    return getattr(build(r), name, default)


def cell_stages(loaded: LoadedSpec, build: Callable[[Resolved], Any] | None = None) -> dict[str, StageRef]:
    """The stages a run of ``loaded`` trains or loads, with their keys (see :class:`CellPlan`).

    Mirrors :meth:`bdcore.engine.runner.Runner.run`: a fitted trigger (learnable, ``fit_steps > 0``),
    the clean victim (when evaluated, fine-tuned from, attacked at test time, fitted against or used by
    the attack loss, and only if ``[train] steps > 0``), the attack (not for evasion), and each model-stage defense.
    """
    build = build or _builder(loaded)
    spec = loaded.spec
    attack = spec.attack
    out: dict[str, StageRef] = {}
    trigger, loss = loaded.trigger, loaded.attack
    evasion = loss is not None and capability(loss, "threat_model", None, build) == "evasion"
    fit = (
        attack is not None
        and trigger is not None
        and attack.fit_steps > 0
        and bool(capability(trigger, "learnable", False, build))
    )
    needs_victim = bool(trigger is not None and capability(trigger, "needs_victim", False, build))
    fit_key = None
    if fit:
        builds = bool(trigger is not None and capability(trigger, "builds_victim", False, build))
        parts = stage_keys.trigger_fit_parts(loaded, needs_victim=needs_victim, builds_victim=builds)
        fit_key = stage_keys.key_of(loaded, "trigger-fit", parts)
    uses_clean = loss is not None and bool(capability(loss, "uses_clean_victim", False, build))
    need_clean = (
        spec.eval.clean_victim or attack is None or attack.from_clean or evasion or (fit and needs_victim) or uses_clean
    )
    clean_key = None
    if need_clean and spec.train.steps > 0:
        clean_key = stage_keys.key_of(loaded, "clean-victim", stage_keys.victim_parts(loaded))
    if fit_key is not None:
        out["trigger-fit"] = ("trigger-fit", fit_key)
    if clean_key is not None:
        out["clean-victim"] = ("clean-victim", clean_key)
    attack_key = None
    if attack is not None and not evasion:
        attack_key = stage_keys.key_of(loaded, "attack", stage_keys.attack_parts(loaded, trigger_fit_key=fit_key))
        out["attack"] = ("attack", attack_key)
    if attack is not None:  # defenses run on the attacked model (the clean one under an evasion attack)
        model_key = attack_key or clean_key
        for d in loaded.defenses:
            if capability(d, "stage", None, build) == "model":
                key = stage_keys.key_of(loaded, "defense", stage_keys.defense_parts(model_key, d))
                label = f"defense {d.label}" + (f" ({d.setting})" if d.setting else "")
                out[label] = ("defense", key)
    return out


def _builder(loaded: LoadedSpec) -> Callable[[Resolved], Any]:
    """Build a component with a bare context, only to read a flag its class does not declare."""

    def build(r: Resolved) -> Any:
        ctx = Context(
            seed=loaded.spec.run.seed,
            device="cpu",
            spec_dir=loaded.file.parent.resolve(),
            component=f"{r.kind}:{r.label}",
        )
        return r.component.build(r.params, ctx)

    return build


def make_plan(cells: list[tuple[str, LoadedSpec]], done: Callable[[str, str], bool] | None = None) -> Plan:
    """The plan of a grid: ``cells`` as ``(name, loaded spec)`` in order; ``done(stage, key)`` says
    whether the store already holds a stage."""
    plans: list[CellPlan] = []
    users: dict[StageRef, list[str]] = {}
    for name, loaded in cells:
        stages = cell_stages(loaded)
        plans.append(CellPlan(name, stages))
        for ref in stages.values():
            users.setdefault(ref, []).append(name)
    finished = frozenset(ref for ref in users if done is not None and done(*ref))
    return Plan(tuple(plans), {k: tuple(v) for k, v in users.items()}, finished)
