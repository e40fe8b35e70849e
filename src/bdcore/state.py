"""Training state beyond ``state_dict()``: what a checkpoint needs for an exact resume.

A module's ``state_dict()`` holds its parameters and buffers. Training also changes state that
lives elsewhere: the global random streams (torch CPU and CUDA, NumPy, Python), and whatever a
component keeps privately — an optimizer of its own (a codec's auxiliary quantile optimizer, a GAN
discriminator's), a learning-rate scheduler, a ``torch.Generator`` or ``random.Random`` it draws
from at every step, a step counter. A run resumed without that state does not continue the run that
was killed; it starts a slightly different one.

Components declare such state through the :class:`bdcore.protocols.Resumable` protocol
(``train_state_dict()`` / ``load_train_state_dict(state)``). The base classes of
:mod:`bdcore.components` implement it from a list of attribute names (``train_state_attrs``),
packed by type with :func:`pack_value` and restored in place by :func:`restore_value`.

Everything packed here loads with ``torch.load(weights_only=True)``: tensors, numbers, strings,
lists, tuples and dicts only.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

#: Key marking a packed value's kind.
KIND = "__state__"


def seed_everything(seed: int) -> None:
    """Seed the global random streams: torch (CPU and every CUDA device), NumPy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_states() -> dict[str, Any]:
    """The global random streams' states (restore them with :func:`set_rng_states`)."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": random.getstate(),
    }


def set_rng_states(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_states` returned (CUDA states only where the devices exist)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    if "numpy" in state:
        n = state["numpy"]
        np.random.set_state(
            {
                "bit_generator": n["bit_generator"],
                "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                "has_gauss": n["has_gauss"],
                "gauss": n["gauss"],
            }
        )
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the block without disturbing the caller's global random streams (restored afterwards)."""
    saved = rng_states()
    try:
        yield
    finally:
        set_rng_states(saved)


