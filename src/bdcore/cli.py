"""The ``bdcore`` command line.

Exit codes: 0 ok, 1 the run failed, 2 bad spec or usage, 3 a required plugin is
missing, broken or conflicting. No traceback unless ``--traceback`` (or
``BDCORE_RAISE=1``).
"""

from __future__ import annotations

import html
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bdcore._version import __version__
from bdcore.errors import EXIT_RUN_FAILED, BdcoreError, PluginError, SpecError
from bdcore.registry import KINDS

KIND_BY_PLURAL = {plural: kind for kind, plural in KINDS.items()}


def _console(stderr: bool = True) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(exc: BaseException, traceback: bool) -> int:
    if traceback or os.environ.get("BDCORE_RAISE"):
        raise exc
    from rich.markup import escape  # messages name keys like psnr[input,clean_input]: not markup

    console = _console()
    if isinstance(exc, BdcoreError):
        kind = "error" if not isinstance(exc, SpecError) else "invalid spec"
        if isinstance(exc, PluginError):
            kind = "plugin error"
        console.print(f"[bold red]bdcore: {kind}:[/] {escape(str(exc))}", markup=True)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        console.print("bdcore: interrupted; finished stages are kept (bdcore run --resume continues)")
        return 130
    console.print(
        f"[bold red]bdcore: the run failed:[/] {type(exc).__name__}: {escape(str(exc))} (rerun with --traceback for details)"
    )
    return EXIT_RUN_FAILED


def _guard(fn: Callable[..., int]) -> Callable[..., None]:
    def wrapper(*args: Any, traceback: bool = False, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except BaseException as exc:  # noqa: BLE001 - every error gets its exit code
            if isinstance(exc, SystemExit):
                raise
            code = _fail(exc, traceback)
        sys.exit(code)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


_traceback_opt = click.option("--traceback", is_flag=True, help="Show Python tracebacks on errors.")


def _host(strict: bool = False) -> Any:
    from bdcore.plugins import load_plugins

    host = load_plugins()
    if strict and host.failures:
        f = host.failures[0]
        raise PluginError(f'plugin "{f.plugin}" ({f.distribution} {f.version}) failed to load: {f.error}')
    return host


def _setup_logging(quiet: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=_console(), show_path=False, show_time=False, markup=False)],
        force=True,
    )


def _load(host: Any, spec: Path, *, check_paths: bool = True, overrides: tuple[str, ...] = ()) -> Any:
    from bdcore.spec.structure import load_spec

    return load_spec(spec, host.registry, check_paths=check_paths, overrides=overrides)


_set_opt = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec value (repeatable), e.g. --set victim.params.quality=5 --set defense[0].params.quality=50.",
)


def _spec_needs_failed_plugin(host: Any, spec: Path, exc: SpecError) -> PluginError | None:
    """A spec naming a component that only a failed plugin could provide is a plugin problem (exit 3)."""
    if not host.failures:
        return None
    unknown = [i for i in exc.issues if i.path.endswith(".use") and i.message.startswith("unknown")]
    if not unknown or len(unknown) != len(exc.issues):
        return None
    failed = "; ".join(
        f'plugin "{f.plugin}" ({f.distribution} {f.version}) failed to load: {f.error}' for f in host.failures
    )
    names = ", ".join(i.message.split('"')[1] for i in unknown if '"' in i.message)
    return PluginError(f"{spec}: {names} unavailable: {failed}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bdcore")
def main() -> None:
    """bdcore: backdoor attacks and defenses on low-level vision models."""


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option(
    "--out", "out", type=click.Path(path_type=Path), default=None, help="Output root (default: [run] out, else ./runs)."
)
@click.option("--resume", is_flag=True, help="Continue the latest run of this spec from its checkpoints.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and the summary.")
@_set_opt
@_traceback_opt
def run(spec: Path, out: Path | None, resume: bool, quiet: bool, overrides: tuple[str, ...], traceback: bool) -> None:
    """Run an experiment spec."""
    _guard(_run)(spec, out, resume, quiet, overrides, traceback=traceback)


