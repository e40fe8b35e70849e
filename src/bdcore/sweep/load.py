"""Loading a sweep: the ``[sweep]`` table, then every cell validated as the spec it is.

Every problem of every cell is collected before failing. A problem caused by an axis value is
reported at that value (``sweep.axes."defense[0].params.quality"[2]``); one that every cell shares
once, at its own key; one that only some cells have, with the first cell that has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from bdcore.errors import Issue, SpecError
from bdcore.registry import Registry
from bdcore.spec.overrides import split_key
from bdcore.spec.structure import LoadedSpec, load_spec
from bdcore.sweep.grid import Cell, Grid, expand


@attrs.frozen
class LoadedSweep:
    """A validated sweep: the base spec, its grid and every cell's loaded spec (same order)."""

    file: Path
    base: LoadedSpec
    grid: Grid
    specs: tuple[LoadedSpec, ...]
    overrides: tuple[str, ...] = ()

    @property
    def section(self) -> Any:
        return self.base.spec.sweep

    @property
    def name(self) -> str:
        """The sweep's name: ``[sweep] name``, else the base run's name."""
        return str(self.section.name or self.base.name)

    def cells(self) -> list[tuple[Cell, LoadedSpec]]:
        return list(zip(self.grid.cells, self.specs, strict=True))


def has_sweep(file: Path) -> bool:
    """True when ``file`` is a TOML spec with a ``[sweep]`` table (False when unreadable: the
    normal loader reports that)."""
    from bdcore.spec.structure import read_toml

    try:
        return "sweep" in read_toml(file)
    except SpecError:
        return False


def load_sweep(
    file: str | Path, registry: Registry, *, overrides: Sequence[str] = (), check_paths: bool = True
) -> LoadedSweep:
    """Validate ``file``'s ``[sweep]`` table and every cell of its grid.

    Raises:
        SpecError: with every problem of the table and of every cell (exit code 2).
    """
    file = Path(file)
    overrides = tuple(overrides)
    try:
        base: LoadedSpec | None = load_spec(file, registry, check_paths=check_paths, overrides=overrides)
        base_issues: list[Issue] = []
    except SpecError as exc:
        base, base_issues = None, exc.issues
    section = base.spec.sweep if base is not None else _section_only(file, overrides)
    sweep_issues = [i for i in base_issues if i.path == "sweep" or i.path.startswith("sweep.")]
    if section is None:
        missing = [] if sweep_issues else [Issue("sweep", "no [sweep] table", "bdcore sweep runs the grid it declares")]
        raise SpecError(str(file), [*base_issues, *missing])
    run_name = base.name if base is not None else file.stem
    # with problems in the table itself, its valid axes are still expanded: their values are checked too
    grid = expand(section, run_name)
    specs: list[LoadedSpec] = []
    found: dict[tuple[str, str], tuple[Issue, str, bool]] = {}
    counts: dict[tuple[str, str], int] = {}
    for cell in grid.cells:
        try:
            specs.append(load_spec(file, registry, check_paths=check_paths, overrides=(*overrides, *cell.overrides)))
        except SpecError as exc:
            for issue in exc.issues:
                mapped, by_axis = _attribute(issue, cell, grid)
                key = (mapped.path, mapped.message)
                counts[key] = counts.get(key, 0) + 1
                found.setdefault(key, (mapped, cell.name, by_axis))
    if found or sweep_issues:
        n = len(grid.cells)
        issues = list(sweep_issues)
        if not grid.cells:
            issues += [i for i in base_issues if i not in sweep_issues]
        for key, (issue, first, by_axis) in found.items():
            if not by_axis and counts[key] < n:
                where = f"in {counts[key]} of {n} cells, e.g. {first}"
                issue = attrs.evolve(issue, hint=f"{issue.hint}; {where}" if issue.hint else where)
            if issue not in issues:
                issues.append(issue)
        raise SpecError(str(file), issues)
    assert base is not None  # noqa: S101 - a valid cell implies a structurally valid base
    return LoadedSweep(file=file, base=_with_sweep(base, section), grid=grid, specs=tuple(specs), overrides=overrides)


def _section_only(file: Path, overrides: tuple[str, ...]) -> Any:
    """The ``[sweep]`` table structured on its own, for when the base spec is invalid (perhaps only
    where every cell sets it); None when it is missing or not even a table of known keys."""
    from bdcore.spec.converter import make_converter, structure
    from bdcore.spec.model import GridSection
    from bdcore.spec.overrides import apply_overrides
    from bdcore.spec.structure import read_toml

    raw = read_toml(file)
    apply_overrides(raw, overrides)
    if not isinstance(raw.get("sweep"), dict):
        return None
    section, _ = structure(make_converter(file.parent.resolve()), raw["sweep"], GridSection, "sweep")
    return section


def _with_sweep(base: LoadedSpec, section: Any) -> LoadedSpec:
    return base if base.spec.sweep is section else attrs.evolve(base, spec=attrs.evolve(base.spec, sweep=section))


def _attribute(issue: Issue, cell: Cell, grid: Grid) -> tuple[Issue, bool]:
    """``issue`` of ``cell`` reported at the axis value that caused it, when one did (and whether one did)."""
    parts = split_key(issue.path) if issue.path else []
    for axis in grid.axes:
        key = split_key(axis.key)
        n = min(len(key), len(parts))
        if n and key[:n] == parts[:n]:
            i = axis.labels.index(cell.labels[axis.name])
            return Issue(f'sweep.axes."{axis.key}"[{i}]', f"{issue.path}: {issue.message}", issue.hint), True
    return issue, False