def pack_value(value: Any) -> Any:
    """A savable form of one piece of training state.

    Generators (``torch.Generator``, ``random.Random``, ``numpy.random.Generator``), objects with
    ``state_dict``/``load_state_dict`` (optimizers, schedulers, ``GradScaler``), components with
    ``train_state_dict``, and dicts, lists and tuples of these are packed; tensors, numbers, strings
    and None are kept as they are.

    Raises:
        TypeError: a value of another kind (an ``nn.Module`` belongs in ``state_dict()``).
    """
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if isinstance(value, torch.Generator):
        return {KIND: "torch.Generator", "value": value.get_state()}
    if isinstance(value, random.Random):
        return {KIND: "random.Random", "value": value.getstate()}
    if isinstance(value, np.random.Generator):
        return {KIND: "numpy.Generator", "value": value.bit_generator.state}
    if isinstance(value, nn.Module):
        raise TypeError(f"{type(value).__name__} is a module: its state belongs in state_dict(), not train state")
    if callable(getattr(value, "train_state_dict", None)):
        return {KIND: "component", "value": value.train_state_dict()}
    if callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None)):
        return {KIND: "state_dict", "value": value.state_dict()}
    if isinstance(value, Mapping):
        return {KIND: "dict", "value": {str(k): pack_value(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {KIND: type(value).__name__, "value": [pack_value(v) for v in value]}
    raise TypeError(f"cannot save training state of type {type(value).__name__}")


def restore_value(current: Any, packed: Any, name: str = "value") -> Any:
    """Restore ``packed`` (from :func:`pack_value`) into ``current`` where it is stateful (a generator,
    an optimizer: restored in place) and return the value to store.

    Raises:
        ValueError: ``packed`` needs an existing object (an optimizer, a component) and ``current`` is None
            (create it before loading, e.g. in an overridden ``load_train_state_dict``).
    """
    if not (isinstance(packed, dict) and KIND in packed):
        return packed
    kind, value = packed[KIND], packed["value"]
    if kind == "torch.Generator":
        gen = current if isinstance(current, torch.Generator) else torch.Generator()
        gen.set_state(value)
        return gen
    if kind == "random.Random":
        rng = current if isinstance(current, random.Random) else random.Random()  # noqa: S311 - not for secrets
        version, internal, gauss = value
        rng.setstate((version, tuple(internal), gauss))
        return rng
    if kind == "numpy.Generator":
        nrng = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        nrng.bit_generator.state = value
        return nrng
    if kind in ("component", "state_dict"):
        if current is None:
            raise ValueError(
                f"{name}: the checkpoint holds its state but the object does not exist yet; create it before "
                "loading (override load_train_state_dict)"
            )
        (current.load_train_state_dict if kind == "component" else current.load_state_dict)(value)
        return current
    if kind == "dict":
        base = current if isinstance(current, Mapping) else {}
        restored = {k: restore_value(base.get(k), v, f"{name}[{k!r}]") for k, v in value.items()}
        if isinstance(current, dict):
            current.update(restored)
            return current
        return restored
    if kind in ("list", "tuple"):
        base_seq = (
            list(current) if isinstance(current, list | tuple) and len(current) == len(value) else [None] * len(value)
        )
        items = [restore_value(c, v, f"{name}[{i}]") for i, (c, v) in enumerate(zip(base_seq, value, strict=True))]
        return tuple(items) if kind == "tuple" else items
    raise ValueError(f"{name}: unknown kind of saved training state {kind!r}")


class TrainStateMixin:
    """``train_state_dict``/``load_train_state_dict`` from the attribute names in ``train_state_attrs``.

    Example: a victim with its own discriminator optimizer, created on first use::

        class Pix2Pix(VictimBase):
            train_state_attrs = ("_d_opt",)

            def load_train_state_dict(self, state):
                if state.get("_d_opt") is not None:
                    self.discriminator_optimizer()  # create it, then load into it
                super().load_train_state_dict(state)
    """

    #: names of attributes that training changes and that are not parameters or buffers.
    train_state_attrs: ClassVar[tuple[str, ...]] = ()

    def train_state_dict(self) -> dict[str, Any]:
        """The state of every attribute in ``train_state_attrs`` (see :func:`pack_value`)."""
        return {name: pack_value(getattr(self, name, None)) for name in self.train_state_attrs}

    def load_train_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`train_state_dict` returned (generators and optimizers in place)."""
        for name, packed in state.items():
            setattr(self, name, restore_value(getattr(self, name, None), packed, name))


def untracked_random_streams(obj: Any) -> list[str]:
    """Attributes holding a random stream (``torch.Generator``, ``random.Random``, ``numpy`` ``Generator``)
    that ``train_state_attrs`` does not list, on ``obj`` and (for modules) every submodule, as
    ``"Class.attribute"``. Training draws from such a stream, so a resumed run would draw differently:
    a component must list it (or not keep one)."""
    owners = list(obj.modules()) if isinstance(obj, torch.nn.Module) else [obj]
    out: list[str] = []
    for owner in owners:
        listed = set(getattr(type(owner), "train_state_attrs", ()))
        for name, value in vars(owner).items():
            if isinstance(value, torch.Generator | random.Random | np.random.Generator) and name not in listed:
                out.append(f"{type(owner).__name__}.{name}")
    return out


def owned_states(owners: Mapping[str, Any]) -> dict[str, Any]:
    """``train_state_dict()`` of every owner and, for modules, of every submodule that has one
    (keys ``"<owner>"`` and ``"<owner>.<submodule path>"``)."""
    out: dict[str, Any] = {}
    for key, obj, fn in _stateful(owners):
        out[key] = fn(obj)
    return out


def load_owned_states(owners: Mapping[str, Any], states: Mapping[str, Any]) -> list[str]:
    """Restore :func:`owned_states`; returns the keys this run has but the checkpoint lacks."""
    missing = []
    for key, obj, _ in _stateful(owners):
        if key in states:
            obj.load_train_state_dict(states[key])
        else:
            missing.append(key)
    return missing


def _stateful(owners: Mapping[str, Any]) -> Iterable[tuple[str, Any, Any]]:
    seen: set[int] = set()
    for name, owner in owners.items():
        if owner is None:
            continue
        members: Iterable[tuple[str, Any]] = owner.named_modules() if isinstance(owner, nn.Module) else [("", owner)]
        for sub, obj in members:
            fn = getattr(type(obj), "train_state_dict", None)
            if fn is None or id(obj) in seen or not callable(getattr(obj, "load_train_state_dict", None)):
                continue
            seen.add(id(obj))
            yield (f"{name}.{sub}" if sub else name), obj, fn
