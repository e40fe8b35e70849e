"""The ``[sweep]`` table → cells.

A cell is one run of the spec with some values changed, written as the ``KEY=VALUE`` overrides
``bdcore run --set`` takes (so ``bdcore run SPEC --set ...`` with a cell's overrides reproduces
it exactly). Cells are the product of the axes (the axes of a ``zip`` group move together),
repeated once per seed, minus the ``exclude`` matches; each is named ``name=label,...,seed=N``
from its values, in the order the axes are written.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from bdcore.errors import Issue
from bdcore.spec.overrides import split_key

#: Fields of a sweep's results that ``[sweep.table] rows/columns`` may name besides the axes.
RESULT_FIELDS = ("model", "split", "metric")
#: Keys an axis may not set: the sweep sets them itself.
RESERVED = ("run.seed", "run.name", "sweep")
#: Names an axis may not take: columns of a sweep's results.
RESERVED_NAMES = ("seed", "cell", "config", "value", *RESULT_FIELDS)

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@attrs.frozen
class Axis:
    """One axis: the dotted key it sets, its short ``name`` (results column), values and labels.

    ``labels`` are for tables and figures, ``slugs`` (the labels restricted to
    ``[A-Za-z0-9._+-]``) for cell names.
    """

    key: str
    name: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]
    slugs: tuple[str, ...]


@attrs.frozen
class Cell:
    """One run of the grid.

    Attributes:
        name: ``loss=bavaft-psnr,quality=50,seed=0`` (``base`` for a grid without axes or seeds).
        config: the name without its seed: the cells averaged together.
        seed: the cell's ``run.seed`` (None when the sweep declares no ``seeds``).
        labels: axis name → the label of this cell's value.
        values: axis name → this cell's value.
        overrides: ``KEY=VALUE`` strings applied to the spec, axes first, then ``run.seed`` and ``run.name``.
    """

    name: str
    config: str
    seed: int | None
    labels: dict[str, str]
    values: dict[str, Any]
    overrides: tuple[str, ...]


@attrs.frozen
class Grid:
    """The cells of a sweep; ``follows`` maps the name of each axis that moves with another (the
    second and later axes of a ``zip`` group) to that group's first axis."""

    axes: tuple[Axis, ...]
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...]
    excluded: int = 0
    follows: dict[str, str] = attrs.Factory(dict)

    def axis(self, ref: str) -> Axis | None:
        """The axis named ``ref`` (its dotted key or its short name)."""
        return _resolve(self.axes, ref)


# -- TOML values as override text ---------------------------------------------------------------


def toml_inline(value: Any) -> str:
    """``value`` as inline TOML (what :func:`bdcore.spec.overrides.parse_value` reads back).

    Strings are always quoted, so ``"5"`` stays a string; tables become inline tables.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = ", ".join(f"{_toml_key(k)} = {toml_inline(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(f"not a TOML value: {type(value).__name__}")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


# -- names and labels ---------------------------------------------------------------------------


def slug(text: str) -> str:
    """``text`` restricted to ``[A-Za-z0-9._+-]`` (runs of other characters become ``-``)."""
    return _SAFE.sub("-", text).strip("-") or "x"


def value_label(value: Any) -> str:
    """A readable name of an axis value: ``50``, ``bavaft-psnr``, ``jpeg-quality50``, ``none`` (``[]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, list | tuple):
        return "+".join(value_label(v) for v in value) if value else "none"
    if isinstance(value, dict):
        if isinstance(value.get("label"), str):
            return str(value["label"])
        head = [value_label(value["use"])] if "use" in value else []
        params = value.get("params", {}) if "use" in value else value
        rest = params.items() if isinstance(params, dict) else []
        return "-".join(head + [f"{k}{value_label(v)}" for k, v in rest]) or "{}"
    return str(value)


