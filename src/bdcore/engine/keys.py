"""Stage keys: what each stored stage depends on, computed from the spec alone.

The runner calls these when it trains or loads a stage, and the sweep planner
(:mod:`bdcore.sweep.plan`) calls them to tell, before anything is trained, which cells
of a grid share a stage. One implementation for both, so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

import attrs

from bdcore._version import __version__
from bdcore.engine.store import stage_key
from bdcore.spec.structure import LoadedSpec, Resolved


def part(r: Resolved | None) -> Any:
    """A component's share of a key: its name, structured params and providing distribution."""
    if r is None:
        return None
    return {"use": r.component.name, "params": r.params, "dist": str(r.component.provenance)}


def key_of(loaded: LoadedSpec, stage: str, parts: dict[str, Any]) -> str:
    """The key of ``stage``: ``parts`` plus what every stage depends on (bdcore, seed, data)."""
    base = {"bdcore": __version__, "seed": loaded.spec.run.seed, "data": part(loaded.data)}
    return stage_key({"stage": stage, **base, **parts})


def victim_architecture_parts(loaded: LoadedSpec) -> dict[str, Any]:
    """A fresh victim of the run (``build_victim``): its component and the weights it starts from, not
    the clean training."""
    v = loaded.spec.victim
    return {"victim": part(loaded.victim), "weights": str(v.weights) if v.weights else None, "sha256": v.sha256}


def victim_parts(loaded: LoadedSpec) -> dict[str, Any]:
    """The clean victim: its component, the weights it starts from and its clean training."""
    return {**victim_architecture_parts(loaded), "train": loaded.spec.train}


def trigger_fit_parts(loaded: LoadedSpec, *, needs_victim: bool, builds_victim: bool = False) -> dict[str, Any]:
    """The trigger's fit stage (learnable triggers with ``attack.fit_steps > 0``): with the clean victim
    for a trigger that ``needs_victim``, with the victim's architecture for one that ``builds_victim``."""
    attack = loaded.spec.attack
    assert attack is not None  # noqa: S101 - only called for specs with an attack
    parts: dict[str, Any] = {
        "trigger": part(loaded.trigger),
        "fit_steps": attack.fit_steps,
        "batch_size": attack.batch_size,
        "poison_rate": attack.poison_rate,  # FitContext.poison_items: the attacker's share refits
    }
    if needs_victim:
        parts["victim"] = victim_parts(loaded)
    elif builds_victim:
        parts["victim_architecture"] = victim_architecture_parts(loaded)
    return parts


def attack_parts(loaded: LoadedSpec, *, trigger_fit_key: str | None) -> dict[str, Any]:
    """The attack stage: the victim, trigger, loss and every ``[attack]`` setting (and the fitted trigger)."""
    attack = loaded.spec.attack
    assert attack is not None  # noqa: S101 - only called for specs with an attack
    settings = {
        f.name: getattr(attack, f.name) for f in attrs.fields(type(attack)) if f.name not in ("trigger", "loss")
    }
    parts = {
        **victim_parts(loaded),
        "trigger": part(loaded.trigger),
        "loss": part(loaded.attack),
        "attack": settings,
    }
    if attack.fit_steps > 0 and trigger_fit_key is not None:
        parts["trigger_fit"] = trigger_fit_key
    return parts


def defense_parts(model_key: str | None, defense: Resolved) -> dict[str, Any]:
    """A model-stage defense: the model it starts from (attack or clean-victim key) and its params."""
    return {"attack": model_key, "defense": part(defense)}
