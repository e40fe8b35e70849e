"""Running a spec end to end: run folder, manifest, stages, results, report."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from bdcore.data.images import save_png
from bdcore.engine.runner import Runner, RunResult, resolve_device
from bdcore.engine.store import StageStore
from bdcore.errors import UsageError
from bdcore.io.atomic import write_text
from bdcore.plugins import PluginHost
from bdcore.report.html import write_report
from bdcore.report.manifest import build_manifest, write_manifest, write_resolved_spec
from bdcore.report.plots import plot_detections, plot_history, plot_metric_curves, plot_sweeps
from bdcore.report.results import write_results
from bdcore.spec.structure import LoadedSpec

log = logging.getLogger("bdcore")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def new_run_dir(out_root: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out_root / f"{_slug(name)}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
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
    progress: Any = None,
    store: StageStore | None = None,
) -> RunResult:
    """Run ``loaded`` and write every output into a run folder under ``out_root``.

    ``store``: where finished stages are kept and looked up (default ``out_root/.stages``); a sweep
    passes one stage store shared by all its cells (:mod:`bdcore.sweep.store`).
    """
    host.require(loaded.spec.run.requires)
    out_root.mkdir(parents=True, exist_ok=True)
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
    write_manifest(run_dir, build_manifest(loaded, host, device, "running"))
    runner = Runner(loaded, host, out_root=out_root, run_dir=run_dir, resume=resume, progress=progress, store=store)
    try:
        result = runner.run()
    except BaseException as exc:
        write_manifest(
            run_dir, build_manifest(loaded, host, device, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        )
        raise
    finalize(runner, host)
    return result


def finalize(runner: Runner, host: PluginHost) -> None:
    run_dir, rows = runner.run_dir, runner.rows
    write_results(run_dir, rows)
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    plots: list[str] = []
    histories = {k: runner.artifacts.get(f"{k}_history", []) for k in ("clean", "attack")}
    if plot_history(histories, plots_dir / "training.png"):
        plots.append("plots/training.png")
    plots += [str(p.relative_to(run_dir)) for p in plot_sweeps(rows, plots_dir)]
    plots += [str(p.relative_to(run_dir)) for p in plot_metric_curves(rows, plots_dir)]
    plots += [str(p.relative_to(run_dir)) for p in plot_detections(runner.artifacts.get("detections", {}), plots_dir)]
    grid_files: dict[str, list[str]] = {}
    grid = runner.artifacts.get("grid")
    if grid is not None and grid.columns:
        gdir = run_dir / "grid"
        gdir.mkdir(exist_ok=True)
        used: set[str] = set()
        for col, imgs in grid.columns.items():
            stem, k = _slug(col), 2
            while stem in used:  # distinct labels that slug alike ("a b", "a-b") must not share files
                stem, k = f"{_slug(col)}-{k}", k + 1
            used.add(stem)
            names = []
            for i, img in enumerate(imgs):
                name = f"grid/{stem}-{i}.png"
                save_png(img, run_dir / name)
                names.append(name)
            grid_files[col] = names
    manifest = build_manifest(
        runner.loaded,
        host,
        runner.device,
        "complete",
        {"stages": runner.keys, "stage_seconds": runner.seconds, "reused": runner.reused},
    )
    write_manifest(run_dir, manifest)
    write_report(
        run_dir, title=f"bdcore run: {runner.loaded.name}", rows=rows, manifest=manifest, grid=grid_files, plots=plots
    )
    write_text(run_dir / "COMPLETE", "")
