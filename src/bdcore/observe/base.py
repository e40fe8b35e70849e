"""The base class of observers: one method per event kind, each a no-op unless overridden."""

from __future__ import annotations

from typing import Any, ClassVar

from bdcore.observe.events import (
    EVENT_TYPES,
    EvalRows,
    Images,
    Message,
    Progress,
    RunEnded,
    RunStarted,
    Scalars,
    StageEnded,
    StageStarted,
)

_KINDS = tuple(t.kind for t in EVENT_TYPES)  # type: ignore[attr-defined]


class ObserverBase:
    """Subclass this and override the ``on_<kind>`` methods you need.

    Registered as a factory, the class is called as ``Observer(params, ctx)``. The event bus
    calls :meth:`on_event` only for the kinds in :attr:`wants`, which is
    computed from the methods a subclass overrides: an observer that only overrides
    ``on_scalars`` costs nothing on the per-step ``progress`` events. Exceptions raised
    here never fail the run: the bus reports them (see :class:`bdcore.observe.bus.EventBus`).

    Example::

        class PrintLosses(ObserverBase):
            def on_scalars(self, event):
                print(event.stage, event.step, dict(event.values))
    """

    #: Event kinds this observer handles (filled per subclass from its overridden methods).
    wants: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: Any = None, ctx: Any = None) -> None:
        #: the structured params and the :class:`~bdcore.context.Context` the factory was called with
        self.params = params
        self.ctx = ctx

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.wants = frozenset(k for k in _KINDS if getattr(cls, f"on_{k}") is not getattr(ObserverBase, f"on_{k}"))

    def on_event(self, event: Any) -> None:
        getattr(self, f"on_{event.kind}")(event)

    def on_run_start(self, event: RunStarted) -> None:
        """The run folder exists; the resolved spec and the manifest are known."""

    def on_stage_start(self, event: StageStarted) -> None:
        """A stage begins (with its total number of steps or batches when known)."""

    def on_progress(self, event: Progress) -> None:
        """A stage advanced (called every step: keep it cheap)."""

    def on_scalars(self, event: Scalars) -> None:
        """Logged scalars of a stage at a step (every ``[run] log_every`` training steps)."""

    def on_stage_end(self, event: StageEnded) -> None:
        """A stage finished, was reused from the stage store, or failed."""

    def on_message(self, event: Message) -> None:
        """A log line of the engine or a component."""

    def on_eval_rows(self, event: EvalRows) -> None:
        """Result rows of one evaluation."""

    def on_images(self, event: Images) -> None:
        """An image grid of the evaluation."""

    def on_run_end(self, event: RunEnded) -> None:
        """The run completed, failed or was interrupted; the run folder is final."""

    def close(self) -> None:
        """Release files and connections (called once, after ``run_end``, also on failure)."""
