"""Every component output the engine receives, checked at one place.

The runner, the evaluator and the training loops call these before they use what a trigger, an
attack loss, a victim, a defense or a metric returned. A wrong output is a
:class:`~bdcore.errors.ContractError` naming the spec key, the component, its plugin (provenance)
and what was expected, instead of a torch error deep inside the next component. A component
that raises is a :class:`~bdcore.errors.ComponentError` with the same names (:func:`calling`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from bdcore.errors import BdcoreError, ComponentError, ContractError
from bdcore.spec.structure import Resolved
from bdcore.text import exception_text


def who(r: Resolved | None, fallback: str = "a component") -> str:
    """``attack.trigger: trigger "toy-patch" (bd-plugin-x 1.0)``: the key, the component, its plugin."""
    if r is None:
        return fallback
    return f'{r.path}: {r.kind.replace("_", " ")} "{r.component.name}" ({r.component.provenance})'


def _got(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {list(value.shape)} ({str(value.dtype).removeprefix('torch.')})"
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"


@contextlib.contextmanager
def calling(component: str, action: str) -> Iterator[None]:
    """Report an exception raised inside a component as a :class:`ComponentError` naming it.

    ``component`` is :func:`who`'s text, ``action`` what it was asked (``"predict()"``)."""
    try:
        yield
    except BdcoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - wrapped with the component's provenance
        raise ComponentError(f"{component}: {action} failed: {exception_text(exc)}") from exc


def poisoned_batch(
    poisoned: Any, clean: Mapping[str, Any], *, trigger: Resolved | None, attack: Resolved | None
) -> Mapping[str, Any]:
    """What ``attack.poison(batch, trigger)`` returned: a dict whose ``input`` is a floating tensor
    of the clean input's shape (the trigger's output)."""
    source = f"{who(trigger, 'the trigger')}, applied by {who(attack, 'the attack loss')}"
    if not isinstance(poisoned, Mapping):
        raise ContractError(f"{source}: poison() must return a dict with 'input', got {_got(poisoned)}")
    images, expected = poisoned.get("input"), clean["input"]
    if not isinstance(images, Tensor):
        raise ContractError(f"{source}: the poisoned 'input' must be a tensor, got {_got(images)}")
    if images.shape != expected.shape:
        raise ContractError(
            f"{source}: returned images of shape {list(images.shape)}; "
            f"expected {list(expected.shape)} (the shape of the clean input)"
        )
    if not images.is_floating_point():
        raise ContractError(f"{source}: returned images of dtype {images.dtype}; expected a floating-point tensor")
    return poisoned


def prepared_inputs(
    prepared: Any, poisoned: set[int], shape_of: Callable[[int], tuple[int, ...]], *, attack: Resolved | None
) -> dict[int, Tensor]:
    """What ``attack.prepare_items(items)`` returned: None or a mapping from poisoned items to finite
    ``C×H×W`` float tensors in [0, 1] of each item's input shape (``shape_of(item)``)."""
    source = f"{who(attack, 'the attack loss')}: prepare_items()"
    if prepared is None:
        return {}
    if not isinstance(prepared, Mapping):
        raise ContractError(f"{source} must return None or a dict item -> input, got {_got(prepared)}")
    out: dict[int, Tensor] = {}
    for item, image in prepared.items():
        if not isinstance(item, int) or item not in poisoned:
            raise ContractError(f"{source} returned an input for item {item!r}, which is not a poisoned item")
        if not isinstance(image, Tensor) or not image.is_floating_point():
            raise ContractError(f"{source}: item {item}: expected a floating-point tensor, got {_got(image)}")
        expected = shape_of(item)
        if tuple(image.shape) != tuple(expected):
            raise ContractError(
                f"{source}: item {item}: an input of shape {list(image.shape)}; expected {list(expected)} "
                "(the item's own, before crops)"
            )
        if not bool(torch.isfinite(image).all()) or float(image.min()) < -1e-6 or float(image.max()) > 1 + 1e-6:
            raise ContractError(f"{source}: item {item}: the input must be finite and in [0, 1]")
        out[item] = image.detach().clamp(0.0, 1.0)
    return out


def attack_target(target: Any, clean_target: Tensor, *, attack: Resolved | None) -> Tensor:
    """A data-poisoning attack's ``attack_target``: a tensor that can replace the clean target."""
    source = who(attack, "the attack loss")
    if not isinstance(target, Tensor):
        raise ContractError(f"{source}: poison() must return an 'attack_target' tensor, got {_got(target)}")
    try:
        fits = torch.broadcast_shapes(target.shape, clean_target.shape) == clean_target.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ContractError(
            f"{source}: returned an attack_target of shape {list(target.shape)}; "
            f"expected {list(clean_target.shape)} (the shape of the clean target)"
        )
    return target


