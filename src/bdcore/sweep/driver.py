"""``bdcore sweep``: plan the grid, run its cells on an executor, record them, aggregate.

The sweep folder ``OUT/NAME-YYYYmmdd-HHMMSS/`` holds ``sweep.json`` (the grid, the plan, every
cell's status, seconds (over all its attempts, kept current while it runs; ``attempt_seconds``: the
last attempt's), trained and reused stages, error and exit code; rewritten atomically after every
change), ``cells/<cell>/`` (the cell's ordinary run folder, its ``cell.json`` and the
``results.jsonl`` the driver received) and the aggregated outputs (:mod:`bdcore.sweep.aggregate`).

Faults: a failed cell is recorded and the others go on (the sweep exits 1 at the end); Ctrl-C
stops the running cells, marks them ``interrupted`` and exits 130; ``--resume`` continues the
latest sweep folder of this spec: finished cells are skipped, the others run again, resuming
their run folders from the last checkpoint.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from bdcore._version import __version__
from bdcore.errors import Terminated, UsageError
from bdcore.io.atomic import write_text
from bdcore.sweep.cell import CellTask, _host, default_host, make_store
from bdcore.sweep.executors import Executor, make_executor
from bdcore.sweep.grid import slug
from bdcore.sweep.load import LoadedSweep, load_sweep
from bdcore.sweep.plan import Plan, make_plan
from bdcore.sweep.store import is_url
from bdcore.text import exception_text

log = logging.getLogger("bdcore")

SWEEP_JSON = "sweep.json"
#: Cell statuses in sweep.json.
PENDING, RUNNING, DONE, FAILED, INTERRUPTED = "pending", "running", "done", "failed", "interrupted"


@attrs.define
class SweepOptions:
    """What ``bdcore sweep`` was asked: the CLI options, plus where plugins come from.

    ``host_factory``: a module-level zero-argument callable returning the plugin host (default:
    every installed plugin, as ``bdcore run``); workers call it too, so it must be importable there.
    ``echo``: where status lines go. ``command``: the command line, for exported results files.
    """

    executor: str = "local"
    address: str | None = None
    jobs: int | None = None
    resume: bool = False
    dry_run: bool = False
    out: Path | None = None
    overrides: tuple[str, ...] = ()
    host_factory: Callable[[], Any] = default_host
    echo: Callable[[str], None] = print
    command: str | None = None
    progress: Any = None


@attrs.define
class SweepResult:
    """A finished (or dry) sweep: its folder, cells by status, the plan and the exit code."""

    sweep_dir: Path | None
    plan: Plan
    statuses: dict[str, str]
    exit_code: int
    table: Any = None


def run_sweep(spec: Path, opts: SweepOptions) -> SweepResult:
    """Load, plan and run the sweep of ``spec`` (see the module docs).

    Raises:
        SpecError: the spec or a cell is invalid (exit code 2); nothing has run.
        UsageError: bad options (``--resume`` with nothing to resume, a bad ``--address``).
        KeyboardInterrupt: after the running cells were stopped and recorded.
    """
    host = _host(opts.host_factory)
    sweep = load_sweep(spec, host.registry, overrides=opts.overrides)
    host.require(sweep.base.spec.run.requires)
    out_root = (opts.out or sweep.base.spec.run.out or Path("runs")).resolve()
    location, mirror = store_location(sweep, out_root)
    store = make_store(location, mirror, None, create=not opts.dry_run)
    plan = make_plan([(c.name, s) for c, s in sweep.cells()], done=store.exists)
    if opts.dry_run:
        for line in describe_plan(sweep, plan, location):
            opts.echo(line)
        return SweepResult(None, plan, {c.name: PENDING for c in sweep.grid.cells}, 0)
    sweep_dir = _sweep_dir(out_root, sweep, opts)
    info = _info(sweep_dir, sweep, plan, opts, location)
    tasks = {
        cell.name: CellTask(
            spec=str(sweep.file.resolve()),
            overrides=(*sweep.overrides, *cell.overrides),
            cell=cell.name,
            config=cell.config,
            cell_dir=str(sweep_dir / "cells" / cell.name),
            store=location,
            sweep=sweep.name,
            sweep_dir=str(sweep_dir),
            host_factory=opts.host_factory,
            mirror=mirror,
            threads=max(1, int(sweep.section.resources.cpus)),
        )
        for cell in sweep.grid.cells
    }
    section = sweep.section
    executor = make_executor(
        opts.executor,
        jobs=opts.jobs,
        address=opts.address,
        cpus=section.resources.cpus,
        gpus=section.resources.gpus,
        max_retries=section.max_retries,
    )
    todo = [c for c in info["cells"] if c["status"] != DONE]
    skipped = len(info["cells"]) - len(todo)
    opts.echo(
        f"sweep {sweep.name}: {len(info['cells'])} cells"
        + (f" ({skipped} finished before, {len(todo)} to run)" if skipped else "")
        + f", {plan.trainings} trainings for {plan.computations} stage uses; folder {sweep_dir}"
    )
    # the sweep's wall time is written with every save of sweep.json (and at least every SAVE_EVERY
    # seconds), not only at the end: a driver killed outright (kill -9, a machine taken back) keeps the
    # time it ran for the export's header
    before, t0 = info.get("seconds", 0.0), time.perf_counter()

    def clock() -> None:
        info["seconds"] = round(before + time.perf_counter() - t0, 3)

    try:
        _loop(executor, tasks, info, plan, store, section.shared_first, sweep_dir, opts, clock)
    except KeyboardInterrupt:
        for c in info["cells"]:
            if c["status"] == RUNNING:
                c["status"] = INTERRUPTED
        info["status"] = INTERRUPTED
        clock()
        _save(sweep_dir, info)
        _write_partial(sweep, sweep_dir, info, opts)
        raise
    clock()
    statuses = {c["name"]: c["status"] for c in info["cells"]}
    failed = [c for c in info["cells"] if c["status"] != DONE]
    info["status"] = "complete" if not failed else FAILED
    _save(sweep_dir, info)
    from bdcore.sweep.aggregate import write_outputs

    export = _export_path(sweep)
    table = write_outputs(sweep_dir, export=export)
    done = len(info["cells"]) - len(failed)
    opts.echo(f"sweep {sweep.name}: {done} of {len(info['cells'])} cells done in {info['seconds']:.1f} s")
    for c in failed:
        opts.echo(f"  {c['name']}: {c['status']}: {c.get('error') or ''}")
    opts.echo(f"sweep folder: {sweep_dir}\nreport: {sweep_dir / 'report.html'}")
    if export is not None:
        opts.echo(f"exported: {export.parent / (export.name + '.md')}, {export.parent / (export.name + '.csv')}")
    return SweepResult(sweep_dir, plan, statuses, 0 if not failed else 1, table)


def _write_partial(sweep: LoadedSweep, sweep_dir: Path, info: dict[str, Any], opts: SweepOptions) -> None:
    """After Ctrl-C: the table of the cells that finished (headed "N of M cells"), so an interrupted
    sweep loses no finished work; ``--resume`` rewrites it whole. A failure here must not hide the
    interrupt, so it is reported and swallowed."""
    if not any(c["status"] == DONE for c in info["cells"]):
        return
    from bdcore.sweep.aggregate import write_outputs

    try:
        write_outputs(sweep_dir, export=_export_path(sweep))
    except Exception as exc:  # noqa: BLE001 - the interrupt is what the user must see
        opts.echo(f"could not write the partial table: {exception_text(exc)}")


def store_location(sweep: LoadedSweep, out_root: Path) -> tuple[str, str | None]:
    """The stage store (``[sweep] store``, else ``OUT/.stages`` as for ``bdcore run``) and, for an
    fsspec URL, the local mirror (``OUT/.stages``)."""
    given = sweep.section.store
    if given is None:
        return str(out_root / ".stages"), None
    if is_url(given):
        return given, str(out_root / ".stages")
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = (sweep.file.parent / path).resolve()
    return str(path), None


def _export_path(sweep: LoadedSweep) -> Path | None:
    export = sweep.section.table.export
    if export is None:
        return None
    path = Path(export).expanduser()
    return path if path.is_absolute() else (sweep.file.parent / path).resolve()


def describe_plan(sweep: LoadedSweep, plan: Plan, location: str) -> list[str]:
    """``--dry-run``: the cells, the stages they share (by key) and the trainings needed."""
    lines = [f"sweep {sweep.name}: {len(sweep.grid.cells)} cells ({sweep.grid.excluded} excluded)"]
    for cell, cp in zip(sweep.grid.cells, plan.cells, strict=True):
        stages = ", ".join(f"{label} {key}" for label, (_, key) in cp.stages.items()) or "no stored stages"
        lines.append(f"  {cell.name}: {stages}")
        sets = " ".join(f"--set {shlex.quote(o)}" for o in (*sweep.overrides, *cell.overrides))
        lines.append(f"    bdcore run {shlex.quote(str(sweep.file))} {sets}")
    shared = plan.shared
    lines.append(f"shared stages ({len(shared)}):" if shared else "shared stages: none")
    for (stage, key), cells in shared.items():
        state = " (in the store)" if (stage, key) in plan.done else ""
        lines.append(f"  {stage} {key}{state}: {len(cells)} cells ({', '.join(cells)})")
    lines.append(
        f"trainings needed: {plan.trainings} ({plan.computations} stage uses, {len(plan.users)} distinct, "
        f"{len(plan.done)} already in the store {location})"
    )
    return lines


# -- the sweep folder ---------------------------------------------------------------------------

_STAMP = re.compile(r"\d{8}-\d{6}(-\d+)?")


def _sweep_dir(out_root: Path, sweep: LoadedSweep, opts: SweepOptions) -> Path:
    name = slug(sweep.name)
    if opts.resume:
        found = latest_sweep(out_root, sweep.name)
        if found is None:
            raise UsageError(f"--resume: no earlier sweep {sweep.name!r} under {out_root}")
        before = json.loads((found / SWEEP_JSON).read_text()).get("overrides", [])
        if before != list(opts.overrides):
            raise UsageError(
                f"--resume: the latest sweep {sweep.name!r} ({found}) was made with --set {before or '(none)'}, "
                f"not {list(opts.overrides) or '(none)'}; pass the same --set values"
            )
        return found
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = out_root / f"{name}-{stamp}", 1
    while path.exists():
        n += 1
        path = out_root / f"{name}-{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def latest_sweep(out_root: Path, name: str) -> Path | None:
    """The most recent sweep folder of ``name`` under ``out_root`` (one holding a ``sweep.json``)."""
    prefix = f"{slug(name)}-"
    found = [
        p for p in out_root.glob(prefix + "*") if (p / SWEEP_JSON).is_file() and _STAMP.fullmatch(p.name[len(prefix) :])
    ]
    return max(found, key=lambda p: p.name) if found else None


def _info(sweep_dir: Path, sweep: LoadedSweep, plan: Plan, opts: SweepOptions, location: str) -> dict[str, Any]:
    """sweep.json's content: fresh, or the earlier one with finished cells kept (``--resume``)."""
    before: dict[str, dict[str, Any]] = {}
    old: dict[str, Any] = {}
    if opts.resume:
        old = json.loads((sweep_dir / SWEEP_JSON).read_text())
        before = {c["name"]: c for c in old.get("cells", [])}
    cells = []
    for cell, cp in zip(sweep.grid.cells, plan.cells, strict=True):
        prev = before.get(cell.name, {})
        finished = prev.get("status") == DONE and (sweep_dir / "cells" / cell.name / "results.jsonl").is_file()
        # an unfinished cell starts over but keeps the time its earlier attempts ran
        record = prev if finished else {k: prev[k] for k in ("seconds",) if prev.get(k)}
        cells.append(
            {
                "name": cell.name,
                "config": cell.config,
                "seed": cell.seed,
                "labels": cell.labels,
                "overrides": list(cell.overrides),
                "planned_stages": {label: key for label, (_, key) in cp.stages.items()},
                "status": DONE if finished else PENDING,
                **{
                    k: v
                    for k, v in record.items()
                    if k not in ("name", "config", "seed", "labels", "overrides", "status")
                },
            }
        )
    section = sweep.section
    info = {
        "bdcore": __version__,
        "name": sweep.name,
        "spec": str(sweep.file.resolve()),
        "overrides": list(opts.overrides),
        # the command a results file cites: the one that started the sweep (a resume's own command, with
        # --resume, fails on a fresh clone: there is no earlier sweep to continue)
        "command": old.get("command") or start_command(opts.command),
        "resumes": old.get("resumes", 0) + 1 if opts.resume else 0,
        "created": old.get("created", time.strftime("%Y-%m-%dT%H:%M:%S")),
        "status": RUNNING,
        "executor": opts.executor,
        "jobs": opts.jobs,
        "address": opts.address,
        "store": location,
        "seconds": old.get("seconds", 0.0),
        "axes": [
            {
                "key": a.key,
                "name": a.name,
                "values": list(a.values),
                "labels": list(a.labels),
                "follows": sweep.grid.follows.get(a.name),
            }
            for a in sweep.grid.axes
        ],
        "seeds": list(sweep.grid.seeds),
        "table": attrs.asdict(section.table),
        "plan": plan.to_json(),
        "cells": cells,
    }
    _save(sweep_dir, info)
    return info


