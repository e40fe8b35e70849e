"""The cattrs converter for specs, and the translation of its errors into issues.

Settings: extra keys are forbidden everywhere; scalars are strict (no "0.1" → 0.1,
no true → 1; an int is accepted where a float is expected); numbers must be finite and
integers fit in 64 bits; an array is required where an array belongs (a string is never
split into characters) and a table where a table belongs; paths expand ``~`` and
resolve relative to the spec file. attrs validators are run *after* structuring,
field by field, so every out-of-range value is reported, not just the first. Every message
says what the key expects and what it got, in our words (no library reprs).
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
import types
import typing
from collections import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
    StructureHandlerNotFoundError,
)
from cattrs.gen import make_dict_structure_fn

from bdcore.errors import Issue
from bdcore.text import exception_text, one_line, shorten

#: Integers must fit in a signed 64-bit integer: what torch tensors, torch/numpy generators and
#: the index arithmetic of the engine hold. Larger ones pass TOML and crash or hang the run later.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

_SEQUENCE_ORIGINS = (tuple, list, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet)
_MAPPING_ORIGINS = (dict, abc.Mapping, abc.MutableMapping)


def _describe(value: Any) -> str:
    """What the user wrote, in words (``the string "abc"``, ``the integer 5``, ``an array of 3 items``)."""
    if isinstance(value, str):
        return f'the string "{shorten(value)}"'
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        digits = str(abs(value))
        return f"the integer {value}" if len(digits) <= 40 else f"an integer with {len(digits)} digits"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        n = len(value)
        return f"an array of {n} item{'s' if n != 1 else ''}" if n else "an empty array"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return f"the date/time {value.isoformat()}"
    return f"a {type(value).__name__}"


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_describe(value)}")
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"expected an integer that fits in 64 bits (-2^63 to 2^63-1), got {_describe(value)}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {_describe(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise ValueError(f"expected a finite number, got {_describe(value)}") from None
    if not math.isfinite(out):
        raise ValueError(f"expected a finite number, got {value!r}")
    return out


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_describe(value)}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_describe(value)}")
    return value


def _homogeneous(tp: Any) -> bool:
    """``list[T]``, ``set[T]``, ``tuple[T, ...]`` (any length) rather than ``tuple[A, B]`` (fixed)."""
    args = typing.get_args(tp)
    if (typing.get_origin(tp) or tp) is not tuple:
        return True
    return not args or (len(args) == 2 and args[1] is Ellipsis)


def _literal_text(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else repr(value)


def expected(tp: Any, plural: bool = False) -> str:
    """A type in words, as messages say it (``a string``, ``an array of strings``, ``one of "a", "b"``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        if plural:
            kinds = {type(a) for a in args}
            word = expected(kinds.pop(), plural=True) if len(kinds) == 1 else "values"
            return f"{word} ({' or '.join(_literal_text(a) for a in args)})"
        return "one of " + ", ".join(_literal_text(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(expected(a, plural) for a in args if a is not type(None))
    if origin in _SEQUENCE_ORIGINS or tp in (tuple, list):
        if _homogeneous(tp):
            inner = args[0] if args else Any
            return f"{'arrays' if plural else 'an array'} of {expected(inner, plural=True)}"
        if len(set(args)) == 1:
            return f"{'arrays' if plural else 'an array'} of {len(args)} {expected(args[0], plural=True)}"
        return f"{'arrays' if plural else 'an array'} [{', '.join(expected(a) for a in args)}]"
    if origin in _MAPPING_ORIGINS or tp is dict or attrs.has(tp):
        return "tables" if plural else "a table"
    words = {int: "integer", float: "number", str: "string", bool: "boolean", Path: "path"}
    if tp in words:
        word = words[tp]
        return f"{word}s" if plural else f"an {word}" if word[0] in "aeiou" else f"a {word}"
    return "values" if plural else "a value"


def _literal_hook(value: Any, tp: Any) -> Any:
    for option in typing.get_args(tp):
        # strict: true is not 1, 1 is not 1.0
        if type(value) is type(option) and value == option:
            return option
    raise ValueError(f"expected {expected(tp)}, got {_describe(value)}")


def _sequence_hook_factory(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Arrays: a string (or anything else) where an array belongs is one message, never split into
    characters; a fixed-length tuple gets a length check in words; items are structured one by one
    so each bad item is reported at ``key[i]``."""
    origin, args = typing.get_origin(tp) or tp, typing.get_args(tp)
    homogeneous = _homogeneous(tp)
    item_types = None if homogeneous else args
    item_type = (args[0] if args else Any) if homogeneous else None
    make: Callable[[list[Any]], Any] = {
        tuple: tuple,
        list: list,
        set: set,
        frozenset: frozenset,
        abc.Set: frozenset,
        abc.MutableSet: set,
        abc.MutableSequence: list,
    }.get(origin, tuple)

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected {expected(tp)}, got {_describe(value)}")
        if item_types is not None and len(value) != len(item_types):
            raise ValueError(f"expected {expected(tp)}, got {_describe(value)}")
        out, errors = [], []
        for i, item in enumerate(value):
            t: Any = item_type if item_types is None else item_types[i]
            try:
                out.append(item if t in (Any, object) else conv.structure(item, t))
            except Exception as exc:  # noqa: BLE001 - collected, reported per item
                exc.__notes__ = [*getattr(exc, "__notes__", []), IterableValidationNote(f"item {i}", i, t)]
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"while structuring {tp!r}", errors, tp)
        return make(out)

    return hook


def _mapping_hook_factory(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    args = typing.get_args(tp)
    value_type = args[1] if len(args) == 2 else Any

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected a table, got {_describe(value)}")
        if value_type in (Any, object):
            return dict(value)
        out, errors = {}, []
        for key, item in value.items():
            try:
                out[key] = conv.structure(item, value_type)
            except Exception as exc:  # noqa: BLE001 - collected, reported per key
                exc.__notes__ = [*getattr(exc, "__notes__", []), IterableValidationNote(f"key {key}", key, value_type)]
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"while structuring {tp!r}", errors, tp)
        return out

    return hook


def _attrs_hook_factory(cls: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """A table where an attrs class belongs; anything else is one message (a component given as a
    bare name gets the inline-table form as a hint)."""
    inner = make_dict_structure_fn(cls, conv)
    names = {f.name for f in attrs.fields(cls)}

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            hint = f' (write {{ use = "{shorten(value, 40)}" }})' if isinstance(value, str) and "use" in names else ""
            raise TypeError(f"expected a table, got {_describe(value)}{hint}")
        return inner(value, cls)

    return hook


def _is_sequence(tp: Any) -> bool:
    return tp in (tuple, list) or typing.get_origin(tp) in _SEQUENCE_ORIGINS


def _is_mapping(tp: Any) -> bool:
    return tp is dict or typing.get_origin(tp) in _MAPPING_ORIGINS


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is typing.Literal


def make_converter(spec_dir: Path | None = None) -> cattrs.Converter:
    """A strict converter; relative paths resolve against ``spec_dir``."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook_func(_is_literal, _literal_hook)
    conv.register_structure_hook_factory(_is_sequence, _sequence_hook_factory)
    conv.register_structure_hook_factory(_is_mapping, _mapping_hook_factory)
    conv.register_structure_hook_factory(attrs.has, _attrs_hook_factory)

    def _path(value: Any, _: type) -> Path:
        if not isinstance(value, str):
            raise TypeError(f"expected a path string, got {_describe(value)}")
        if "\x00" in value or not value:
            raise ValueError(f"expected a path, got {_describe(value)}")
        p = Path(value).expanduser()
        if not p.is_absolute() and spec_dir is not None:
            p = (spec_dir / p).resolve()
        return p

    conv.register_structure_hook(Path, _path)
    conv.register_unstructure_hook(Path, str)
    _accept_names(conv)
    return conv


def _accept_names(conv: cattrs.Converter) -> None:
    """``[run] observers`` entries may be a bare name: ``"tensorboard"`` means ``{ use = "tensorboard" }``."""
    from cattrs.gen import make_dict_structure_fn

    from bdcore.spec.model import ObserverRef

    as_table = make_dict_structure_fn(ObserverRef, conv)

    def _observer(value: Any, _: type) -> ObserverRef:
        if isinstance(value, str):
            return ObserverRef(use=value)
        if not isinstance(value, dict):
            raise TypeError(f'expected a name or a table {{ use = "...", params = {{ ... }} }}, got {_describe(value)}')
        return as_table(value, ObserverRef)

    conv.register_structure_hook(ObserverRef, _observer)


# attrs' own validator messages, rewritten as "what the key expects (what it got)".
_ATTRS_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    # v.gt / v.ge / v.lt / v.le: "'name' must be > 0: -1"
    (re.compile(r"^'[^']*' (must be [<>=!]+ .*?): (.*)$", re.S), r"\1 (got \2)"),
    # v.in_: "'name' must be in [1, 3] (got 2)"
    (re.compile(r"^'[^']*' must be in (.*) \(got (.*)\)$", re.S), r"expected one of \1 (got \2)"),
    # v.min_len / v.max_len: "Length of 'values' must be >= 1: 0"
    (re.compile(r"^Length of '[^']*' must be ([<>=]+ \d+): (\d+)$", re.S), r"needs a length \1 (got \2)"),
    # v.matches_re: "'name' must match regex '...' ('x' doesn't)"
    (re.compile(r"^'[^']*' must match regex (.*) \((.*) doesn't\)$", re.S), r"must match the pattern \1 (got \2)"),
    # v.instance_of: "'name' must be <class 'int'> (got 'x' that is a <class 'str'>)."
    (
        re.compile(r"^'[^']*' must be <class '(\w+)'> \(got (.*) that is a <class '(\w+)'>\)\.?$", re.S),
        r"expected a \1 (got \2, a \3)",
    ),
    # any other "'name' must ...": drop the quoted name (the key is already in the path)
    (re.compile(r"^'[\w.]+' (must .*)$", re.S), r"\1"),
)


def _clean_message(exc: BaseException) -> str:
    """One line in our wording: what the key expects and what it got, never a library repr."""
    if isinstance(exc, KeyError):
        return "required key is missing"
    # attrs validators raise ValueError(message, Attribute(...), ...): str() of that is a tuple repr
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    msg = one_line(first) or type(exc).__name__
    for pattern, repl in _ATTRS_MESSAGES:
        if pattern.match(msg):
            return pattern.sub(repl, msg)
    if isinstance(exc, StructureHandlerNotFoundError):
        return "this value cannot be given in a spec (the component's params declare an unsupported type)"
    if isinstance(exc, ValueError | TypeError):
        return msg
    return f"invalid value ({exception_text(exc)})"


def _validator_message(exc: BaseException) -> str:
    """A validator's ``ValueError``/``TypeError`` in our words; anything else is a bug in it, still
    reported at the key."""
    if isinstance(exc, ValueError | TypeError):
        return _clean_message(exc)
    return f"invalid value ({exception_text(exc)})"


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def issues_from_exception(exc: BaseException, path: str) -> list[Issue]:
    """Flatten a cattrs structuring error into issues with dotted TOML paths."""
    out: list[Issue] = []
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for extra in sorted(exc.extra_fields):
            close = difflib.get_close_matches(extra, known, n=1, cutoff=0.6)
            hint = f'did you mean "{close[0]}"?' if close else (f"known keys: {', '.join(known)}" if known else None)
            out.append(Issue(_join(path, extra), "unknown key", hint))
        return out
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            key: Any = getattr(note, "name", None)
            if key is None:
                key = getattr(note, "index", "?")
            out += issues_from_exception(sub, _join(path, key))
        for sub in without:
            out += issues_from_exception(sub, path)
        return out
    if isinstance(exc, ExceptionGroup):
        for sub in exc.exceptions:
            out += issues_from_exception(sub, path)
        return out
    return [Issue(path, _clean_message(exc))]


def validate_tree(obj: Any, path: str) -> list[Issue]:
    """Run every attrs validator of ``obj`` (recursively) and collect the failures.

    Also calls an optional ``validate()`` method for cross-field checks; it may
    raise ``ValueError`` (reported at ``path``) or return a list of issues. A validator that
    raises anything else is reported at its key too (never a traceback).
    """
    issues: list[Issue] = []
    if attrs.has(type(obj)):
        for f in attrs.fields(type(obj)):
            value = getattr(obj, f.name)
            if f.validator is not None:
                try:
                    f.validator(obj, f, value)
                except Exception as exc:  # noqa: BLE001 - a plugin's validator may raise anything
                    issues.append(Issue(_join(path, f.name), _validator_message(exc)))
                    continue
            issues += validate_tree(value, _join(path, f.name))
        check = getattr(obj, "validate", None)
        if callable(check):
            try:
                extra = check()
            except Exception as exc:  # noqa: BLE001 - reported at the table's key
                issues.append(Issue(path, _validator_message(exc)))
            else:
                if extra:
                    issues += list(extra)
    elif isinstance(obj, tuple | list):
        for i, item in enumerate(obj):
            issues += validate_tree(item, _join(path, i))
    return issues


def structure(conv: cattrs.Converter, data: Any, cls: type, path: str) -> tuple[Any, list[Issue]]:
    """Structure ``data`` into ``cls`` with validators off, then validate every field."""
    with _validators_disabled():
        try:
            obj: Any = conv.structure(data, cls)
        except Exception as exc:  # noqa: BLE001 - every structuring error becomes issues
            return None, issues_from_exception(exc, path)
    return obj, validate_tree(obj, path)


class _validators_disabled:
    def __enter__(self) -> None:
        self.was = attrs.validators.get_disabled()
        attrs.validators.set_disabled(True)

    def __exit__(self, *exc: object) -> None:
        attrs.validators.set_disabled(self.was)


#: Public name of the value describer (``the string "abc"``) for other spec modules.
describe_value = _describe

__all__ = ["describe_value", "expected", "issues_from_exception", "make_converter", "structure", "validate_tree"]