def prediction(pred: Any, batch_size: int, source: str) -> tuple[Tensor, dict[str, Tensor]]:
    """A victim's ``predict`` result as (main output, extras): a tensor, or a dict with ``output``;
    the output has one row per input."""
    if isinstance(pred, Tensor):
        output, extras = pred, {}
    elif isinstance(pred, Mapping) and "output" in pred:
        output, extras = pred["output"], {k: v for k, v in pred.items() if k != "output"}
    else:
        raise ContractError(f"{source}: predict() must return a tensor or a dict with 'output', got {_got(pred)}")
    if not isinstance(output, Tensor) or output.ndim == 0 or output.shape[0] != batch_size:
        raise ContractError(
            f"{source}: predict() must return one output per input (a tensor with first dimension "
            f"{batch_size}), got {_got(output)}"
        )
    return output, extras


def loss_terms(terms: Any, source: str) -> Mapping[str, Any]:
    """A training loss: a dict with a scalar floating tensor ``loss`` (what is minimised)."""
    loss = terms.get("loss") if isinstance(terms, Mapping) else None
    if not isinstance(loss, Tensor) or loss.ndim != 0 or not loss.is_floating_point():
        got = _got(loss) if isinstance(terms, Mapping) and "loss" in terms else _got(terms)
        raise ContractError(f"{source}: the loss must be a dict with a scalar tensor 'loss', got {got}")
    return terms  # type: ignore[no-any-return]


def defense_outcome(outcome: Any, r: Resolved) -> Any:
    """``Defense.defend``'s result: a :class:`~bdcore.components.DefenseOutcome` (or alike)."""
    missing = [a for a in ("victim", "transform", "detector", "extra") if not hasattr(outcome, a)]
    if missing:
        raise ContractError(f"{who(r)}: defend() must return a DefenseOutcome, got {_got(outcome)}")
    if outcome.transform is not None and not callable(outcome.transform):
        raise ContractError(f"{who(r)}: DefenseOutcome.transform must be callable, got {_got(outcome.transform)}")
    if outcome.detector is not None and not callable(outcome.detector):
        raise ContractError(f"{who(r)}: DefenseOutcome.detector must be callable, got {_got(outcome.detector)}")
    if outcome.victim is not None and not callable(getattr(outcome.victim, "predict", None)):
        raise ContractError(
            f"{who(r)}: DefenseOutcome.victim must be a victim with predict(), got {_got(outcome.victim)}"
        )
    numbers_of(outcome.extra, f"{who(r)}: DefenseOutcome.extra")
    return outcome


def transformed(images: Any, inputs: Tensor, r: Resolved | None) -> Tensor:
    """An input-level defense's transform output: images of the input's shape."""
    if not isinstance(images, Tensor) or images.shape != inputs.shape:
        raise ContractError(
            f"{who(r, 'the defense')}: transform() must return images of the input's shape "
            f"{list(inputs.shape)}, got {_got(images)}"
        )
    return images


def detector_scores(scores: Any, batch_size: int, r: Resolved | None) -> Tensor:
    """A detection defense's scores: one number per input."""
    if not isinstance(scores, Tensor) or scores.numel() != batch_size:
        raise ContractError(
            f"{who(r, 'the defense')}: the detector must return one score per input ({batch_size}), got {_got(scores)}"
        )
    return scores


def numbers_of(values: Any, source: str) -> dict[str, float]:
    """A dict of named real numbers (a metric's ``compute()``, a defense's ``extra``)."""
    if not isinstance(values, Mapping):
        raise ContractError(f"{source}: must be a dict of numbers, got {_got(values)}")
    out = {}
    for name, value in values.items():
        if not isinstance(name, str):
            raise ContractError(f"{source}: the key {name!r} must be a string, got {_got(name)}")
        # numbers of any library (a float, a numpy scalar, a one-element tensor), never text
        number = None if isinstance(value, str | bytes) or not hasattr(value, "__float__") else value
        try:
            out[name] = float(number)  # type: ignore[arg-type]
        except (TypeError, ValueError, RuntimeError):
            raise ContractError(f"{source}: {name!r} must be a number, got {_got(value)}") from None
    return out


def metric_values(values: Any, r: Resolved) -> dict[str, float]:
    """A metric's ``compute()``: a dict of numbers."""
    return numbers_of(values, f"{who(r)}: compute()")


__all__ = [
    "attack_target",
    "calling",
    "defense_outcome",
    "detector_scores",
    "loss_terms",
    "metric_values",
    "numbers_of",
    "poisoned_batch",
    "prediction",
    "transformed",
    "who",
]