def start_command(command: str | None) -> str | None:
    """``command`` as the start of its sweep: without ``--resume``. For sweeps recorded before
    ``sweep.json`` kept its start command, the resume's own command stands in for it."""
    if command is None:
        return None
    return shlex.join(word for word in shlex.split(command) if word != "--resume")


def _save(sweep_dir: Path, info: dict[str, Any]) -> None:
    write_text(sweep_dir / SWEEP_JSON, json.dumps(info, indent=1, default=str))


# -- the loop -----------------------------------------------------------------------------------

#: seconds between two saves of ``sweep.json`` while no cell starts or ends (its wall time, for a driver
#: that is killed outright)
SAVE_EVERY = 60.0


def _loop(
    executor: Executor,
    tasks: dict[str, CellTask],
    info: dict[str, Any],
    plan: Plan,
    store: Any,
    shared_first: bool,
    sweep_dir: Path,
    opts: SweepOptions,
    clock: Callable[[], None],
) -> None:
    """Runs the pending cells; ``clock`` brings ``info["seconds"]`` up to date before each save, which
    happens on every cell started or finished and at least every :data:`SAVE_EVERY` seconds.

    A cell's ``seconds`` counts all its attempts (:class:`CellTimes`)."""
    records = {c["name"]: c for c in info["cells"]}
    pending = [c["name"] for c in info["cells"] if c["status"] != DONE]
    settled = {c["name"] for c in info["cells"] if c["status"] == DONE}
    finished_stages: set[tuple[str, str]] = set(plan.done)
    leaders = {c.cell: plan.leaders(c.cell) for c in plan.cells}
    total = len(info["cells"])
    display = opts.progress
    times = CellTimes(records)

    def on_event(event: dict[str, Any]) -> None:
        name = str(event.get("cell"))
        # a start event that comes after its cell's result (queues deliver late) starts no clock
        if event.get("type") == "start" and name in records and records[name]["status"] == RUNNING:
            times.started(name)
        if display is not None:
            display.event(event)

    if hasattr(executor, "listener"):  # an executor that runs the cell inside poll(): events as they happen
        executor.listener = on_event
    saved = time.monotonic()

    def save() -> None:
        nonlocal saved
        clock()
        times.tick()
        _save(sweep_dir, info)
        saved = time.monotonic()

    def heartbeat() -> None:
        if time.monotonic() - saved >= SAVE_EVERY:
            save()

    if hasattr(executor, "heartbeat"):  # an executor that runs the cell inside poll()
        executor.heartbeat = heartbeat
    executor.start()
    try:
        while pending or executor.in_flight():
            for name in list(pending):
                cap = executor.capacity
                if cap is not None and len(executor.in_flight()) >= cap:
                    break
                if shared_first and not _ready(leaders[name], settled, finished_stages, store):
                    continue
                executor.submit(tasks[name])
                pending.remove(name)
                records[name]["status"] = RUNNING
                records[name]["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                save()
            finished, events = executor.poll(timeout=0.5)
            heartbeat()
            for event in events:
                on_event(event)
            for name, result in finished:
                _record(records[name], result, sweep_dir / "cells" / name, times.ended(name))
                settled.add(name)
                save()
                n_done = sum(1 for c in info["cells"] if c["status"] in (DONE, FAILED))
                line = _line(records[name], n_done, total)
                if display is not None:
                    display.finished(name, line)
                else:
                    opts.echo(line)
        for event in executor.poll(timeout=0.0)[1]:  # the last events of the last cells
            on_event(event)
    except KeyboardInterrupt as exc:
        times.tick()  # the interrupted cells' time so far, for --resume to add to
        executor.cancel(forward=isinstance(exc, Terminated))
        raise
    finally:
        executor.close()


class CellTimes:
    """Each cell's ``seconds`` over all its attempts, in its ``sweep.json`` record: the time its earlier
    attempts ran (``--resume`` keeps an unfinished cell's), plus, while it runs, the time since its
    worker announced the attempt (its ``start`` event: a cell queued in Ray does not count), and once
    it ends, the attempt's own time as the worker measured it (``attempt_seconds``). :meth:`tick`
    before each save keeps a running cell's current, so a killed driver loses at most one save
    interval of it."""

    def __init__(self, records: dict[str, dict[str, Any]]) -> None:
        self.records = records
        self.running: dict[str, tuple[float, float]] = {}  # cell -> (earlier attempts' seconds, start)

    def started(self, name: str) -> None:
        """An attempt of ``name`` began (a retried one: the attempt before it is counted first)."""
        self.tick()
        self.running[name] = (float(self.records[name].get("seconds") or 0.0), time.monotonic())

    def tick(self) -> None:
        now = time.monotonic()
        for name, (before, t0) in self.running.items():
            self.records[name]["seconds"] = round(before + now - t0, 3)

    def ended(self, name: str) -> float:
        """The seconds of ``name``'s attempts before the one that just ended."""
        before, _ = self.running.pop(name, (float(self.records[name].get("seconds") or 0.0), 0.0))
        return before


def _ready(leaders: dict[tuple[str, str], str], settled: set[str], finished: set[tuple[str, str]], store: Any) -> bool:
    """A cell may start once every stage it shares with an earlier cell (``leaders``: stage → that
    cell) is finished, or that cell is settled (if it failed, this cell computes the stage itself)."""
    for ref, leader in leaders.items():
        if leader in settled or ref in finished:
            continue
        if store.exists(*ref):
            finished.add(ref)
            continue
        return False
    return True


def _record(record: dict[str, Any], result: dict[str, Any], cell_dir: Path, before: float = 0.0) -> None:
    """``record`` updated with a cell's outcome; ``before``: the seconds its earlier attempts ran."""
    rows = result.pop("rows", None)
    if rows is not None:
        cell_dir.mkdir(parents=True, exist_ok=True)
        write_text(cell_dir / "results.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    stages = result.get("stages") or {}
    reused = list(result.get("reused") or [])
    result["trained"] = [s for s in stages if s not in reused and not any(r.startswith(s) for r in reused)]
    record.update({k: v for k, v in result.items() if k not in ("cell",)})
    attempt = float(result.get("seconds") or 0.0)
    record["attempt_seconds"] = attempt
    # a cell found finished by an earlier worker (``skipped``) reports that attempt, already counted in part
    record["seconds"] = round(max(before, attempt) if result.get("skipped") else before + attempt, 3)


def _line(record: dict[str, Any], n: int, total: int) -> str:
    width = len(str(total))
    head = f"[{n:>{width}}/{total}] {record['name']}: {record['status']} in {record.get('seconds') or 0:.1f} s"
    if record["status"] == DONE:
        trained = ", ".join(record.get("trained") or []) or "nothing"
        reused = ", ".join(record.get("reused") or []) or "nothing"
        return f"{head} (trained {trained}; reused {reused})"
    return f"{head}: {record.get('error')} (exit class {record.get('exit_code')})"


class LineProgress:
    """Progress for a terminal: one rich bar per running cell's training stage; finished cells
    are printed above the bars."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from bdcore.cli import _console

        self.bar: Any = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeRemainingColumn(),
            console=_console(),
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> LineProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def event(self, event: dict[str, Any]) -> None:
        cell = str(event.get("cell"))
        if event.get("type") == "progress":
            desc = f"{cell} · {event.get('stage')}"
            loss = event.get("loss")
            fields = {"loss": f"loss {loss:.4g}" if isinstance(loss, float) else ""}
            if cell not in self.tasks:
                self.tasks[cell] = self.bar.add_task(desc, total=event.get("total") or 1, **fields)
            self.bar.update(
                self.tasks[cell], description=desc, total=event.get("total"), completed=event.get("step"), **fields
            )

    def finished(self, cell: str, line: str) -> None:
        task = self.tasks.pop(cell, None)
        if task is not None:
            self.bar.remove_task(task)
        self.bar.console.print(line, markup=False, highlight=False)


def interactive() -> bool:
    return sys.stderr.isatty()
