"""One cell of a sweep, run in whichever worker the executor picked: an ordinary run.

:func:`run_cell` loads the spec with the cell's overrides and calls
:func:`bdcore.engine.run.execute` with the sweep's shared stage store, exactly what ``bdcore run
SPEC --set ...`` does. It never raises for a failed cell: the outcome records the error, its
class and the exit code ``bdcore run`` would have given. It resumes the cell's run folder when one
exists unfinished (a retried task, ``--resume``), and skips a cell whose run finished.

Each cell folder holds the cell's run folder, ``cell.json`` (the last outcome) and ``attempts``.
A file lock per cell keeps two workers (a retry, a driver restarted while an orphaned worker
still runs) from writing one run folder at once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from bdcore.errors import BdcoreError
from bdcore.io.atomic import write_text
from bdcore.observe.base import ObserverBase
from bdcore.observe.events import Progress, StageStarted
from bdcore.sweep.identity import CellIdentity, running

#: An event sent to the driver: ``{"type": "start" | "progress" | "end", "cell": ..., ...}``.
Sink = Callable[[dict[str, Any]], None]

CELL_JSON = "cell.json"
_HOSTS: dict[str, Any] = {}


@attrs.frozen
class CellTask:
    """Everything a worker needs to run one cell (picklable: plain values and a module-level
    ``host_factory``, a zero-argument callable returning a :class:`~bdcore.plugins.PluginHost`)."""

    spec: str
    overrides: tuple[str, ...]
    cell: str
    config: str
    cell_dir: str
    store: str
    sweep: str
    sweep_dir: str
    host_factory: Callable[[], Any]
    mirror: str | None = None
    lock_dir: str | None = None
    #: torch intra-op threads of the cell (``[sweep.resources] cpus``, at least 1), under every executor
    threads: int = 1


def default_host() -> Any:
    """The plugin host ``bdcore run`` uses: the built-ins and every installed plugin."""
    from bdcore.plugins import load_plugins

    return load_plugins()


def _host(factory: Callable[[], Any]) -> Any:
    key = f"{getattr(factory, '__module__', '')}:{getattr(factory, '__qualname__', repr(factory))}"
    if key not in _HOSTS:
        _HOSTS[key] = factory()
    return _HOSTS[key]


def make_store(location: str, mirror: str | None, lock_dir: str | None, *, create: bool = True) -> Any:
    from bdcore.sweep.store import SharedStageStore

    return SharedStageStore(
        location,
        mirror=Path(mirror) if mirror else None,
        lock_dir=Path(lock_dir) if lock_dir else None,
        create=create,
    )


def read_outcome(cell_dir: Path) -> dict[str, Any] | None:
    """The last recorded outcome of a cell folder (None when it has none or it is unreadable)."""
    try:
        data = json.loads((cell_dir / CELL_JSON).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_cell(task: CellTask, sink: Sink | None = None) -> dict[str, Any]:
    """Run one cell; returns its outcome (see :func:`outcome`). Only KeyboardInterrupt escapes."""
    from filelock import FileLock

    from bdcore.third_party_warnings import silence_known_third_party_warnings

    silence_known_third_party_warnings()  # a worker process did not run the CLI that set the filters
    cell_dir = Path(task.cell_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cell_dir / ".cell.lock")):
        previous = read_outcome(cell_dir)
        if previous is not None and previous.get("status") == "done" and _complete(cell_dir, previous):
            from bdcore.report.results import read_results

            return {**previous, "skipped": True, "rows": read_results(cell_dir / str(previous["run_dir"]))}
        attempt = _next_attempt(cell_dir)
        emit = sink or (lambda event: None)
        t0 = time.perf_counter()  # the attempt's time counts from its start event (a new worker's imports included)
        emit({"type": "start", "cell": task.cell, "attempt": attempt, "pid": os.getpid(), "node": socket.gethostname()})
        result = _execute(task, attempt, emit, t0)
        write_text(cell_dir / CELL_JSON, json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
        emit({"type": "end", "cell": task.cell, "status": result["status"]})
        return result


def _complete(cell_dir: Path, outcome: dict[str, Any]) -> bool:
    run_dir = outcome.get("run_dir")
    return bool(run_dir) and (cell_dir / str(run_dir) / "COMPLETE").is_file()


def _next_attempt(cell_dir: Path) -> int:
    path = cell_dir / "attempts"
    try:
        n = int(path.read_text().strip() or 0) + 1
    except (OSError, ValueError):
        n = 1
    write_text(path, f"{n}\n")
    return n


def _execute(task: CellTask, attempt: int, emit: Sink, t0: float) -> dict[str, Any]:
    from bdcore.engine.run import execute, latest_run_dir
    from bdcore.spec.structure import load_spec

    cell_dir = Path(task.cell_dir)
    base = {"cell": task.cell, "attempt": attempt, "node": socket.gethostname(), "pid": os.getpid()}
    store = None
    run_dir: Path | None = None
    identity = CellIdentity(task.sweep, task.sweep_dir, task.cell, task.config)
    try:
        with running(identity), torch_threads(task.threads):
            host = _host(task.host_factory)
            loaded = load_spec(task.spec, host.registry, overrides=task.overrides)
            store = make_store(task.store, task.mirror, task.lock_dir)
            previous = latest_run_dir(cell_dir, loaded.name)
            resume = previous is not None and not (previous / "COMPLETE").exists()
            result = execute(
                loaded,
                host,
                out_root=cell_dir,
                resume=resume,
                console=_CellProgress(task.cell, emit),
                group=Path(task.sweep_dir).name,
                store=store,
                tracking_root=Path(task.sweep_dir),
            )
        run_dir = result.run_dir
        stages = _manifest(run_dir).get("stages", {})
        return outcome(
            base,
            "done",
            time.perf_counter() - t0,
            run_dir=run_dir.relative_to(cell_dir).as_posix(),
            stages=stages,
            reused=list(result.reused),
            waited=list(store.waited),
            resumed=resume,
            rows=list(result.rows),
        )
    except BdcoreError as exc:
        return _failed(base, t0, cell_dir, task, exc, exc.exit_code)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed cell is recorded, the sweep goes on
        return _failed(base, t0, cell_dir, task, exc, 1)
    finally:
        if store is not None:
            store.release_all()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Compute with ``n`` intra-op threads, then restore the caller's count.

    A float reduction split over another number of threads sums in another order, so the same cell
    would differ in its last bits between the local executor (the driver's threads) and a Ray worker
    (``OMP_NUM_THREADS`` = the task's CPUs). Pinning the count makes every executor give the same numbers.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _failed(
    base: dict[str, Any], t0: float, cell_dir: Path, task: CellTask, exc: BaseException, code: int
) -> dict[str, Any]:
    from bdcore.engine.run import latest_run_dir

    name = _run_name(task)
    run_dir = latest_run_dir(cell_dir, name) if name else None
    return outcome(
        base,
        "failed",
        time.perf_counter() - t0,
        run_dir=run_dir.relative_to(cell_dir).as_posix() if run_dir else None,
        error=f"{exc}" if isinstance(exc, BdcoreError) else f"{type(exc).__name__}: {exc}",
        error_class=type(exc).__name__,
        exit_code=code,
    )


def _run_name(task: CellTask) -> str | None:
    """The cell's ``run.name`` (the last ``run.name=`` override)."""
    from bdcore.spec.overrides import parse_value

    names = [o.partition("=")[2] for o in task.overrides if o.partition("=")[0].strip() == "run.name"]
    return str(parse_value(names[-1])) if names else None


