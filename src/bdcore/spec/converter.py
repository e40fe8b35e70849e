"""The cattrs converter for specs, and the translation of its errors into issues.

Settings: extra keys are forbidden everywhere; scalars are strict (no "0.1" → 0.1,
no true → 1; an int is accepted where a float is expected); paths expand ``~`` and
resolve relative to the spec file. attrs validators are run *after* structuring,
field by field, so every out-of-range value is reported, not just the first.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from bdcore.errors import Issue


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_describe(value)}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {_describe(value)}")
    return float(value)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_describe(value)}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_describe(value)}")
    return value


def make_converter(spec_dir: Path | None = None) -> cattrs.Converter:
    """A strict converter; relative paths resolve against ``spec_dir``."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)

    def _path(value: Any, _: type) -> Path:
        if not isinstance(value, str):
            raise TypeError(f"expected a path string, got {_describe(value)}")
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


def _clean_message(exc: BaseException) -> str:
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError):
        return "required key is missing"
    # attrs validators say "'name' must be > 0: -1"; say "must be > 0 (got -1)".
    m = re.match(r"^'[\w.]+' (must .*?): (.*)$", msg, re.S)
    if m:
        return f"{m.group(1)} (got {m.group(2)})"
    m = re.match(r"^'[\w.]+' (must .*)$", msg, re.S)
    if m:
        return m.group(1)
    if "not in" in msg and "Literal" in msg:
        return msg
    return msg


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
    raise ``ValueError`` (reported at ``path``) or return a list of issues.
    """
    issues: list[Issue] = []
    if attrs.has(type(obj)):
        for f in attrs.fields(type(obj)):
            value = getattr(obj, f.name)
            if f.validator is not None:
                try:
                    f.validator(obj, f, value)
                except (ValueError, TypeError) as exc:
                    issues.append(Issue(_join(path, f.name), _clean_message(exc)))
                    continue
            issues += validate_tree(value, _join(path, f.name))
        check = getattr(obj, "validate", None)
        if callable(check):
            try:
                extra = check()
            except ValueError as exc:
                issues.append(Issue(path, str(exc)))
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


__all__ = ["issues_from_exception", "make_converter", "structure", "validate_tree"]
