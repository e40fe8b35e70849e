"""The ``bdcore`` command line.

Exit codes: 0 ok, 1 the run failed, 2 bad spec or usage, 3 a required plugin is
missing, broken or conflicting. No traceback unless ``--traceback`` (or
``BDCORE_RAISE=1``).
"""

from __future__ import annotations

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
from bdcore.report.tables import FORMATS, TextTable
from bdcore.text import exception_text, html_text, one_line, printable

KIND_BY_PLURAL = {plural: kind for kind, plural in KINDS.items()}


def _console(stderr: bool = True) -> Any:
    """A rich console that prints every string literally: no markup (``[data]``, ``[/x]`` are
    text), no emoji codes, no highlighting; lines are never wrapped."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)


def _text(text: object, style: str | None = None, newlines: bool = False) -> Any:
    """User or library text as a rich ``Text`` shown literally (control characters escaped;
    line breaks too unless ``newlines``: a table cell or a name stays on one line)."""
    from rich.text import Text

    return Text(printable(text, newlines=newlines), style=style or "")


def _say(console: Any, text: object, prefix: str = "", style: str = "bold red", body_style: str = "") -> None:
    """Print ``prefix`` (in ``style``) and ``text`` (literally, in ``body_style``) on ``console``."""
    from rich.text import Text

    body = _text(text, body_style, newlines=True)  # a spec's problems: one per line
    console.print(Text.assemble((prefix, style), body) if prefix else body)


def _echo(text: object, err: bool = False) -> None:
    """``click.echo`` of one line of user text: control characters and undecodable bytes escaped."""
    click.echo(printable(text), err=err)


def _fail(exc: BaseException, traceback: bool) -> int:
    if traceback or os.environ.get("BDCORE_RAISE"):
        raise exc
    console = _console()
    if isinstance(exc, BdcoreError):
        kind = "error" if not isinstance(exc, SpecError) else "invalid spec"
        if isinstance(exc, PluginError):
            kind = "plugin error"
        _say(console, str(exc), f"bdcore: {kind}: ")
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        _say(console, "bdcore: interrupted; finished stages are kept (bdcore run --resume continues)")
        return 130
    _say(console, f"{exception_text(exc)} (rerun with --traceback for details)", "bdcore: the run failed: ")
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
_format_opt = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="How to print the table: table (rich on a terminal, plain aligned text otherwise), csv, json, markdown.",
)


def _emit_table(table: TextTable, fmt: str) -> None:
    """Print ``table`` to stdout in ``fmt``; nothing is ever cut to the terminal's (or a pipe's 80) columns."""
    from bdcore.report.tables import render, rich_table

    console = _console(stderr=False)
    if fmt == "table" and console.is_terminal:
        rendered, console.width = rich_table(table, console.width)  # wider than the terminal: it wraps, nothing is cut
        console.print(rendered)
    else:
        click.echo(render(table, fmt), nl=False)


def _host(strict: bool = False) -> Any:
    from bdcore.plugins import load_plugins

    host = load_plugins()
    if strict and host.failures:
        f = host.failures[0]
        raise PluginError(f'plugin "{f.plugin}" ({f.distribution} {f.version}) failed to load: {f.error}')
    return host


def _setup_logging(quiet: bool) -> None:
    from rich.logging import RichHandler

    class LiteralHandler(RichHandler):
        """Log messages carry run names, labels and paths: printed literally, never as markup."""

        def render_message(self, record: logging.LogRecord, message: str) -> Any:
            return _text(message)

    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[LiteralHandler(console=_console(), show_path=False, show_time=False, markup=False)],
        force=True,
    )


def _load(host: Any, spec: Path, *, check_paths: bool = True, overrides: tuple[str, ...] = ()) -> Any:
    from bdcore.spec.preflight import check_plugins
    from bdcore.spec.structure import load_spec

    check_plugins(spec, host, overrides)  # a missing plugin is exit 3 with its pip line, before any "unknown" name
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
    from bdcore.third_party_warnings import silence_known_third_party_warnings

    silence_known_third_party_warnings()
    _terminate_as_interrupt()


def _terminate_as_interrupt() -> None:
    """SIGTERM (a batch scheduler's stop, ``kill``) ends a command the way Ctrl-C does: finished stages and
    cells are kept, a sweep records its interrupted cells and writes the finished cells' table, exit 130.
    A background job started by a non-interactive shell ignores SIGINT, so SIGTERM is how it is stopped."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # someone (a host program) already handles it

    from bdcore.errors import Terminated

    def interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise Terminated

    signal.signal(signal.SIGTERM, interrupt)


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option(
    "--out", "out", type=click.Path(path_type=Path), default=None, help="Output root (default: [run] out, else ./runs)."
)
@click.option("--resume", is_flag=True, help="Continue the latest run of this spec from its checkpoints.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and the summary.")
@click.option(
    "--observe",
    "observe",
    multiple=True,
    metavar="NAME",
    help="Also log the run to this observer (repeatable), e.g. --observe tensorboard --observe mlflow "
    "(bdcore list observers; params from [run] observers).",
)
@_set_opt
@_format_opt
@_traceback_opt
def run(
    spec: Path,
    out: Path | None,
    resume: bool,
    quiet: bool,
    observe: tuple[str, ...],
    overrides: tuple[str, ...],
    fmt: str,
    traceback: bool,
) -> None:
    """Run an experiment spec."""
    _guard(_run)(spec, out, resume, quiet, overrides, observe, fmt, traceback=traceback)


def _run(
    spec: Path,
    out: Path | None,
    resume: bool,
    quiet: bool,
    overrides: tuple[str, ...] = (),
    observe: tuple[str, ...] = (),
    fmt: str = "table",
) -> int:
    from bdcore.engine.run import execute
    from bdcore.observe.select import with_observers
    from bdcore.report.html import pivot

    _setup_logging(quiet)
    host = _host()
    try:
        loaded = with_observers(_load(host, spec, overrides=overrides), observe, host.registry)
    except SpecError as exc:
        raise _spec_needs_failed_plugin(host, spec, exc) or exc from None
    out_root = out or loaded.spec.run.out or Path("runs")
    if loaded.spec.sweep is not None:
        logging.getLogger("bdcore").warning(
            "%s declares a [sweep] grid: bdcore run runs the spec as written; bdcore sweep runs the grid", spec
        )
    console = None
    if not quiet and sys.stderr.isatty():
        from bdcore.observe.progress import RichProgress

        console = RichProgress(_console())  # else plain lines through the logger (CI logs, pipes)
    result = execute(loaded, host, out_root=out_root, resume=resume, console=console)
    cols, body = pivot(result.rows)
    rows = [[model, *(vals.get(c) for c in cols)] for model, vals in body]
    _emit_table(TextTable.build(f"{loaded.name}: results", ["model", *cols], rows), fmt)
    # with a machine format, stdout holds the table alone
    _echo(f"run folder: {result.run_dir}", err=fmt != "table")
    _echo(f"report: {result.run_dir / 'report.html'}", err=fmt != "table")
    return 0


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
    from bdcore.spec.preflight import check_plugins
    from bdcore.sweep.command import check_spec

    for spec in specs:
        try:
            check_plugins(spec, host, overrides)  # a missing plugin is exit 3 with its pip line
            loaded, note = check_spec(host, spec, check_paths=check_paths, overrides=overrides)
        except SpecError as exc:
            err = _spec_needs_failed_plugin(host, spec, exc) or exc
            _say(console, str(err), body_style="red" if not isinstance(err, SpecError) else "")
            worst = max(worst, err.exit_code)
            continue
        except PluginError as exc:
            _say(console, str(exc))
            worst = max(worst, exc.exit_code)
            continue
        _echo(f"{spec}: ok ({len(loaded.components())} components{note})")
    return worst


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--all", "show_all", is_flag=True, hidden=True, help="Kept for old scripts: the built-ins are always listed."
)
@click.option("--strict-plugins", is_flag=True, help="Exit 3 if any plugin failed to load.")
@_traceback_opt
def plugins(as_json: bool, show_all: bool, strict_plugins: bool, traceback: bool) -> None:
    """List bdcore's built-ins and the installed plugins, what each registers, and plugins that failed to load."""
    _guard(_plugins)(as_json, strict_plugins, traceback=traceback)