def outcome(base: dict[str, Any], status: str, seconds: float, **fields: Any) -> dict[str, Any]:
    """A cell's outcome: ``cell``, ``status`` (``done`` / ``failed``), ``seconds``, ``run_dir``
    (relative to the cell folder), ``stages`` (stage → key), ``reused`` (stages loaded from the
    store), ``waited`` (stages it waited for while another worker computed them), ``error``, ``error_class``, ``exit_code`` (1 run failed, 2 bad spec, 3 plugin), ``attempt``,
    and for a finished cell its result ``rows`` (sent back to the driver, so the sweep folder needs no
    file system shared with the workers to aggregate them)."""
    record = {
        **base,
        "status": status,
        "seconds": round(seconds, 3),
        "run_dir": None,
        "stages": {},
        "reused": [],
        "error": None,
        "error_class": None,
        "exit_code": 0 if status == "done" else 1,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    record.update(fields)
    return record


def _manifest(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class _CellProgress(ObserverBase):
    """The cell's console observer: sends the driver at most two progress events a second per stage
    (the run's own ``run.log`` still gets every line)."""

    def __init__(self, cell: str, emit: Sink) -> None:
        self.cell = cell
        self.emit = emit
        self.last: dict[str, float] = {}

    def on_stage_start(self, event: StageStarted) -> None:
        self.last[event.stage] = 0.0

    def on_progress(self, event: Progress) -> None:
        now = time.monotonic()
        total = event.total or 0
        if event.done < total and now - self.last.get(event.stage, 0.0) < 0.5:
            return
        self.last[event.stage] = now
        loss = event.scalars.get("loss") if event.scalars else None
        self.emit(
            {
                "type": "progress",
                "cell": self.cell,
                "stage": event.stage,
                "step": event.done,
                "total": total,
                "loss": loss,
            }
        )
