"""Executors: where cells run. One interface, three engines.

* :class:`InlineExecutor` (``--executor local``, ``--jobs 1``): cells one after another in this
  process.
* :class:`ProcessExecutor` (``--executor local --jobs N``): N worker processes
  (``concurrent.futures`` with ``spawn``); a worker that dies breaks the pool, which is rebuilt and
  the lost cells resubmitted (``[sweep] max_retries``).
* :class:`RayExecutor` (``--executor ray``, the ``bdcore[ray]`` extra): each cell a Ray task with
  ``[sweep.resources]``, retried by Ray when its worker is lost (``max_retries``); connects to
  ``--address`` (``auto``, ``ray://host:10001``) or starts a local Ray and shuts it down after.

The driver (:mod:`bdcore.sweep.driver`) decides what to submit when; an executor only runs
:func:`bdcore.sweep.cell.run_cell` and reports outcomes and progress events. We write no
scheduler of our own: in-process order, ``concurrent.futures`` or Ray's.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import queue as queue_mod
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from bdcore.errors import UsageError
from bdcore.sweep.cell import CellTask, outcome, run_cell

#: What :meth:`Executor.poll` returns: finished ``(cell, outcome)`` pairs and progress events.
Polled = tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]


class Executor(ABC):
    """Runs :class:`~bdcore.sweep.cell.CellTask` s; ``capacity`` = cells in flight at most (None: no limit)."""

    name: str = ""
    capacity: int | None = 1

    def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire workers (processes, a Ray connection)."""

    @abstractmethod
    def submit(self, task: CellTask) -> None:
        """Queue one cell."""

    @abstractmethod
    def poll(self, timeout: float) -> Polled:
        """Wait up to ``timeout`` seconds for something to happen; return what did."""

    @abstractmethod
    def in_flight(self) -> list[str]:
        """Cells submitted and not finished."""

    def cancel(self, forward: bool = False) -> None:  # noqa: B027 - optional hook
        """Stop running cells (Ctrl-C): they stay resumable from their checkpoints. ``forward``: the
        interrupt reached this process only (a SIGTERM), so pass it on to the cells' workers."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`start` acquired."""


class InlineExecutor(Executor):
    """Cells in order, in this process (the default: no worker start-up, no extra dependency).

    ``listener`` (set by the driver) receives a running cell's progress events as they happen;
    ``heartbeat`` (set by the driver) is called after each of them, since the driver's own loop waits
    for the whole cell (it keeps ``sweep.json``'s wall time current, see ``driver.SAVE_EVERY``).
    """

    name = "local"
    capacity = 1

    def __init__(self) -> None:
        self.pending: list[CellTask] = []
        self.listener: Any = None
        self.heartbeat: Callable[[], None] | None = None

    def submit(self, task: CellTask) -> None:
        self.pending.append(task)

    def in_flight(self) -> list[str]:
        return [t.cell for t in self.pending]

    def poll(self, timeout: float) -> Polled:
        if not self.pending:
            return [], []
        task = self.pending[0]
        events: list[dict[str, Any]] = []
        forward = self.listener or events.append

        def sink(event: dict[str, Any]) -> None:
            forward(event)
            if self.heartbeat is not None:
                self.heartbeat()

        result = run_cell(task, sink=sink)
        self.pending.pop(0)
        return [(task.cell, result)], events


_QUEUE: Any = None


def _init_worker(events: Any) -> None:
    global _QUEUE
    _QUEUE = events
    # a sweep started in the background by a non-interactive shell ignores SIGINT, and the spawned worker
    # inherits the ignore: the SIGINT the driver forwards on SIGTERM (``cancel``) must still stop the cell
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _run_in_worker(task: CellTask) -> dict[str, Any]:
    return run_cell(task, sink=_QUEUE.put if _QUEUE is not None else None)