def _run(spec: Path, out: Path | None, resume: bool, quiet: bool, overrides: tuple[str, ...] = ()) -> int:
    from bdcore.engine.run import execute
    from bdcore.report.html import pivot

    _setup_logging(quiet)
    host = _host()
    try:
        loaded = _load(host, spec, overrides=overrides)
    except SpecError as exc:
        raise _spec_needs_failed_plugin(host, spec, exc) or exc from None
    out_root = out or loaded.spec.run.out or Path("runs")
    if loaded.spec.sweep is not None:
        logging.getLogger("bdcore").warning(
            "%s declares a [sweep] grid: bdcore run runs the spec as written; bdcore sweep runs the grid", spec
        )
    with _Progress(quiet) as progress:
        result = execute(loaded, host, out_root=out_root, resume=resume, progress=progress)
    cols, body = pivot(result.rows)
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(loaded.name)}: results")
    table.add_column("model")
    for c in cols:
        table.add_column(escape(c), justify="right")  # psnr[input,clean_input] is a name, not markup
    for model, vals in body:
        table.add_row(escape(model), *(f"{vals[c]:.4g}" if c in vals else "" for c in cols))
    _console(stderr=False).print(table)
    click.echo(f"run folder: {result.run_dir}\nreport: {result.run_dir / 'report.html'}")
    return 0


