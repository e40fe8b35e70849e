"""The events of a run: what the engine tells its observers, in order.

A run emits, in this order::

    RunStarted
      StageStarted("data")  … StageEnded("data")
      StageStarted("clean-victim", total=steps)
        Progress(done=1..steps)     (every step: the console bar, plain lines, run.log)
        Scalars(step=k·log_every)   (the mean of each logged term over the interval)
      StageEnded("clean-victim")
      …  Message(text) whenever the engine has something to say
      EvalRows(rows)  Images(columns)
    RunEnded(status, rows)

Stages nest: a defense stage holds its fine-tuning and its evaluation. ``stage`` is a
slash-separated path (``"defense/fine-pruning/train"``) that the trackers also use as the
prefix of their scalar tags, so a tag names where a curve comes from.

Every event is a frozen attrs class with a ``kind`` that names the observer method it
reaches (:class:`bdcore.observe.base.ObserverBase` dispatches ``on_<kind>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs


@attrs.frozen
class RunStarted:
    """A run folder exists and the manifest says ``running``.

    Attributes:
        name: the run's name (``[run] name`` or the spec file's stem).
        run_dir: the run folder (``runs/demo-20260101-120000``).
        out_root: the output root that holds the run folders and ``.stages``.
        spec: the resolved spec (every default filled in) as plain TOML-ready data.
        manifest: the manifest written at start (versions, plugins, device, git sha).
        group: the group this run belongs to (a sweep's name), or None; trackers nest the run
            under it (see :func:`bdcore.observe.group.run_group`).
        resumed: True for ``bdcore run --resume``.
        tracking_root: where trackers keep their default stores (``tensorboard/``, ``mlruns/``):
            ``out_root`` for a single run, the sweep folder for every cell of a sweep (so one
            TensorBoard log folder and one MLflow store hold the whole sweep).
    """

    kind: ClassVar[str] = "run_start"
    name: str
    run_dir: Path
    out_root: Path
    spec: Mapping[str, Any]
    manifest: Mapping[str, Any]
    group: str | None = None
    resumed: bool = False
    tracking_root: Path | None = None


@attrs.frozen
class StageStarted:
    """A stage begins. ``total`` is the number of ``unit`` it will take (None: unknown)."""

    kind: ClassVar[str] = "stage_start"
    stage: str
    total: int | None = None
    unit: str = "step"
    description: str = ""


@attrs.frozen
class Progress:
    """``done`` of ``total`` units of ``stage`` are finished; ``scalars`` are the latest
    values the stage reported (may be empty between logged steps)."""

    kind: ClassVar[str] = "progress"
    stage: str
    done: int
    total: int | None
    scalars: Mapping[str, float] = attrs.field(factory=dict)


@attrs.frozen
class Scalars:
    """Logged scalars of ``stage`` at ``step``: training losses (means over the logging
    interval), the learning rate, an attack's own terms (e.g. trigger PSNR), a fit's losses."""

    kind: ClassVar[str] = "scalars"
    stage: str
    step: int
    values: Mapping[str, float]


@attrs.frozen
class StageEnded:
    """A stage ends: ``status`` is ``"done"``, ``"reused"`` (loaded from the stage store) or
    ``"failed"``; ``done`` is how many units it finished."""

    kind: ClassVar[str] = "stage_end"
    stage: str
    seconds: float
    status: str = "done"
    done: int | None = None
    total: int | None = None
    unit: str = "step"


@attrs.frozen
class Message:
    """A line the engine (or a component, through ``Context.log``) has to say."""

    kind: ClassVar[str] = "message"
    text: str
    level: str = "info"


@attrs.frozen
class EvalRows:
    """Result rows just computed (the dicts of ``results.jsonl``: stage, defense, setting,
    split, metric, value, higher_is_better, run, victim, trigger, attack)."""

    kind: ClassVar[str] = "eval_rows"
    rows: tuple[Mapping[str, Any], ...]


@attrs.frozen
class Images:
    """An image grid: ``columns`` maps a label (``"poisoned output"``) to ``N×C×H×W`` float
    images in [0, 1] on the CPU; ``tag`` says which grid (``"grid"``)."""

    kind: ClassVar[str] = "images"
    tag: str
    columns: Mapping[str, Any]
    step: int = 0


@attrs.frozen
class RunEnded:
    """The run is over. ``status``: ``"complete"``, ``"failed"`` or ``"interrupted"``;
    ``error`` says why when it did not complete. On ``"complete"`` the run folder holds every
    file (results, report, plots, manifest)."""

    kind: ClassVar[str] = "run_end"
    status: str
    run_dir: Path
    seconds: float
    rows: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None


Event = RunStarted | StageStarted | Progress | Scalars | StageEnded | Message | EvalRows | Images | RunEnded

#: Every event class, in the order a run emits them.
EVENT_TYPES: tuple[type, ...] = (
    RunStarted,
    StageStarted,
    Progress,
    Scalars,
    StageEnded,
    Message,
    EvalRows,
    Images,
    RunEnded,
)
