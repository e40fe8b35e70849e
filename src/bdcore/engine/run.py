"""Running a spec end to end: run folder, manifest, stages, results, report."""

from __future__ import annotations

import errno
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from bdcore.context import Context
from bdcore.engine.runner import Runner, RunResult, resolve_device
from bdcore.engine.store import StageStore
from bdcore.errors import OutputError, UsageError
from bdcore.io.atomic import FULL, make_dir, output_error, write_text, writing
from bdcore.observe.events import RunEnded, RunStarted
from bdcore.observe.group import run_group
from bdcore.observe.progress import run_bus
from bdcore.observe.select import build_observers
from bdcore.plugins import PluginHost
from bdcore.report.grid import save_grid
from bdcore.report.html import write_report
from bdcore.report.manifest import build_manifest, resolved_spec, write_manifest, write_resolved_spec
from bdcore.report.plots import plot_detections, plot_history, plot_metric_curves, plot_sweeps
from bdcore.report.results import write_results
from bdcore.spec.structure import LoadedSpec, Resolved
from bdcore.text import exception_text

log = logging.getLogger("bdcore")


def _slug(name: str) -> str:
    """A file-name-safe form of a name, at most 100 characters (file systems allow 255 bytes)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:100].strip("-") or "run"


def new_run_dir(out_root: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out_root / f"{_slug(name)}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    with writing(path):
        path.mkdir(parents=True)
    return path


def latest_run_dir(out_root: Path, name: str) -> Path | None:
    prefix = f"{_slug(name)}-"
    found = sorted(
        (
            p
            for p in out_root.glob(prefix + "*")
            if p.is_dir() and re.fullmatch(r"\d{8}-\d{6}(-\d+)?", p.name[len(prefix) :])
        ),
        key=lambda p: p.stat().st_mtime,
    )
    return found[-1] if found else None


def _overrides_of(run_dir: Path) -> list[str] | None:
    """The ``--set`` values recorded in a run folder's manifest (None: no readable manifest)."""
    try:
        return list(json.loads((run_dir / "manifest.json").read_text()).get("overrides", []))
    except (OSError, ValueError):
        return None


