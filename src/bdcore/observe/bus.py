"""The event bus: the engine emits events, observers receive them, a failing observer never fails the run.

The engine owns one :class:`EventBus` per run. Stages report progress through
:meth:`EventBus.stage` (plugins through :meth:`bdcore.context.Context.progress`), which
nests: a stage opened while another is open gets the outer stage's path as prefix
(``"defense/fine-pruning"`` → ``"defense/fine-pruning/train"``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from bdcore.observe.events import (
    EVENT_TYPES,
    Message,
    Progress,
    Scalars,
    StageEnded,
    StageStarted,
)

log = logging.getLogger("bdcore")

_ALL_KINDS = frozenset(t.kind for t in EVENT_TYPES)  # type: ignore[attr-defined]


@attrs.define
class ObserverFailures:
    """What went wrong with one observer during a run (kept for the manifest)."""

    count: int = 0
    first: str = ""
    disabled: bool = False

    def describe(self) -> dict[str, Any]:
        return {"failures": self.count, "first_error": self.first, "disabled": self.disabled}


@attrs.define
class _Slot:
    name: str
    observer: Any
    wants: frozenset[str]
    failures: ObserverFailures = attrs.Factory(ObserverFailures)
    reported: set[str] = attrs.Factory(set)


class EventBus:
    """Calls every observer for every event it wants; reports (never raises) observer failures.

    Args:
        observers: ``(name, observer)`` pairs; an observer has ``on_event(event)`` and
            optionally ``wants`` (the event kinds it handles; all when absent) and ``close()``.
        log_every: steps between :class:`~bdcore.observe.events.Scalars` events of a stage
            whose progress carries scalars (``[run] log_every``).
        max_failures: an observer that failed this many times is disabled for the rest of the
            run (and the run log says so).

    The first failure of an observer on each event kind is reported as a warning (logging and a
    :class:`~bdcore.observe.events.Message` to the other observers, so it lands in ``run.log``);
    later ones are counted. :meth:`failures` summarises them for the manifest.
    """

    def __init__(
        self,
        observers: Iterable[tuple[str, Any]] = (),
        *,
        log_every: int = 10,
        max_failures: int = 25,
    ) -> None:
        self.log_every = log_every
        self.max_failures = max_failures
        self._slots: list[_Slot] = []
        self._by_kind: dict[str, list[_Slot]] = {k: [] for k in _ALL_KINDS}
        self._stack: list[str] = []
        self._reporting = False
        for name, observer in observers:
            self.add(name, observer)

    # A bus is a service of the run, not state of a component: a component that keeps its Context
    # (and so the bus) is deep-copied (the attacked victim starts as a copy of the clean one) with
    # the same bus, and pickled (sent to another process) without it.
    def __copy__(self) -> EventBus:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> EventBus:
        return self

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (EventBus, ())

    # -- observers -------------------------------------------------------------------
    def add(self, name: str, observer: Any) -> None:
        """Attach an observer (it receives the events emitted from now on)."""
        wants = getattr(observer, "wants", None)
        slot = _Slot(name, observer, frozenset(wants) if wants is not None else _ALL_KINDS)
        self._slots.append(slot)
        for kind in slot.wants & _ALL_KINDS:
            self._by_kind[kind].append(slot)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._slots]

    def emit(self, event: Any) -> None:
        """Deliver ``event`` to every observer that wants its kind."""
        for slot in self._by_kind[event.kind]:
            if slot.failures.disabled:
                continue
            try:
                slot.observer.on_event(event)
            except Exception as exc:  # noqa: BLE001 - an observer never fails the run
                self._failed(slot, event.kind, exc)

    def close(self) -> None:
        """Close every observer (each failure reported, none raised)."""
        for slot in self._slots:
            close = getattr(slot.observer, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception as exc:  # noqa: BLE001
                self._failed(slot, "close", exc)

    def failures(self) -> dict[str, dict[str, Any]]:
        """``{observer name: {failures, first_error, disabled}}`` for observers that failed."""
        return {s.name: s.failures.describe() for s in self._slots if s.failures.count}

    def _failed(self, slot: _Slot, kind: str, exc: Exception) -> None:
        f = slot.failures
        f.count += 1
        text = f"{type(exc).__name__}: {exc}"
        if not f.first:
            f.first = f"{kind}: {text}"
        lines = []
        if kind not in slot.reported:
            slot.reported.add(kind)
            lines.append(f'observer "{slot.name}" failed on {kind} (the run goes on): {text}')
        if f.count >= self.max_failures and not f.disabled:
            f.disabled = True
            lines.append(f'observer "{slot.name}" disabled after {f.count} failures')
        for line in lines:
            log.warning(line)
            if not self._reporting:  # a failing report must not report itself again
                self._reporting = True
                try:
                    event = Message(line, level="warning")
                    for other in self._by_kind[event.kind]:
                        if other is slot or other.failures.disabled:
                            continue
                        try:
                            other.observer.on_event(event)
                        except Exception as exc2:  # noqa: BLE001
                            self._failed(other, event.kind, exc2)
                finally:
                    self._reporting = False

    # -- what stages call ----------------------------------------------------------------
    def message(self, text: str, level: str = "info") -> None:
        """Say something (the console, ``run.log`` and trackers that keep logs get it)."""
        self.emit(Message(text, level))

    def stage(
        self, name: str, total: int | None = None, *, unit: str = "step", description: str = "", root: bool = False
    ) -> Stage:
        """A context manager for one stage: ``with bus.stage("attack", total=400) as s: s.update(k, loss=x)``.

        The stage's path is ``name`` under the innermost open stage, or ``name`` itself with
        ``root=True`` (the engine's own stages: their tags do not depend on what opened them)."""
        return Stage(self, name, total, unit, description, root=root)

    @property
    def current_stage(self) -> str | None:
        return self._stack[-1] if self._stack else None


class Stage:
    """The progress of one stage, handed to whatever does the work.

    Use it as a context manager (the stage starts on enter and ends on exit, as ``"failed"``
    when an exception leaves the block)::

        with ctx.progress("sf-i-net fit", total=steps) as bar:
            for step in range(steps):
                ...
                bar.update(step + 1, loss=float(loss), psnr=float(psnr))

    ``update(done, **scalars)`` moves the bar (call it every step: it is cheap). Every ``[run]
    log_every`` steps (and at the last one) the scalars are read, shown with the bar and sent to
    the trackers as a :class:`~bdcore.observe.events.Scalars` event; on the other steps they are
    not even read, so passing a 0-dim tensor (``loss=loss``) costs no device sync there.
    """

    def __init__(
        self, bus: EventBus | None, name: str, total: int | None, unit: str, description: str, *, root: bool = False
    ) -> None:
        self.bus = bus
        self.root = root
        self.name = name
        self.path = name
        self.total = total if total is None or total > 0 else None
        self.unit = unit
        self.description = description
        self.done = 0
        self.status = "done"
        self._t0 = 0.0

    def __enter__(self) -> Stage:
        bus = self.bus
        if bus is not None:
            parent = None if self.root else bus.current_stage
            self.path = f"{parent}/{self.name}" if parent else self.name
            bus._stack.append(self.path)
            bus.emit(StageStarted(self.path, self.total, self.unit, self.description))
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        bus = self.bus
        if bus is None:
            return
        if bus._stack and bus._stack[-1] == self.path:
            bus._stack.pop()
        status = self.status if exc_type is None else ("interrupted" if exc_type is KeyboardInterrupt else "failed")
        bus.emit(
            StageEnded(
                self.path,
                time.perf_counter() - self._t0,
                status,
                self.done,
                self.total,
                self.unit,
            )
        )

    def update(self, done: int | None = None, /, **scalars: Any) -> None:
        """``done`` units finished (default: one more than before); ``scalars``: the latest values
        (Python numbers or 0-dim tensors), read only on logged steps."""
        self.done = self.done + 1 if done is None else int(done)
        bus = self.bus
        if bus is None:
            return
        if scalars and self.due(self.done):
            values = {k: float(v) for k, v in scalars.items()}
            bus.emit(Progress(self.path, self.done, self.total, values))
            bus.emit(Scalars(self.path, self.done, values))
        else:
            bus.emit(Progress(self.path, self.done, self.total, {}))

    def due(self, done: int) -> bool:
        """Whether scalars passed at ``done`` are logged (every ``log_every`` units and the last)."""
        every = self.bus.log_every if self.bus is not None else 0
        return every > 0 and (done % every == 0 or done == self.total)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Send scalars to the trackers at ``step`` now (for a caller with its own logging cadence)."""
        if self.bus is not None and values:
            self.bus.emit(Scalars(self.path, int(step), {k: float(v) for k, v in values.items()}))

    def reused(self) -> None:
        """Mark the stage as loaded from the stage store rather than computed."""
        self.status = "reused"

    def train_callback(self) -> Callable[[int, dict[str, float]], None]:
        """A ``progress(done, record)`` callback for :func:`bdcore.engine.train.train_loop`: every
        step moves the bar; a non-empty ``record`` (the mean of each term over the last
        ``log_every`` steps, plus ``lr``) also goes to the trackers."""

        def callback(done: int, record: dict[str, float]) -> None:
            self.done = done
            if self.bus is None:
                return
            values = {k: float(v) for k, v in record.items() if k != "step"}
            self.bus.emit(Progress(self.path, done, self.total, values))
            if values:
                self.bus.emit(Scalars(self.path, done, values))

        return callback


def null_stage(name: str = "", total: int | None = None) -> Stage:
    """A stage that reports to nobody (a component used outside the engine)."""
    return Stage(None, name, total, "step", "")
