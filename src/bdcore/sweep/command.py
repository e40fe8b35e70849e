"""The ``bdcore sweep`` command and the sweep parts of ``bdcore check`` and ``bdcore report``
(``bdcore.cli`` only wires the options to these)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from bdcore.errors import UsageError


def sweep_command(
    spec: Path,
    *,
    executor: str,
    address: str | None,
    jobs: int | None,
    resume: bool,
    dry_run: bool,
    out: Path | None,
    overrides: tuple[str, ...],
    quiet: bool,
) -> int:
    """``bdcore sweep``: exit 0 when every cell finished, 1 when one failed, 130 on Ctrl-C."""
    import click

    from bdcore.cli import _console, _setup_logging
    from bdcore.sweep import cell as cell_mod
    from bdcore.sweep.driver import LineProgress, SweepOptions, interactive, run_sweep

    _setup_logging(True)  # per-stage messages are in each cell's run.log; the sweep prints one line per cell
    argv = [Path(sys.argv[0]).name if sys.argv else "bdcore", *sys.argv[1:]]
    opts = SweepOptions(
        executor=executor,
        address=address,
        jobs=jobs,
        resume=resume,
        dry_run=dry_run,
        out=out,
        overrides=overrides,
        host_factory=cell_mod.default_host,
        echo=click.echo,
        command=shlex.join(argv) if argv[0] == "bdcore" else None,
    )
    display = LineProgress() if interactive() and not quiet and not dry_run else None
    opts.progress = display
    try:
        if display is not None:
            with display:
                result = run_sweep(spec, opts)
        else:
            result = run_sweep(spec, opts)
    except KeyboardInterrupt:
        _console().print("bdcore: interrupted; finished cells and stages are kept (bdcore sweep --resume continues)")
        return 130
    if result.table is not None and not quiet:
        _print_table(result.table)
    return result.exit_code


def _print_table(pivot: Any) -> None:
    """The table as Markdown on stdout (plain text: never truncated to the terminal's width)."""
    import click

    from bdcore.sweep.aggregate import render_markdown

    click.echo(render_markdown(pivot))


def check_spec(host: Any, spec: Path, *, check_paths: bool, overrides: tuple[str, ...]) -> tuple[Any, str]:
    """``bdcore check`` of one file: its loaded spec and a note; a spec with a ``[sweep]`` table is
    checked cell by cell (every problem of every cell at once) and the note counts the cells."""
    from bdcore.spec.structure import load_spec
    from bdcore.sweep.load import has_sweep, load_sweep

    if not has_sweep(spec):
        return load_spec(spec, host.registry, check_paths=check_paths, overrides=overrides), ""
    sweep = load_sweep(spec, host.registry, overrides=overrides, check_paths=check_paths)
    return sweep.specs[0], f", a grid of {len(sweep.grid.cells)} cells"


def is_sweep_dir(path: Path) -> bool:
    from bdcore.sweep.driver import SWEEP_JSON

    return (path / SWEEP_JSON).is_file()


def report_command(sweep_dir: Path, *, models: tuple[str, ...], metrics: tuple[str, ...]) -> int:
    """``bdcore report SWEEP_DIR``: rebuild the sweep's results, table and HTML report and print the
    table; ``--model`` / ``--metric`` replace ``[sweep.table] models`` / ``values`` for this report."""
    import json

    import click

    from bdcore.sweep.aggregate import write_outputs
    from bdcore.sweep.driver import SWEEP_JSON

    table = dict(json.loads((sweep_dir / SWEEP_JSON).read_text()).get("table", {}))
    if models:
        table["models"] = list(models)
    if metrics:
        table["values"] = list(metrics)
    pivot = write_outputs(sweep_dir, table=table)
    if not pivot.cells:
        which = " matching --model/--metric" if models or metrics else ""
        raise UsageError(f"{sweep_dir}: no finished cell has results{which}")
    _print_table(pivot)
    click.echo(f"report: {sweep_dir / 'report.html'}")
    return 0