class _Progress:
    """rich progress bars for training stages (a callable factory the runner calls)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not sys.stderr.isatty()
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"),
                TimeRemainingColumn(),
                console=_console(),
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, label: str, total: int) -> Callable[[int, dict[str, float]], None] | None:
        if self.bar is None:
            return None
        task = self.bar.add_task(label, total=total, loss="")

        def update(step: int, record: dict[str, float]) -> None:
            fields = {"loss": f"loss {record['loss']:.4g}"} if "loss" in record else {}
            self.bar.update(task, completed=step, **fields)

        return update


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where cells run: this machine, or Ray tasks (pip install 'bdcore[ray]').",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="Ray cluster to join: auto, or ray://host:10001 (default: start a local Ray).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Cells at once (local: worker processes, default 1; ray: at most this many in flight).",
)
@click.option(
    "--resume", is_flag=True, help="Continue the latest sweep of this spec: skip finished cells, resume the others."
)
@click.option(
    "--dry-run", is_flag=True, help="Print the cells, the stages they share and the trainings needed; run nothing."
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), default=None, help="Output root (default: [run] out, else ./runs)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no table at the end.")
@_set_opt
@_traceback_opt
def sweep(
    spec: Path,
    executor: str,
    address: str | None,
    jobs: int | None,
    resume: bool,
    dry_run: bool,
    out: Path | None,
    quiet: bool,
    overrides: tuple[str, ...],
    traceback: bool,
) -> None:
    """Run the grid of a spec's [sweep] table (a paper's whole table), locally or on Ray.

    Shared stages are trained once; results are aggregated over seeds (mean ± std).
    """
    from bdcore.sweep.command import sweep_command

    _guard(sweep_command)(
        spec,
        executor=executor,
        address=address,
        jobs=jobs,
        resume=resume,
        dry_run=dry_run,
        out=out,
        overrides=overrides,
        quiet=quiet,
        traceback=traceback,
    )


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--no-paths",
    is_flag=True,
    help="Do not require input paths (data, weights) to exist: for specs whose files live on another machine.",
)
@_set_opt
@_traceback_opt
def check(specs: tuple[Path, ...], no_paths: bool, overrides: tuple[str, ...], traceback: bool) -> None:
    """Validate specs without running them (every problem, by file and key)."""
    _guard(_check)(specs, check_paths=not no_paths, overrides=overrides, traceback=traceback)


def _check(specs: tuple[Path, ...], check_paths: bool = True, overrides: tuple[str, ...] = ()) -> int:
    host = _host()
    worst = 0
    console = _console()
    from rich.markup import escape

    from bdcore.sweep.command import check_spec

    for spec in specs:
        try:
            loaded, note = check_spec(host, spec, check_paths=check_paths, overrides=overrides)
            problems = host.check_requires(loaded.spec.run.requires)
            if problems:
                raise PluginError(f"{spec}: run.requires: " + "; ".join(problems))
        except SpecError as exc:
            err = _spec_needs_failed_plugin(host, spec, exc) or exc
            text = escape(str(err))  # messages name TOML tables like [sweep]: not markup
            console.print(f"[red]{text}[/]" if not isinstance(err, SpecError) else text, markup=True)
            worst = max(worst, err.exit_code)
            continue
        except PluginError as exc:
            console.print(str(exc))
            worst = max(worst, exc.exit_code)
            continue
        click.echo(f"{spec}: ok ({len(loaded.components())} components{note})")
    return worst


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Include bdcore's built-ins.")
@click.option("--strict-plugins", is_flag=True, help="Exit 3 if any plugin failed to load.")
@_traceback_opt
def plugins(as_json: bool, show_all: bool, strict_plugins: bool, traceback: bool) -> None:
    """List installed plugins, what they register, and plugins that failed to load."""
    _guard(_plugins)(as_json, show_all, strict_plugins, traceback=traceback)


def _plugins(as_json: bool, show_all: bool, strict: bool) -> int:
    host = _host()
    data = host.describe()
    if not show_all:
        data["plugins"] = [p for p in data["plugins"] if not p["builtin"]]
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for p in data["plugins"]:
            comps = "; ".join(f"{k}: {', '.join(v)}" for k, v in p["components"].items())
            click.echo(
                f"{p['plugin']} ({p['distribution']} {p['version']}){' [builtin]' if p['builtin'] else ''}: {comps}"
            )
        if not data["plugins"]:
            click.echo("no plugins installed (bdcore plugins --all shows the built-ins)")
        for f in data["failed"]:
            click.echo(f"FAILED to load: {f['plugin']} ({f['distribution']} {f['version']}): {f['error']}")
    return 3 if (strict and host.failures) else 0


@main.command(name="list")
@click.argument("kind", type=click.Choice(sorted(KIND_BY_PLURAL)))
@click.option("--json", "as_json", is_flag=True)
@_traceback_opt
def list_cmd(kind: str, as_json: bool, traceback: bool) -> None:
    """List the components of one kind: name, summary, paper, distribution."""
    _guard(_list)(kind, as_json, traceback=traceback)


def _list(kind: str, as_json: bool) -> int:
    host = _host()
    comps = host.registry.of_kind(KIND_BY_PLURAL[kind])
    if as_json:
        click.echo(json.dumps([c.describe() for c in comps], indent=2))
        return 0
    from rich.table import Table

    table = Table(title=kind)
    for col in ("name", "summary", "paper", "distribution"):
        table.add_column(col)
    for c in comps:
        table.add_row(c.name, c.summary, c.paper or "", f"{c.provenance.distribution} {c.provenance.version}")
    _console(stderr=False).print(table)
    return 0


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="Write the comparison as HTML here.")
@click.option(
    "--plot",
    "plots",
    multiple=True,
    metavar="X:Y",
    help="Plot metric Y against metric X across the runs (needs --out), e.g. --plot bpp:psnr for RD curves.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="Keep only these models (clean-victim, attacked, a defense label; a defense keeps all its sweep settings).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="Keep only these metrics' columns, in this order (e.g. --metric asfiba-asr --metric stealth_psnr).",
)
@_traceback_opt
def report(
    run_dirs: tuple[Path, ...],
    out: Path | None,
    plots: tuple[str, ...],
    models: tuple[str, ...],
    metrics: tuple[str, ...],
    traceback: bool,
) -> None:
    """Compare finished runs in one table (and rebuild it as HTML with --out)."""
    _guard(_report)(run_dirs, out, plots, models, metrics, traceback=traceback)


def _report(
    run_dirs: tuple[Path, ...],
    out: Path | None,
    plots: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
    metrics: tuple[str, ...] = (),
) -> int:
    from bdcore.errors import UsageError
    from bdcore.report.compare import compare_runs, plot_pairs
    from bdcore.sweep.command import is_sweep_dir, report_command

    if any(is_sweep_dir(d) for d in run_dirs):
        if len(run_dirs) > 1 or out is not None or plots:
            raise UsageError("a sweep folder is reported alone, without --out or --plot (its report.html is rebuilt)")
        return report_command(run_dirs[0], models=models, metrics=metrics)
    for d in run_dirs:
        if not (d / "results.jsonl").is_file() and not (d / "results.partial.jsonl").is_file():
            raise UsageError(f"{d}: not a bdcore run folder (no results.jsonl)")
    pairs = []
    for spec in plots:
        x, sep, y = spec.partition(":")
        if not sep or not x or not y:
            raise UsageError(f"--plot {spec}: expected X:Y, two metric names (e.g. bpp:psnr)")
        pairs.append((x, y))
    if pairs and out is None:
        raise UsageError("--plot needs --out (the plots are written next to the HTML page)")
    table, html_text = compare_runs(list(run_dirs), models=models, metrics=metrics)
    _console(stderr=False).print(table)
    if out is not None:
        from bdcore.io.atomic import write_text

        images = plot_pairs(list(run_dirs), pairs, out)
        html_text += "".join(f'<h2>{html.escape(p.stem)}</h2><img src="{html.escape(p.name)}">' for p in images)
        write_text(out, html_text)
        click.echo(f"comparison: {out}")
        for p in images:
            click.echo(f"plot: {p}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
