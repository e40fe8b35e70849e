"""Observing a run: one event stream from the engine, many observers.

The engine emits :mod:`~bdcore.observe.events` on an :class:`~bdcore.observe.bus.EventBus`;
the console's progress (rich bars on a terminal, plain lines otherwise), ``run.log`` and the
experiment trackers (TensorBoard, MLflow, any plugin's ``register_observers``) all receive
the same events, so they never disagree.

Modules: ``events`` (what happens), ``bus`` (dispatch, failure reporting, the progress
:class:`~bdcore.observe.bus.Stage` handle), ``base`` (:class:`~bdcore.observe.base.ObserverBase`),
``progress`` (plain lines, ``run.log``, rich bars), ``select`` (observers a spec chooses),
``group`` (nesting runs of a sweep), ``tensorboard_observer`` and ``mlflow_observer``.
"""

from __future__ import annotations

from bdcore.observe.base import ObserverBase
from bdcore.observe.bus import EventBus, Stage, null_stage

__all__ = ["EventBus", "ObserverBase", "Stage", "null_stage"]
