"""The report's example grid: one row per test sample (distinct source images), columns grouped by model.

The evaluation gives one :class:`~bdcore.engine.evaluate.GridSample` per model (clean victim, attacked
model), all on the same test samples. :func:`save_grid` writes their images under ``grid/`` and returns a
:class:`ReportGrid` for :func:`bdcore.report.html.write_report`: the test inputs once (clean, poisoned,
the trigger residual, the attack target where it is an image that means something), then each model's
outputs and its metrics' columns, under a header naming the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from bdcore.io.atomic import make_dir, writing


@attrs.frozen
class GridColumn:
    """One column: its header and one image file (relative to the run folder) per row."""

    label: str
    files: tuple[str, ...]


@attrs.frozen
class GridGroup:
    """Columns under one header: ``"test inputs"`` or a model (``"clean victim"``, ``"attacked model"``)."""

    label: str
    columns: tuple[GridColumn, ...]


@attrs.frozen
class ReportGrid:
    """``rows``: the source image of each row; ``groups`` of columns; ``notes`` shown under the grid."""

    rows: tuple[str, ...]
    groups: tuple[GridGroup, ...]
    notes: tuple[str, ...] = ()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "column"


def save_grid(
    run_dir: Path,
    grids: Mapping[str, Any],
    *,
    requested: int,
    attack: bool,
    target_description: str | None = None,
) -> ReportGrid | None:
    """Write every grid image as ``grid/<group>-<column>-<row>.png``; None when there is nothing to show.

    ``grids``: model label → GridSample (in the order the report shows them); ``requested``: ``[eval] grid``;
    ``attack``: whether the run has an attack; ``target_description``: the attack's target in words
    (``target_description`` of the attack loss), shown instead of an attack-target column.
    """
    from bdcore.data.images import save_png

    samples = [g for g in grids.values() if g is not None and g.names]
    if not samples:
        return None
    used: set[str] = set()

    def save(group: str, label: str, images: Any) -> GridColumn:
        stem = base = f"{_slug(group)}-{_slug(label)}"
        k = 2
        while stem in used:  # distinct labels that slug alike ("a b", "a-b") must not share files
            stem, k = f"{base}-{k}", k + 1
        used.add(stem)
        files = []
        for i, img in enumerate(images):
            name = f"grid/{stem}-{i}.png"
            with writing(run_dir / name):
                save_png(img, run_dir / name)
            files.append(name)
        return GridColumn(label, tuple(files))

    make_dir(run_dir / "grid")
    inputs = samples[-1].inputs  # the same test samples for every model; the last has the attack's columns
    groups = [GridGroup("test inputs", tuple(save("inputs", k, v) for k, v in inputs.items()))]
    for label, sample in grids.items():
        if sample is not None and sample.outputs:
            groups.append(GridGroup(label, tuple(save(label, k, v) for k, v in sample.outputs.items())))
    names = tuple(samples[-1].names)
    notes = []
    if len(names) < requested:
        notes.append(
            f"[eval] grid = {requested}, but the evaluated test samples come from {len(names)} distinct "
            "source images: one example each, never two crops of one image."
        )
    if "residual (amplified)" in inputs:
        notes.append("residual: |poisoned − clean input| of each image, scaled to its own maximum.")
    if target_description:
        notes.append(f"Attack target: {target_description.rstrip('.')}.")
    elif attack and "attack target" not in inputs:
        notes.append(
            "Attack target: not shown — it is not an image, or it is just the clean input or target (an "
            "untargeted attack); the outputs on poisoned inputs show the attack's effect."
        )
    return ReportGrid(names, tuple(groups), tuple(notes))