class ProcessExecutor(Executor):
    """``jobs`` worker processes on this machine."""

    name = "local"

    def __init__(self, jobs: int, max_retries: int = 0) -> None:
        self.capacity = jobs
        self.jobs = jobs
        self.max_retries = max_retries
        self.ctx = multiprocessing.get_context("spawn")
        self.events: Any = None
        self.pool: cf.ProcessPoolExecutor | None = None
        self.futures: dict[cf.Future[dict[str, Any]], CellTask] = {}
        self.retries: dict[str, int] = {}
        self.given_up: list[tuple[CellTask, dict[str, Any]]] = []

    def start(self) -> None:
        self.events = self.ctx.Queue()
        self._new_pool()

    def _new_pool(self) -> None:
        self.pool = cf.ProcessPoolExecutor(
            max_workers=self.jobs, mp_context=self.ctx, initializer=_init_worker, initargs=(self.events,)
        )

    def submit(self, task: CellTask) -> None:
        assert self.pool is not None  # noqa: S101 - started by the driver
        try:
            self.futures[self.pool.submit(_run_in_worker, task)] = task
        except cf.process.BrokenProcessPool:  # a worker died since the last poll
            self._recover([task])

    def in_flight(self) -> list[str]:
        return [t.cell for t in self.futures.values()] + [t.cell for t, _ in self.given_up]

    def poll(self, timeout: float) -> Polled:
        done, _ = cf.wait(list(self.futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        finished: list[tuple[str, dict[str, Any]]] = [(t.cell, r) for t, r in self.given_up]
        self.given_up.clear()
        lost: list[CellTask] = []
        for fut in done:
            task = self.futures.pop(fut)
            try:
                finished.append((task.cell, fut.result()))
            except cf.process.BrokenProcessPool:
                lost.append(task)
            except BaseException as exc:  # noqa: BLE001 - e.g. an unpicklable result
                finished.append((task.cell, _lost(task, f"{type(exc).__name__}: {exc}")))
        if lost:
            self._recover(lost)
            finished += [(t.cell, r) for t, r in self.given_up]
            self.given_up.clear()
        return finished, self._drain()

    def _recover(self, lost: list[CellTask]) -> None:
        """A dead worker breaks the whole pool (the others are stopped with it): every cell in
        flight is lost. Start a new pool and resubmit them, each at most ``max_retries`` times."""
        lost = lost + [t for t in self.futures.values() if t not in lost]
        self.futures.clear()
        assert self.pool is not None  # noqa: S101
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._new_pool()
        for task in lost:
            n = self.retries.get(task.cell, 0)
            if n < self.max_retries:
                self.retries[task.cell] = n + 1
                self.futures[self.pool.submit(_run_in_worker, task)] = task  # type: ignore[union-attr]
            else:
                self.given_up.append((task, _lost(task, f"its worker process died ({n + 1} attempts)")))

    def _drain(self) -> list[dict[str, Any]]:
        events = []
        while True:
            try:
                events.append(self.events.get_nowait())
            except (queue_mod.Empty, OSError, ValueError):
                return events

    def cancel(self, forward: bool = False) -> None:
        if self.pool is not None:
            for fut in self.futures:
                fut.cancel()
            if forward:
                # Ctrl-C reaches every process of the group; a SIGTERM sent to the driver reaches only it, and
                # the shutdown below would wait for the running cells to finish. Interrupt them as Ctrl-C
                # would (the pool's processes are only reachable through its private table).
                for pid in list((getattr(self.pool, "_processes", None) or {}).keys()):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGINT)
            self.pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _lost(task: CellTask, error: str) -> dict[str, Any]:
    return outcome({"cell": task.cell}, "failed", 0.0, error=error, error_class="WorkerLost", exit_code=1)


class RayExecutor(Executor):
    """Each cell a Ray task.

    Args:
        address: ``None`` starts a local Ray (``num_cpus = jobs`` when given) and shuts it down in
            :meth:`close`; ``"auto"`` or ``"ray://head:10001"`` connects to a running cluster. A
            driver already connected (``ray.is_initialized()``) is used as it is.
        jobs: cells in flight at most (None: as many as the cluster's resources allow).
        cpus, gpus: Ray resources of one cell (``[sweep.resources]``).
        max_retries: Ray reruns a cell whose worker process or node died this many times.
    """

    name = "ray"

    def __init__(self, *, address: str | None, jobs: int | None, cpus: float, gpus: float, max_retries: int) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'bdcore[ray]' (or pip install ray)") from None
        self.ray = ray
        self.address = address
        self.jobs = jobs
        self.capacity = jobs
        self.options = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": max_retries, "retry_exceptions": False}
        self.started = False
        self.refs: dict[Any, CellTask] = {}
        self.events: Any = None

    def start(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                if self.jobs:
                    kwargs["num_cpus"] = self.jobs
                ray.init(**kwargs)
                self.started = True
            else:
                try:
                    ray.init(address=self.address, **kwargs)
                except ConnectionError as exc:
                    raise UsageError(f"--address {self.address}: no Ray cluster there ({exc})") from None
                self.started = True
        from ray.util.queue import Queue

        self.events = Queue()
        self.remote = ray.remote(_run_in_ray).options(**self.options)

    def submit(self, task: CellTask) -> None:
        self.refs[self.remote.remote(task, self.events)] = task

    def in_flight(self) -> list[str]:
        return [t.cell for t in self.refs.values()]

    def poll(self, timeout: float) -> Polled:
        ray = self.ray
        finished: list[tuple[str, dict[str, Any]]] = []
        if self.refs:
            ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=timeout)
            for ref in ready:
                task = self.refs.pop(ref)
                try:
                    finished.append((task.cell, ray.get(ref)))
                except ray.exceptions.RayError as exc:
                    # the worker (or node) was lost more often than max_retries allows
                    finished.append((task.cell, _lost(task, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")))
        events: list[dict[str, Any]] = []
        try:
            while not self.events.empty():
                events += self.events.get_nowait_batch(self.events.qsize())
        except Exception:  # noqa: BLE001 - progress is best effort
            pass
        return finished, events

    def cancel(self, forward: bool = False) -> None:  # noqa: ARG002 - Ray cancels its tasks itself
        for ref in list(self.refs):
            self.ray.cancel(ref, force=False)
        self.refs.clear()

    def close(self) -> None:
        if self.events is not None:
            with contextlib.suppress(Exception):
                self.events.shutdown()
        if self.started:
            self.ray.shutdown()


def _run_in_ray(task: CellTask, events: Any) -> dict[str, Any]:
    def sink(event: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # progress is best effort
            events.put_nowait(event)

    result = run_cell(task, sink=sink)
    import ray

    result["ray_node"] = ray.get_runtime_context().get_node_id()
    return result


def make_executor(
    kind: str, *, jobs: int | None, address: str | None, cpus: float, gpus: float, max_retries: int
) -> Executor:
    """The executor ``bdcore sweep --executor KIND`` asks for."""
    if kind == "local":
        if address is not None:
            raise UsageError("--address is for --executor ray")
        n = jobs or 1
        return InlineExecutor() if n == 1 else ProcessExecutor(n, max_retries)
    if kind == "ray":
        return RayExecutor(address=address, jobs=jobs, cpus=cpus, gpus=gpus, max_retries=max_retries)
    raise UsageError(f"--executor {kind}: expected local or ray")