def axis_names(keys: Sequence[str]) -> dict[str, str]:
    """Short, unique names of axes: the last meaningful part of each key (``quality`` for
    ``defense[0].params.quality``, ``loss`` for ``attack.loss.use``), longer where two collide."""
    parts = {k: [p for p in split_key(k) if p and p != "params" and not p.isdigit()] for k in keys}
    for k, ps in parts.items():
        if len(ps) > 1 and ps[-1] == "use":
            ps.pop()
        if not ps:
            ps.append(k)
    depth = dict.fromkeys(keys, 1)
    while True:
        names = {k: ".".join(parts[k][-depth[k] :]) for k in keys}
        clash = [
            k
            for k in keys
            if (list(names.values()).count(names[k]) > 1 or names[k] in RESERVED_NAMES) and depth[k] < len(parts[k])
        ]
        if not clash:
            break
        for k in clash:
            depth[k] += 1
    # identical key paths (``a.0.b`` vs ``a[0].b``) are reported as duplicates; keep names distinct anyway
    seen: dict[str, int] = {}
    for k in keys:
        n = names[k]
        if n in seen:
            seen[n] += 1
            names[k] = f"{n}.{seen[n]}"
        else:
            seen[n] = 1
    return names


def _resolve(axes: Iterable[Axis], ref: str) -> Axis | None:
    axes = list(axes)
    for a in axes:
        if ref in (a.key, a.name):
            return a
    norm = split_key(ref)
    return next((a for a in axes if split_key(a.key) == norm), None)


