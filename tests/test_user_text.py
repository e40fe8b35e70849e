"""User text reaches the terminal literally and the HTML report escaped, wherever it goes.

Markup (``[/x]``, ``[bold]``), emoji codes, control characters and ANSI escapes, bytes that are
not UTF-8 (in file names and TOML) and very long lines are fed to every place a user string can
be printed: ``check``, ``run`` (log lines, results table, report), ``report``, ``plugins``,
``list``, the progress bars and the HTML pages. Nothing may crash, vanish or be interpreted.
"""

from __future__ import annotations

import io
import os
import types
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import bdcore.cli as cli
from bdcore import hookimpl
from bdcore.registry import Provenance
from bdcore.testing import make_host
from bdcore.text import html_text, printable

MARKUP = ["[/x]", "[bold]loud[/bold]", "[data]", "[red]", ":smile:", "[link=http://x]y[/link]"]
CONTROL = "a\x1b[31mred\x1b[0m\x07b"
LONG = "L" * 5000

SPEC = """
[run]
name = {name}
seed = 1
[data]
use = "toy-smooth"
params = {{ count = 8, size = 8 }}
[victim]
use = "toy-denoiser"
params = {{ width = 4 }}
[train]
steps = 1
[attack]
poison_rate = 0.5
trigger = {{ use = "toy-patch" }}
loss = {{ use = "toy-invert" }}
[[defense]]
use = "none"
label = {label}
[[metric]]
use = "psnr"
label = {metric}
[eval]
grid = 2
"""


def _toml_str(text: str) -> str:
    import tomli_w

    return tomli_w.dumps({"v": text}).split("=", 1)[1].strip()


@pytest.fixture
def cli_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host())


def _no_raw_controls(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output, repr(output[:2000])
    assert "Traceback" not in output


@pytest.mark.parametrize("text", [*MARKUP, CONTROL, LONG, "tab\tand\u202eflip"])
def test_check_prints_keys_and_values_literally(text: str, tmp_path: Path, cli_host: None) -> None:
    spec = tmp_path / "spec.toml"
    body = SPEC.format(name='"n"', label='"l"', metric='"m"')
    spec.write_text(body.replace("seed = 1", f"seed = 1\n{_toml_str(text)} = {_toml_str(text)}"))
    res = CliRunner().invoke(cli.main, ["check", str(spec)])
    assert res.exit_code == 2, res.output
    _no_raw_controls(res.output)
    shown = printable(text)
    line = next(line for line in res.output.splitlines() if "unknown key" in line)
    assert f"{spec}: run.{shown}: unknown key" in line, res.output  # whole, on one line, unwrapped


@pytest.mark.parametrize("text", ["[data]", "[/x]", CONTROL, LONG])
def test_messages_with_brackets_keep_them(text: str, tmp_path: Path, cli_host: None) -> None:
    """Our own messages hold brackets too (``add a [data] table``): none may vanish."""
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[victim]\nuse = "toy-denoiser"\nlabel = {_toml_str(text)}\n')
    for command in ("check", "run"):
        res = CliRunner().invoke(cli.main, [command, str(spec)])
        assert res.exit_code == 2, res.output
        assert 'add a [data] table with use = "..."' in res.output, res.output
        _no_raw_controls(res.output)


@pytest.mark.parametrize(
    "name", [b"[bold]spec[red].toml", b"sp\xffec.toml", b"ctl\x1b[31m.toml", b"x" * 200 + b".toml"]
)
def test_spec_file_names_are_printed_literally(name: bytes, tmp_path: Path, cli_host: None) -> None:
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + name))
    try:
        path.write_text('[run]\nseed = "x"\n')
    except OSError:  # pragma: no cover - a file system that refuses the name
        pytest.skip("the file system refuses this name")
    res = CliRunner().invoke(cli.main, ["check", str(path)])
    assert res.exit_code == 2, res.output
    _no_raw_controls(res.output)
    shown = printable(str(path))
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert all(shown in line for line in lines), res.output
    assert any(f"{shown}: run.seed: expected an integer" in line for line in lines), res.output


def test_toml_that_is_not_utf8_is_a_spec_error(tmp_path: Path, cli_host: None) -> None:
    spec = tmp_path / "latin1.toml"
    spec.write_bytes(b'[run]\nname = "caf\xe9"\n')
    res = CliRunner().invoke(cli.main, ["check", str(spec)])
    assert res.exit_code == 2
    assert f"{spec}: not UTF-8 text: byte 0xe9 at line 2" in res.output, res.output


