"""How progress is shown: plain lines (CI logs, ``run.log``) or rich bars (a terminal).

Both are observers of the same events, so the terminal, the CI log and ``run.log`` never
disagree. Plain lines look like::

    stage attack: bavaft-psnr (training-controlled) with trigger bavaft for 170 steps
    attack: 60/170 steps (35%), 2.31 steps/s, ETA 0:48, loss=0.0312 psnr=41.2 lr=0.0003
    attack: done, 170 steps in 73.6 s (2.31 steps/s)

A line is written when a stage starts, then whenever ``every_seconds`` have passed (or
``every_steps`` units, when set) since the stage's last line, and when it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from bdcore.io.atomic import append_line
from bdcore.observe.base import ObserverBase
from bdcore.observe.bus import EventBus
from bdcore.observe.events import Message, Progress, StageEnded, StageStarted
from bdcore.text import printable

log = logging.getLogger("bdcore")


def format_seconds(seconds: float) -> str:
    """``75.2`` → ``"1:15"``; ``3725`` → ``"1:02:05"``."""
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def format_scalars(values: Mapping[str, float], limit: int = 6) -> str:
    """``{"loss": 0.03124, "lr": 3e-4}`` → ``"loss=0.03124 lr=0.0003"`` (at most ``limit`` terms)."""
    return " ".join(f"{k}={v:.4g}" for k, v in list(values.items())[:limit])


def _plural(unit: str, n: int | float | None) -> str:
    if n == 1:
        return unit
    return f"{unit}es" if unit.endswith(("s", "sh", "ch", "x")) else f"{unit}s"


def format_rate(rate: float) -> str:
    """``2.3117`` → ``"2.31"``, ``2143.7`` → ``"2144"`` (no exponent notation)."""
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


class _StageClock:
    """Rate and ETA of one stage, measured from its first update (so a resumed stage that starts
    at step 300 does not claim 300 steps in its first second)."""

    def __init__(self, total: int | None, unit: str, now: float) -> None:
        self.total = total
        self.unit = unit
        self.started = now
        self.first: tuple[int, float] | None = None
        self.last_line = now
        self.last_line_done = 0
        self.done = 0
        self.scalars: dict[str, float] = {}

    def update(self, done: int, now: float, scalars: Mapping[str, float]) -> None:
        if self.first is None:
            # the first update's own unit took (now - started)
            self.first = (done - 1, self.started)
            self.last_line_done = done - 1
        self.done = done
        if scalars:
            self.scalars = dict(scalars)

    def rate(self, now: float) -> float | None:
        if self.first is None:
            return None
        d0, t0 = self.first
        dt = now - t0
        return (self.done - d0) / dt if dt > 0 and self.done > d0 else None


class PlainProgress(ObserverBase):
    """Progress and messages as plain text lines through ``write`` (a logger or a file).

    Args:
        write: where each line goes.
        every_seconds: seconds between two progress lines of one stage (0: every update).
        every_steps: also a line every this many units (None: by time only).
        messages: also write :class:`~bdcore.observe.events.Message` lines.
        clock: the time source (tests pass a fake one).
    """

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        every_seconds: float = 30.0,
        every_steps: int | None = None,
        messages: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.every_seconds = every_seconds
        self.every_steps = every_steps
        self.messages = messages
        self.clock = clock
        self._stages: dict[str, _StageClock] = {}

    def on_stage_start(self, event: StageStarted) -> None:
        self._stages[event.stage] = _StageClock(event.total, event.unit, self.clock())
        if event.description:
            self.write(f"stage {event.stage}: {event.description}")
        else:
            size = f" ({event.total} {_plural(event.unit, event.total)})" if event.total else ""
            self.write(f"{event.stage}: started{size}")

    def on_progress(self, event: Progress) -> None:
        st = self._stages.get(event.stage)
        if st is None:  # progress without a start (an observer attached mid-stage)
            st = self._stages[event.stage] = _StageClock(event.total, "step", self.clock())
        now = self.clock()
        st.update(event.done, now, event.scalars)
        due = now - st.last_line >= self.every_seconds
        if self.every_steps:
            due = due or event.done - st.last_line_done >= self.every_steps
        if due and event.done != st.total:  # the last unit is reported by the stage's end line
            st.last_line, st.last_line_done = now, event.done
            self.write(self.progress_line(event.stage, st, now))

    def progress_line(self, stage: str, st: _StageClock, now: float) -> str:
        unit = _plural(st.unit, 2)
        if st.total:
            parts = [f"{stage}: {st.done}/{st.total} {unit} ({100 * st.done / st.total:.0f}%)"]
        else:
            parts = [f"{stage}: {st.done} {unit}"]
        rate = st.rate(now)
        if rate is not None:
            parts.append(f"{format_rate(rate)} {unit}/s")
            if st.total:
                parts.append(f"ETA {format_seconds((st.total - st.done) / rate)}")
        line = ", ".join(parts)
        if st.scalars:
            line += f", {format_scalars(st.scalars)}"
        return line

    def on_stage_end(self, event: StageEnded) -> None:
        st = self._stages.pop(event.stage, None)
        unit = _plural(event.unit, event.done)
        if event.status == "reused":  # the engine's message already says from where
            return
        work = f"{event.done} {unit} in " if event.done else ""
        rate = (
            f" ({format_rate(event.done / event.seconds)} {_plural(event.unit, 2)}/s)"
            if event.done and event.seconds > 0
            else ""
        )
        last = f", {format_scalars(st.scalars)}" if st is not None and st.scalars else ""
        if event.status == "done":
            self.write(f"{event.stage}: done, {work}{event.seconds:.1f} s{rate}{last}")
        elif event.total or event.done:
            of = f" of {event.total}" if event.total else ""
            units = _plural(event.unit, event.total or event.done)
            self.write(f"{event.stage}: {event.status} after {event.done}{of} {units} ({event.seconds:.1f} s)")
        else:
            self.write(f"{event.stage}: {event.status} after {event.seconds:.1f} s")

    def on_message(self, event: Message) -> None:
        if self.messages:
            self.write(event.text)


class LogProgress(PlainProgress):
    """Plain lines through the ``bdcore`` logger (the console when stderr is not a terminal;
    warnings at warning level so ``--quiet`` keeps them)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(lambda line: log.info("%s", line), **kwargs)

    def on_message(self, event: Message) -> None:
        if event.level == "warning":
            log.warning("%s", event.text)
        else:
            log.info("%s", event.text)