def _plugins(as_json: bool, strict: bool) -> int:
    host = _host()
    data = host.describe()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return 3 if (strict and host.failures) else 0
    pad = max((len(f"{k} ({len(v)}):") for p in data["plugins"] for k, v in p["components"].items()), default=0)
    for p in data["plugins"]:
        where = "built in" if p["builtin"] else f"{p['distribution']} {p['version']}"
        _echo(f"{p['plugin']} ({where})")
        kinds = p["components"]
        for kind, names in kinds.items():
            # the count keeps a component named "none" (core's no-op trigger) from reading as "no triggers"
            _echo(f"  {f'{kind} ({len(names)}):':<{pad}} {', '.join(names)}")
        if not kinds:
            click.echo("  (registers no components)")
    if not any(not p["builtin"] for p in data["plugins"]):
        click.echo("no plugins installed: only bdcore's built-ins (pip install a bd-plugin-... distribution)")
    for f in data["failed"]:
        _echo(f"FAILED to load: {f['plugin']} ({f['distribution']} {f['version']}): {one_line(f['error'])}")
    return 3 if (strict and host.failures) else 0


class _KindType(click.ParamType):
    """A component kind: plural (``triggers``), singular (``trigger``) or the kind's own name (``attack_loss``)."""

    name = "kind"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        # not "{triggers|...|attack-losses|...}": click wraps a long usage line at hyphens, inside a word
        return "KIND"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        import difflib

        text = str(value).strip().lower().replace("_", "-")
        names = {n: plural for kind, plural in KINDS.items() for n in (plural, kind.replace("_", "-"))}
        if text in names:
            return names[text]
        close = difflib.get_close_matches(text, sorted(names), n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        self.fail(f"{value!r} is not a component kind; {hint}kinds: {', '.join(KINDS.values())}", param, ctx)


@main.command(name="list")
@click.argument("kind", type=_KindType())
@click.option("--json", "as_json", is_flag=True, help="Same as --format json: every field of each component.")
@_format_opt
@_traceback_opt
def list_cmd(kind: str, as_json: bool, fmt: str, traceback: bool) -> None:
    """List the components of one KIND: name, summary, paper, distribution.

    KIND: triggers, victims, attack-losses, defenses, metrics or datasets (singular works too).
    """
    _guard(_list)(kind, "json" if as_json else fmt, traceback=traceback)


def _list(kind: str, fmt: str) -> int:
    host = _host()
    comps = host.registry.of_kind(KIND_BY_PLURAL[kind])
    if fmt == "json":
        click.echo(json.dumps([c.describe() for c in comps], indent=2))
        return 0
    rows = [[c.name, c.summary, c.paper or "", f"{c.provenance.distribution} {c.provenance.version}"] for c in comps]
    _emit_table(TextTable.build(kind, ["name", "summary", "paper", "distribution"], rows), fmt)
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
@_format_opt
@_traceback_opt
def report(
    run_dirs: tuple[Path, ...],
    out: Path | None,
    plots: tuple[str, ...],
    models: tuple[str, ...],
    metrics: tuple[str, ...],
    fmt: str,
    traceback: bool,
) -> None:
    """Compare finished runs in one table (and rebuild it as HTML with --out)."""
    _guard(_report)(run_dirs, out, plots, models, metrics, fmt, traceback=traceback)


def _report(
    run_dirs: tuple[Path, ...],
    out: Path | None,
    plots: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
    metrics: tuple[str, ...] = (),
    fmt: str = "table",
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
    table, html_page = compare_runs(list(run_dirs), models=models, metrics=metrics)
    _emit_table(table, fmt)
    if out is not None:
        from bdcore.io.atomic import write_text

        images = plot_pairs(list(run_dirs), pairs, out)
        html_page += "".join(f'<h2>{html_text(p.stem)}</h2><img src="{html_text(p.name)}">' for p in images)
        write_text(out, html_page)
        _echo(f"comparison: {out}", err=fmt != "table")
        for p in images:
            _echo(f"plot: {p}", err=fmt != "table")
    return 0


@main.command(name="new-plugin")
@click.argument("name")
@click.option(
    "--roles",
    default="trigger,victim,attack-loss,defense,metric,dataset",
    show_default=True,
    help="Comma-separated roles to implement, one module each.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("."),
    help="Where to create bd-plugin-NAME/ (default: the current folder).",
)
@_traceback_opt
def new_plugin(name: str, roles: str, directory: Path, traceback: bool) -> None:
    """Write a new plugin distribution bd-plugin-NAME: components, tests, example spec, method card."""
    _guard(_new_plugin)(name, roles, directory, traceback=traceback)


def _new_plugin(name: str, roles: str, directory: Path) -> int:
    from bdcore.scaffold import create_plugin, parse_roles

    target = create_plugin(name, parse_roles(roles), directory)
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    click.echo(f"created {target} ({len(files)} files):")
    for f in files:
        click.echo(f"  {f}")
    click.echo(
        f'next:\n  cd {target}\n  python -m pip install -e ".[testing]"\n  python -m pytest\n'
        f"  bdcore run examples/{name}-toy.toml"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