def test_run_report_and_html_show_user_names_literally(tmp_path: Path, cli_host: None) -> None:
    """One real (tiny) run with hostile run name, defense label and metric label: the log lines,
    the results table, the ``report`` table and both HTML pages."""
    name, label, metric = "[bold]run[/x] <script>alert(1)</script>", "[/d] <b>def</b>", "[red]psnr\x1b[0m"
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(name=_toml_str(name), label=_toml_str(label), metric=_toml_str(metric)))
    out = tmp_path / "runs"
    res = CliRunner().invoke(cli.main, ["run", str(spec), "--out", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    _no_raw_controls(res.output)
    assert f"run {name}: seed 1" in res.output  # the log line (rich logging handler)
    assert f"stage defense/{label}: none" in res.output
    assert f"{name}: results" in res.output and label in res.output and printable(metric) in res.output
    (run_dir,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    page = (run_dir / "report.html").read_text()
    assert "<script>alert" not in page and "<b>def</b>" not in page
    assert html_text(name) in page and html_text(label) in page
    res = CliRunner().invoke(
        cli.main, ["report", str(run_dir), "--out", str(tmp_path / "cmp.html")], env={"COLUMNS": "400"}
    )
    assert res.exit_code == 0, res.output
    _no_raw_controls(res.output)
    assert label in res.output and name in res.output
    page = (tmp_path / "cmp.html").read_text()
    assert "<b>def</b>" not in page and html_text(label) in page and "<script>alert" not in page


def test_spec_file_name_that_is_not_utf8_runs(tmp_path: Path, cli_host: None) -> None:
    """The run is named after the file (no ``[run] name``): log, run.log, report, table."""
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/r\xff[bold].toml"))
    path.write_text(SPEC.format(name='"x"', label='"l"', metric='"m"').replace('name = "x"\n', ""))
    res = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(tmp_path / "runs")], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert "r\\xff[bold]: results" in res.output, res.output
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert "r\\xff[bold]" in (run_dir / "report.html").read_text()
    assert (run_dir / "run.log").read_text(encoding="utf-8")


def _plugin_with_text(text: str) -> types.ModuleType:
    mod = types.ModuleType("hostile_text_plugin")

    @hookimpl
    def register_metrics(register: Any) -> None:
        register(f"m{text}", "bdcore.builtin.components:PSNR", summary=f"sum {text}", paper=f"paper {text}")

    mod.register_metrics = register_metrics  # type: ignore[attr-defined]
    return mod


def _failing_plugin(text: str) -> types.ModuleType:
    mod = types.ModuleType("failing_text_plugin")

    @hookimpl
    def register_metrics(register: Any) -> None:
        raise RuntimeError(f"broken {text}")

    mod.register_metrics = register_metrics  # type: ignore[attr-defined]
    return mod


@pytest.mark.parametrize("text", ["[/x]", "[bold]b[/bold]", CONTROL, "line\nbreak"])
def test_plugins_and_list_print_plugin_text_literally(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    host = make_host(toy=False)
    host.add_plugin(_plugin_with_text(text), f"good{text}", Provenance(f"good{text}", f"dist{text}", "1"))
    host.add_plugin(_failing_plugin(text), f"bad{text}", Provenance(f"bad{text}", f"bdist{text}", "2"))
    monkeypatch.setattr(cli, "_host", lambda strict=False: host)
    res = CliRunner().invoke(cli.main, ["plugins"])
    assert res.exit_code == 0, res.output
    _no_raw_controls(res.output)
    shown = printable(text)
    assert f"good{shown} (dist{shown} 1)" in res.output, res.output
    assert f"FAILED to load: bad{shown} (bdist{shown} 2): RuntimeError: broken " in res.output, res.output
    res = CliRunner().invoke(cli.main, ["list", "metrics"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    _no_raw_controls(res.output)
    assert f"m{shown}" in res.output and f"sum {shown}" in res.output and f"paper {shown}" in res.output


def test_progress_labels_are_literal() -> None:
    """The terminal's progress bars and their summary lines show a stage label literally."""
    from rich.console import Console

    from bdcore.observe.events import Progress, StageEnded, StageStarted
    from bdcore.observe.progress import RichProgress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200, markup=False, emoji=False, highlight=False)
    label = "[bold]stage[/x] \x1b[31m"
    bars = RichProgress(console)
    bars.on_stage_start(StageStarted(label, total=4))
    bars.on_progress(Progress(label, 2, 4, {"loss": 0.5}))
    bars.on_stage_end(StageEnded(label, 0.1, done=4, total=4))
    bars.close()
    assert "[bold]stage[/x] \\x1b[31m" in buf.getvalue()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(sorted(k for k, _ in attrs))))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(text: str, tmp_path: Path) -> str:
    from bdcore.report.html import write_report

    rows = [
        {"stage": "attacked", "defense": None, "setting": None, "split": "clean", "metric": text, "value": 1.0},
        {"stage": "defended", "defense": text, "setting": text, "split": "poisoned", "metric": "m", "value": 2.0},
        {"stage": "trigger", "defense": None, "setting": None, "split": "poisoned", "metric": text, "value": 3.0},
    ]
    manifest = {"bdcore": text, "seed": text, "device": text, "git_sha": text, "libraries": {"torch": text}}
    manifest["components"] = {text: {"name": text, "distribution": text, "version": text}}
    path = write_report(tmp_path, title=text, rows=rows, manifest=manifest, grid={text: [text]}, plots=[text])
    return path.read_text(encoding="utf-8")


USER_TEXT = st.one_of(
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=60),  # surrogates and controls too
    st.sampled_from(['<script>alert("x")</script>', "' onerror='x", '"><img src=x>', "&amp;", "]]>", LONG, CONTROL]),
)


@settings(max_examples=60, deadline=None)
@given(text=USER_TEXT)
def test_html_report_escapes_all_user_text(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Whatever the text, the page has exactly the elements of a page with plain text, and the
    text reads back (after un-escaping) as what :func:`printable` shows."""
    folder = tmp_path_factory.mktemp("html")
    page = _page(text, folder)
    plain = _Tags()
    plain.feed(_page("x", folder))
    parsed = _Tags()
    parsed.feed(page)
    assert parsed.tags == plain.tags
    if text.strip():
        assert printable(text, newlines=True).split("\n")[0] in "".join(parsed.text) + page