class RunLog(PlainProgress):
    """``run.log`` in the run folder: every message and the plain progress lines."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(self._append, **kwargs)
        self.path = path

    def _append(self, line: str) -> None:
        append_line(self.path, line)


class RichProgress(ObserverBase):
    """Live progress bars on a terminal: one bar per open stage with step/total, rate, ETA and
    the latest scalars; a finished stage leaves one summary line (the same line
    :class:`PlainProgress` writes). User text is never read as rich markup."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.bar = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("ETA", markup=False),
            TimeRemainingColumn(),
            TextColumn("{task.fields[scalars]}", markup=False),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._lines = PlainProgress(self._print, every_seconds=float("inf"))
        self._started = False

    def _print(self, line: str) -> None:
        from rich.text import Text

        self.console.print(Text(printable(line)))

    def _ensure_started(self) -> None:
        if not self._started:
            self.bar.start()
            self._started = True

    def on_stage_start(self, event: StageStarted) -> None:
        self._ensure_started()
        self._lines.on_stage_start(event)
        self._tasks[event.stage] = self.bar.add_task(printable(event.stage), total=event.total, rate="", scalars="")

    def on_progress(self, event: Progress) -> None:
        task = self._tasks.get(event.stage)
        if task is None:
            return
        self._lines.on_progress(event)
        st = self._lines._stages.get(event.stage)
        fields: dict[str, Any] = {}
        if st is not None:
            rate = st.rate(time.monotonic())
            fields["rate"] = f"{format_rate(rate)}/s" if rate is not None else ""
        if event.scalars:
            fields["scalars"] = format_scalars(event.scalars, limit=4)
        self.bar.update(task, completed=event.done, **fields)

    def on_stage_end(self, event: StageEnded) -> None:
        task = self._tasks.pop(event.stage, None)
        if task is not None:
            self.bar.remove_task(task)
        self._lines.on_stage_end(event)

    def on_message(self, event: Message) -> None:
        self._print(event.text)

    def close(self) -> None:
        if self._started:
            self.bar.stop()
            self._started = False


def run_bus(run_dir: Path, settings: Any, console: Any = None, trackers: Iterable[tuple[str, Any]] = ()) -> EventBus:
    """The event bus of one run: ``run.log``, the console (default: :class:`LogProgress`) and the
    trackers, at the cadence of ``settings`` (the spec's ``[run]``: ``progress_every``,
    ``progress_steps``, ``log_every``)."""
    cadence = {"every_seconds": settings.progress_every, "every_steps": settings.progress_steps or None}
    return EventBus(
        [
            ("run.log", RunLog(run_dir / "run.log", **cadence)),
            ("console", console if console is not None else LogProgress(**cadence)),
            *trackers,
        ],
        log_every=settings.log_every,
    )
