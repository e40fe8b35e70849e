"""Every installed component's params refuse hostile values in one message naming the key.

With every plugin installed, each params field of each registered component gets the values that
used to slip through: a string where an array belongs (split into characters before), ``nan``
where a number belongs, an integer beyond 64 bits, a value outside a ``Literal``. Each must be one
problem at ``<path>.params.<field>`` in bdcore's words; none may raise.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs
import pytest

from bdcore.errors import SpecError
from bdcore.plugins import load_plugins
from bdcore.registry import Component
from bdcore.spec.structure import structure_params


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return tp


def _hostile(tp: Any) -> tuple[Any, str] | None:
    """A value the field must refuse, and the start of the message."""
    tp = _unwrap(tp)
    origin = typing.get_origin(tp) or tp
    if origin in (tuple, list, set, frozenset):
        return "abc", "expected an array of "
    if typing.get_origin(tp) is typing.Literal:
        return "__not-a-choice__", "expected one of "
    if tp is float:
        return float("nan"), "expected a finite number, got nan"
    if tp is int:
        return 2**64, "expected an integer that fits in 64 bits"
    return None


def _cases() -> list[tuple[Component, str, Any, str]]:
    host = load_plugins()
    out = []
    for comp in host.registry:
        hints = typing.get_type_hints(comp.params)
        for field in attrs.fields(comp.params):
            hostile = _hostile(hints.get(field.name, field.type))
            if hostile is not None:
                out.append((comp, field.name, *hostile))
    return out


CASES = _cases()


def test_the_plugins_are_installed() -> None:
    names = {c.provenance.distribution for c, *_ in CASES}
    assert len(names) >= 2, names  # bdcore and at least one plugin


@pytest.mark.parametrize(
    ("comp", "name", "value", "message"), CASES, ids=[f"{c.kind}:{c.name}.{n}" for c, n, *_ in CASES]
)
def test_hostile_values_are_one_message_at_the_key(comp: Component, name: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        structure_params(comp, {name: value}, path="x.params", file="spec.toml")
    at_key = [i for i in info.value.issues if i.path == f"x.params.{name}"]
    assert len(at_key) == 1, info.value.render()
    assert at_key[0].message.startswith(message), at_key[0].message