def _same(a: Any, b: Any) -> bool:
    """TOML equality: ``50 == 50.0`` but ``true != 1``."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


# -- validation ---------------------------------------------------------------------------------


def section_issues(section: Any) -> list[Issue]:
    """Every problem of a ``[sweep]`` table that needs no registry (paths start with ``sweep.``)."""
    issues: list[Issue] = []
    axes = _axes_of(section, issues)
    names = [a.name for a in axes]
    _check_zip(section.zip, axes, issues)
    _check_seeds(section.seeds, issues)
    _check_exclude(section.exclude, axes, section.seeds, issues)
    _check_table(section.table, axes, names, issues)
    if section.store is not None and not section.store.strip():
        issues.append(Issue("sweep.store", "must not be empty", "a folder or an fsspec URL such as s3://bucket/stages"))
    if not issues and not expand(section, "x").cells:
        issues.append(Issue("sweep.exclude", "excludes every cell of the grid"))
    return issues


def _axes_of(section: Any, issues: list[Issue]) -> list[Axis]:
    """The axes, with issues for malformed keys, values and labels (bad axes are left out)."""
    raw = section.axes
    if not isinstance(raw, dict):
        issues.append(Issue("sweep.axes", f"expected a table of dotted keys → arrays, got {_kind(raw)}"))
        return []
    labels = section.labels
    if not isinstance(labels, dict):
        issues.append(Issue("sweep.labels", f"expected a table of axis → array of names, got {_kind(labels)}"))
        labels = {}
    keys = list(raw)
    names = axis_names(keys)
    given_names = section.names
    if not isinstance(given_names, dict):
        issues.append(Issue("sweep.names", f"expected a table of axis key → name, got {_kind(given_names)}"))
        given_names = {}
    for key, name in given_names.items():
        where = f'sweep.names."{key}"'
        if key not in keys:
            issues.append(Issue(where, "is not an axis", _did_you_mean(key, keys)))
        elif not isinstance(name, str) or slug(name) != name or name in RESERVED_NAMES:
            issues.append(
                Issue(
                    where,
                    f"{name!r} is not a usable name",
                    "letters, digits and ._+- only; not seed/model/split/metric",
                )
            )
        else:
            names[key] = name
    taken = [names[k] for k in keys]
    for key in keys:
        if taken.count(names[key]) > 1 and key in given_names:
            issues.append(Issue(f'sweep.names."{key}"', f'"{names[key]}" names another axis too'))
    # a zipped axis may repeat a value (its group's tuples must differ): _check_zip checks those groups
    zip_refs = {
        r
        for g in (section.zip if isinstance(section.zip, list | tuple) else ())
        if isinstance(g, list | tuple)
        for r in g
        if isinstance(r, str)
    }
    out: list[Axis] = []
    seen: dict[tuple[str, ...], str] = {}
    for key in keys:
        where = f'sweep.axes."{key}"'
        zipped = any(r in (key, names[key]) or split_key(r) == split_key(key) for r in zip_refs)
        parts = split_key(key)
        values = raw[key]
        if not key.strip() or any(not p for p in parts):
            issues.append(
                Issue(where, "not a dotted key", 'e.g. "victim.params.quality" or "defense[0].params.quality"')
            )
            continue
        norm = ".".join(parts)
        if any(norm == r or norm.startswith(r + ".") for r in RESERVED):
            hint = "use sweep.seeds = [...]" if norm == "run.seed" else "the sweep sets this key itself"
            issues.append(Issue(where, "cannot be an axis", hint))
            continue
        if tuple(parts) in seen:
            issues.append(Issue(where, f'sets the same key as "{seen[tuple(parts)]}"'))
            continue
        seen[tuple(parts)] = key
        if not isinstance(values, list):
            issues.append(
                Issue(where, f"expected an array of values, got {_kind(values)}", f"{key} = [{values!r}, ...]")
            )
            continue
        if not values:
            issues.append(Issue(where, "is empty", "give at least one value"))
            continue
        dup = [j for j, x in enumerate(values) if any(_same(x, y) for y in values[:j])]
        if dup and not zipped:
            issues.append(Issue(f"{where}[{dup[0]}]", "appears twice in this axis (the cells would be the same)"))
            continue
        axis_labels = [value_label(x) for x in values]
        given = labels.get(key, labels.get(names[key]))
        if given is not None:
            lwhere = f'sweep.labels."{key}"'
            if not isinstance(given, list) or not all(isinstance(x, str) and x.strip() for x in given):
                issues.append(Issue(lwhere, "expected an array of non-empty strings"))
                continue
            if len(given) != len(values):
                issues.append(Issue(lwhere, f"has {len(given)} labels for {len(values)} values"))
                continue
            axis_labels = list(given)
        slugs = [slug(x) for x in axis_labels]
        clash = next(((i, j) for j in range(len(slugs)) for i in range(j) if slugs[i] == slugs[j]), None)
        if clash is not None and not zipped:
            i, j = clash
            issues.append(
                Issue(
                    where,
                    f'values {i} and {j} would get the same name "{slugs[i]}"',
                    f'name them: [sweep.labels] "{key}" = [...]',
                )
            )
            continue
        out.append(Axis(key, names[key], tuple(values), tuple(axis_labels), tuple(slugs)))
    for key in labels:
        if not any(key in (k, names[k]) for k in keys):
            issues.append(Issue(f'sweep.labels."{key}"', "is not an axis", _did_you_mean(key, keys)))
    return out


def _check_zip(groups: Any, axes: list[Axis], issues: list[Issue]) -> None:
    if not isinstance(groups, list | tuple) or not all(isinstance(g, list | tuple) for g in groups):
        issues.append(Issue("sweep.zip", "expected an array of arrays of axis keys", 'e.g. zip = [["a.b", "c.d"]]'))
        return
    used: dict[str, int] = {}
    for i, group in enumerate(groups):
        members: list[Axis] = []
        for j, ref in enumerate(group):
            where = f"sweep.zip[{i}][{j}]"
            axis = _resolve(axes, ref) if isinstance(ref, str) else None
            if axis is None:
                issues.append(Issue(where, f"{ref!r} is not an axis", _did_you_mean(str(ref), _refs(axes))))
                continue
            if axis.key in used:
                issues.append(Issue(where, f'"{axis.key}" is already in zip group {used[axis.key]}'))
                continue
            used[axis.key] = i
            members.append(axis)
        lengths = {len(a.values) for a in members}
        if len(lengths) > 1:
            sizes = ", ".join(f"{a.key}: {len(a.values)}" for a in members)
            issues.append(Issue(f"sweep.zip[{i}]", f"axes that move together need equal lengths ({sizes})"))
        elif members:
            _check_zip_positions(i, sorted(members, key=axes.index), issues)


def _check_zip_positions(i: int, members: list[Axis], issues: list[Issue]) -> None:
    """A zip group's positions must differ on some axis, and its first axis (which names the cells) must
    name them apart; a single axis of the group may repeat a value."""
    n = len(members[0].values)
    for k in range(n):
        for j in range(k):
            if all(_same(a.values[k], a.values[j]) for a in members):
                issues.append(
                    Issue(
                        f"sweep.zip[{i}]",
                        f"positions {j} and {k} are the same on every axis (the cells would be the same)",
                    )
                )
                return
    leader = members[0]
    clash = next(((j, k) for k in range(n) for j in range(k) if leader.slugs[j] == leader.slugs[k]), None)
    if clash is not None:
        j, k = clash
        issues.append(
            Issue(
                f'sweep.axes."{leader.key}"',
                f'values {j} and {k} would get the same name "{leader.slugs[j]}" (it names the cells of zip group {i})',
                f'name them: [sweep.labels] "{leader.key}" = [...]',
            )
        )


def _check_seeds(seeds: Any, issues: list[Issue]) -> None:
    if not isinstance(seeds, list | tuple):
        issues.append(Issue("sweep.seeds", f"expected an array of integers, got {_kind(seeds)}", "seeds = [0, 1, 2]"))
        return
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int):
            issues.append(Issue(f"sweep.seeds[{i}]", f"expected an integer, got {_kind(s)}"))
        elif s < 0:
            issues.append(Issue(f"sweep.seeds[{i}]", f"must be >= 0 (got {s})"))
        elif s in seeds[:i]:
            issues.append(Issue(f"sweep.seeds[{i}]", f"seed {s} appears twice"))


def _check_exclude(rules: Any, axes: list[Axis], seeds: Any, issues: list[Issue]) -> None:
    if not isinstance(rules, list | tuple) or not all(isinstance(r, dict) for r in rules):
        issues.append(
            Issue(
                "sweep.exclude", "expected an array of tables", 'e.g. exclude = [{ quality = 90, loss = "bavaft-bpp" }]'
            )
        )
        return
    for i, rule in enumerate(rules):
        if not rule:
            issues.append(Issue(f"sweep.exclude[{i}]", "is empty (it would exclude every cell)"))
        for ref, value in rule.items():
            where = f'sweep.exclude[{i}]."{ref}"'
            if ref == "seed":
                if not isinstance(seeds, list | tuple) or not any(_same(value, s) for s in seeds):
                    issues.append(Issue(where, f"{value!r} is not one of sweep.seeds"))
                continue
            axis = _resolve(axes, ref)
            if axis is None:
                issues.append(Issue(where, "is not an axis", _did_you_mean(ref, [*_refs(axes), "seed"])))
            elif not any(_same(value, x) for x in axis.values) and value not in axis.labels:
                issues.append(
                    Issue(where, f"{value!r} is none of this axis's values", f"values: {', '.join(axis.labels)}")
                )


def _check_table(table: Any, axes: list[Axis], names: list[str], issues: list[Issue]) -> None:
    placed: dict[str, str] = {}
    for field in ("rows", "columns", "values", "models", "splits"):
        value = getattr(table, field)
        where = f"sweep.table.{field}"
        if not isinstance(value, list | tuple) or not all(isinstance(x, str) for x in value):
            issues.append(Issue(where, f"expected an array of strings, got {_kind(value)}"))
            continue
        if field not in ("rows", "columns"):
            continue
        for j, ref in enumerate(value):
            axis = _resolve(axes, ref)
            known = axis.name if axis is not None else (ref if ref in RESULT_FIELDS else None)
            if known is None:
                choices = [*names, *RESULT_FIELDS]
                issues.append(
                    Issue(
                        f"{where}[{j}]",
                        f'"{ref}" is neither an axis nor one of {", ".join(RESULT_FIELDS)}',
                        _did_you_mean(ref, choices),
                    )
                )
            elif known in placed:
                issues.append(Issue(f"{where}[{j}]", f'"{ref}" is already in sweep.table.{placed[known]}'))
            else:
                placed[known] = field
    if table.x is not None and _resolve(axes, table.x) is None:
        issues.append(Issue("sweep.table.x", f'"{table.x}" is not an axis', _did_you_mean(table.x, names)))
    if table.export is not None and not table.export.strip():
        issues.append(Issue("sweep.table.export", "must not be empty"))


def _refs(axes: Sequence[Axis]) -> list[str]:
    """What may name an axis: its short name or its dotted key."""
    return [a.name for a in axes] + [a.key for a in axes if a.key != a.name]


def _did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    if close:
        return f'did you mean "{close[0]}"?'
    return f"choices: {', '.join(choices)}" if choices else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


# -- expansion ----------------------------------------------------------------------------------


def expand(section: Any, run_name: str) -> Grid:
    """The cells of a valid ``[sweep]`` table (see :func:`section_issues`).

    ``run_name`` is unused in the cell names (they are the values only) but kept for the
    ``base`` cell of a grid with neither axes nor seeds.
    """
    issues: list[Issue] = []
    axes = _axes_of(section, issues)
    raw_seeds = section.seeds if isinstance(section.seeds, list | tuple) else ()
    valid = [s for s in raw_seeds if isinstance(s, int) and not isinstance(s, bool) and s >= 0]
    seeds = tuple(dict.fromkeys(valid))
    groups: list[list[Axis]] = []
    grouped: dict[str, list[Axis]] = {}
    zips = section.zip if isinstance(section.zip, list | tuple) else []
    for group in zips:
        members = [a for ref in group if isinstance(ref, str) and (a := _resolve(axes, ref)) is not None]
        members.sort(key=axes.index)  # the group sits (and is named) at its axis written first
        for a in members:
            grouped[a.key] = members
    for a in axes:
        if a.key in grouped:
            if grouped[a.key][0] is a:
                groups.append(grouped[a.key])
        else:
            groups.append([a])
    per_group = [range(min(len(a.values) for a in g)) for g in groups]
    follows = {a.name: g[0].name for g in groups for a in g[1:]}
    followers = {a.key for g in groups for a in g[1:]}
    rules = list(section.exclude) if isinstance(section.exclude, list | tuple) else []
    cells: list[Cell] = []
    excluded = 0
    for combo in itertools.product(*per_group):
        chosen = [(a, i) for g, i in zip(groups, combo) for a in g]
        chosen.sort(key=lambda ai: axes.index(ai[0]))
        for seed in seeds or (None,):
            if _excluded(rules, axes, chosen, seed):
                excluded += 1
                continue
            cells.append(_cell(chosen, seed, run_name, followers))
    return Grid(tuple(axes), seeds, tuple(cells), excluded, follows)


def _excluded(rules: list[Any], axes: list[Axis], chosen: list[tuple[Axis, int]], seed: int | None) -> bool:
    index = {a.key: i for a, i in chosen}
    for rule in rules:
        if not isinstance(rule, dict) or not rule:
            continue
        hit = True
        for ref, value in rule.items():
            if ref == "seed":
                hit = hit and seed is not None and _same(value, seed)
                continue
            axis = _resolve(axes, ref)
            if axis is None:
                hit = False
                continue
            i = index[axis.key]
            hit = hit and (_same(value, axis.values[i]) or value == axis.labels[i])
        if hit:
            return True
    return False


def _cell(chosen: list[tuple[Axis, int]], seed: int | None, run_name: str, followers: set[str]) -> Cell:
    """One cell; the axes in ``followers`` (the second and later members of a zip group) stay out
    of its name: they move with the group's first axis."""
    parts = [f"{a.name}={a.slugs[i]}" for a, i in chosen if a.key not in followers]
    config = ",".join(parts) or "base"
    name = ",".join([*parts, *([f"seed={seed}"] if seed is not None else [])]) or "base"
    overrides = [f"{a.key}={toml_inline(a.values[i])}" for a, i in chosen]
    if seed is not None:
        overrides.append(f"run.seed={seed}")
    overrides.append(f"run.name={toml_inline(name if name != 'base' else run_name)}")
    return Cell(
        name=name,
        config=config,
        seed=seed,
        labels={a.name: a.labels[i] for a, i in chosen},
        values={a.name: a.values[i] for a, i in chosen},
        overrides=tuple(overrides),
    )