def execute(
    loaded: LoadedSpec,
    host: PluginHost,
    *,
    out_root: Path,
    resume: bool = False,
    console: Any = None,
    group: str | None = None,
    store: StageStore | None = None,
    tracking_root: Path | None = None,
) -> RunResult:
    """Run ``loaded`` and write every output into a run folder under ``out_root``.

    ``console``: the observer that shows progress and messages to the user (the CLI passes
    rich bars on a terminal); default: plain lines through the ``bdcore`` logger.
    ``group``: the group the run belongs to in the trackers (a sweep's name; default
    ``$BDCORE_RUN_GROUP``, see :mod:`bdcore.observe.group`).
    ``store``: where finished stages are kept and looked up (default ``out_root/.stages``); a sweep
    passes one stage store shared by all its cells (:mod:`bdcore.sweep.store`).
    ``tracking_root``: where the trackers keep their default stores (default ``out_root``; a sweep
    passes its folder, so its cells share one TensorBoard folder and one MLflow store).
    """
    host.require(loaded.spec.run.requires)
    spec_dir = loaded.file.parent.resolve()

    def observer_ctx(r: Resolved) -> Context:
        return Context(
            seed=loaded.spec.run.seed,
            spec_dir=spec_dir,
            registry=host.registry,
            component=f"observer:{r.label}",
            options={"out_root": out_root},
        )

    # before anything is written: a tracker whose package is missing exits 3 here
    trackers = build_observers(loaded.observers, observer_ctx)
    make_dir(out_root)
    run_dir = None
    if resume:
        run_dir = latest_run_dir(out_root, loaded.name)
        if run_dir is None:
            raise UsageError(f"--resume: no earlier run of {loaded.name!r} under {out_root}")
        before = _overrides_of(run_dir)
        if before is not None and before != list(loaded.overrides):
            raise UsageError(
                f"--resume: the latest run of {loaded.name!r} ({run_dir}) was made with --set {before or '(none)'}, "
                f"not {list(loaded.overrides) or '(none)'}; pass the same --set values "
                "(or give each variant its own --set run.name=...)"
            )
        log.info("resuming %s", run_dir)
    run_dir = run_dir or new_run_dir(out_root, loaded.name)
    device = resolve_device(loaded.spec.run.device)
    write_resolved_spec(run_dir, loaded)
    observing = {"observers": [label for label, _ in trackers]}
    manifest = build_manifest(loaded, host, device, "running", observing)
    write_manifest(run_dir, manifest)
    events = run_bus(run_dir, loaded.spec.run, console, trackers)
    t0 = time.perf_counter()
    runner: Runner | None = None
    reported: dict[str, Any] = {}
    try:
        events.emit(
            RunStarted(
                name=loaded.name,
                run_dir=run_dir,
                out_root=out_root,
                spec=resolved_spec(loaded),
                manifest=manifest,
                group=run_group(group),
                resumed=resume,
                tracking_root=tracking_root or out_root,
            )
        )
        runner = Runner(loaded, host, out_root=out_root, run_dir=run_dir, resume=resume, events=events, store=store)
        result = runner.run()
        reported = events.failures()
        finalize(runner, host, {**observing, **({"observer_failures": reported} if reported else {})})
        events.emit(RunEnded("complete", run_dir, time.perf_counter() - t0, tuple(runner.rows)))
    except BaseException as exc:
        output = _as_output_error(exc, run_dir)
        error = exception_text(output or exc)
        reported = events.failures()
        try:  # the folder may be what failed: never let this hide the real error
            extra = {"error": error, **observing, **({"observer_failures": reported} if reported else {})}
            write_manifest(run_dir, build_manifest(loaded, host, device, "failed", extra))
        except Exception as again:  # noqa: BLE001 - reported in the log, the first error wins
            log.warning("could not record the failure in %s: %s", run_dir / "manifest.json", exception_text(again))
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        rows = tuple(runner.rows) if runner is not None else ()
        events.emit(RunEnded(status, run_dir, time.perf_counter() - t0, rows, error))
        if output is not None:
            raise output from exc
        raise
    finally:
        events.close()
        if events.failures() != reported:  # an observer failed at the very end: the manifest says so too
            try:
                write_manifest(run_dir, {**_read_manifest(run_dir), "observer_failures": events.failures()})
            except (OSError, ValueError) as again:
                log.warning("could not record observer failures in %s: %s", run_dir, exception_text(again))
    return result


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "manifest.json").read_text()))


def _as_output_error(exc: BaseException, run_dir: Path) -> OutputError | None:
    """A full disk or an unwritable folder met anywhere (plots, images, a component's own files)
    as an :class:`OutputError` naming the path (or the run folder when the OS names none)."""
    if isinstance(exc, OSError) and not isinstance(exc, OutputError) and exc.errno in FULL | {errno.EROFS}:
        return output_error(exc, run_dir)
    return None


def finalize(runner: Runner, host: PluginHost, extra: dict[str, Any] | None = None) -> None:
    run_dir, rows = runner.run_dir, runner.rows
    write_results(run_dir, rows)
    plots_dir = make_dir(run_dir / "plots")
    plots: list[str] = []
    histories = {k: runner.artifacts.get(f"{k}_history", []) for k in ("clean", "attack")}
    if plot_history(histories, plots_dir / "training.png"):
        plots.append("plots/training.png")
    plots += [str(p.relative_to(run_dir)) for p in plot_sweeps(rows, plots_dir)]
    plots += [str(p.relative_to(run_dir)) for p in plot_metric_curves(rows, plots_dir)]
    plots += [str(p.relative_to(run_dir)) for p in plot_detections(runner.artifacts.get("detections", {}), plots_dir)]
    grid = save_grid(
        run_dir,
        runner.artifacts.get("grids", {}),
        requested=runner.spec.eval.grid,
        attack=runner.loaded.attack is not None,
        target_description=getattr(runner.attack_obj, "target_description", None),
    )
    manifest = build_manifest(
        runner.loaded,
        host,
        runner.device,
        "complete",
        {"stages": runner.keys, "stage_seconds": runner.seconds, "reused": runner.reused, **(extra or {})},
    )
    write_manifest(run_dir, manifest)
    write_report(
        run_dir,
        title=f"bdcore run: {runner.loaded.name}",
        rows=rows,
        manifest=manifest,
        grid=grid,
        plots=plots,
        test_set=runner.artifacts.get("test_set"),
    )
    write_text(run_dir / "COMPLETE", "")
