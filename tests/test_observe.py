"""The event stream: progress for every stage, run.log, failing observers, the TensorBoard and MLflow observers."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import goodplug
import observeplug
import pytest
from click.testing import CliRunner

from bdcore import cli
from bdcore.cli import main
from bdcore.engine.run import execute
from bdcore.observe.bus import EventBus
from bdcore.observe.events import Progress, Scalars, StageEnded, StageStarted
from bdcore.observe.flatten import flatten, row_tag, safe_key
from bdcore.observe.group import GROUP_ENV, MLFLOW_PARENT_ENV
from bdcore.observe.progress import PlainProgress, RichProgress, format_seconds
from bdcore.spec.structure import load_spec
from bdcore.testing import make_host

SPEC = """
[run]
name = "obs"
seed = 1
progress_steps = 2
progress_every = 1000.0
log_every = {log_every}
observers = {observers}
[data]
use = "toy-smooth"
params = {{ count = 16, size = 16, train_fraction = 0.5 }}
[victim]
use = "toy-denoiser"
params = {{ width = 8 }}
[train]
steps = 6
batch_size = 4
[attack]
steps = 6
batch_size = 4
poison_rate = 0.25
fit_steps = 4
from_clean = true
trigger = {{ use = "fit-patch" }}
loss = {{ use = "toy-invert-controlled" }}
[[defense]]
use = "box3"
[[defense]]
use = "finetune-test"
params = {{ steps = 4 }}
[[defense]]
use = "spread"
[[metric]]
use = "psnr"
[eval]
batch_size = 2
grid = 2
"""


@pytest.fixture
def cli_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI sees the toy plugin and the test plugins (no entry points)."""
    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host([goodplug, observeplug]))


def _run(tmp_path: Path, *, observers: str = "[]", log_every: int = 2, **kwargs: Any) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(observers=observers, log_every=log_every))
    host = make_host([goodplug, observeplug])
    loaded = load_spec(spec, host.registry)
    return execute(loaded, host, out_root=tmp_path / "runs", **kwargs)


# -- progress ---------------------------------------------------------------------------------


STAGES = {
    # stage path -> (total, unit) as the toy spec above makes them
    "trigger-fit/patch fit": (4, "steps"),
    "clean-victim": (6, "steps"),
    "attack": (6, "steps"),
    "evaluate/poison": (4, "batches"),
    "evaluate/clean-victim": (4, "batches"),
    "evaluate/attacked": (4, "batches"),
    "defense/box3/evaluate": (4, "batches"),
    "defense/finetune-test/train": (4, "steps"),
    "defense/finetune-test/evaluate": (4, "batches"),
    "defense/spread/evaluate": (4, "batches"),
    "defense/spread/detect": (4, "batches"),
}


def _assert_progress_for_every_stage(text: str) -> None:
    # every stage that takes time says where it is (k/N at the configured cadence) and that it ended
    for stage, (total, unit) in STAGES.items():
        assert re.search(
            rf"^{re.escape(stage)}: 2/{total} {unit} \(\d+%\), [\d.]+ {unit}/s, ETA \d+:\d\d", text, re.M
        ), (
            stage,
            text,
        )
        assert re.search(rf"^{re.escape(stage)}: done, {total} {unit} in [\d.]+ s", text, re.M), (stage, text)
    assert re.search(r"^stage data: indexing toy-smooth$", text, re.M)
    assert re.search(r"^data: done, [\d.]+ s$", text, re.M)
    for stage in ("trigger-fit", "defense/box3", "defense/finetune-test", "defense/spread"):
        assert re.search(rf"^{re.escape(stage)}: done, [\d.]+ s$", text, re.M), (stage, text)
    # training lines carry the latest logged losses and the learning rate
    assert re.search(r"^clean-victim: 4/6 steps .*, loss=[\d.e-]+ lr=0.001$", text, re.M), text
    assert re.search(r"^trigger-fit/patch fit: 2/4 steps .*, loss=[\d.e-]+ gap=[\d.e-]+$", text, re.M), text


def test_progress_lines_for_every_stage_when_not_a_terminal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bdcore"):
        result = _run(tmp_path)
    console = "\n".join(r.getMessage() for r in caplog.records if r.name == "bdcore")
    _assert_progress_for_every_stage(console)
    run_log = (result.run_dir / "run.log").read_text()
    _assert_progress_for_every_stage(run_log)
    # the console and run.log hang off one stream: the same lines, but for the measured rates
    strip = re.compile(r"[\d.]+ (steps|batches)/s|ETA \d+:\d\d|in [\d.]+ s|[\d.]+ s$", re.M)
    console_lines = [strip.sub("#", line) for line in console.splitlines()]
    assert [strip.sub("#", line) for line in run_log.splitlines()] == console_lines


def test_progress_through_the_cli_when_stderr_is_a_pipe(tmp_path: Path, cli_host: None) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[run]\nname = "cli"\nprogress_steps = 5\n[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n'
        '[train]\nsteps = 10\nbatch_size = 4\n[[metric]]\nuse = "psnr"\n'
    )
    res = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    assert re.search(r"clean-victim: 5/10 steps \(50%\)", res.output), res.output
    assert re.search(r"clean-victim: done, 10 steps in", res.output), res.output


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_cadence_rate_and_eta() -> None:
    lines: list[str] = []
    clock = FakeClock()
    plain = PlainProgress(lines.append, every_seconds=10.0, clock=clock)
    plain.on_stage_start(StageStarted("attack", 100))
    for step in range(1, 31):  # one step every 2 s: 0.5 steps/s
        clock.now += 2.0
        plain.on_progress(Progress("attack", step, 100, {"loss": 0.25} if step % 10 == 0 else {}))
    clock.now += 2.0
    plain.on_stage_end(StageEnded("attack", 62.0, "done", 31, 100))
    # a line every 10 s = every 5 steps; ETA of step k = (100 - k) / 0.5 s
    assert lines[0] == "attack: started (100 steps)"
    assert lines[1] == "attack: 5/100 steps (5%), 0.5 steps/s, ETA 3:10"
    assert lines[2] == "attack: 10/100 steps (10%), 0.5 steps/s, ETA 3:00, loss=0.25"
    assert len(lines) == 1 + 6 + 1
    assert lines[-1] == "attack: done, 31 steps in 62.0 s (0.5 steps/s), loss=0.25"
    assert format_seconds(3725) == "1:02:05"


def test_plain_progress_of_a_resumed_stage_counts_only_new_steps() -> None:
    lines: list[str] = []
    clock = FakeClock()
    plain = PlainProgress(lines.append, every_seconds=0.0, clock=clock)
    plain.on_stage_start(StageStarted("attack", 400))
    clock.now += 4.0
    plain.on_progress(Progress("attack", 301, 400))  # resumed at step 300: one step in 4 s
    clock.now += 4.0
    plain.on_progress(Progress("attack", 302, 400))
    assert lines[-1] == "attack: 302/400 steps (76%), 0.25 steps/s, ETA 6:32"


def test_rich_progress_on_a_terminal_shows_bar_rate_and_losses_literally() -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    rich = RichProgress(console)
    rich.on_stage_start(StageStarted("attack", 10, description="toy [bold]x[/bold] for 10 steps"))
    for step in range(1, 5):
        rich.on_progress(Progress("attack", step, 10, {"loss": 0.125, "psnr[input]": 30.0}))
    rich.bar.refresh()
    rich.on_stage_end(StageEnded("attack", 2.0, "done", 10, 10))
    rich.close()
    text = out.getvalue()
    assert "stage attack: toy [bold]x[/bold] for 10 steps" in text  # user text is not markup
    assert "4/10" in text and "loss=0.125 psnr[input]=30" in text
    assert "attack: done, 10 steps in 2.0 s (5 steps/s), loss=0.125" in text


# -- failing observers ----------------------------------------------------------------------------


def test_a_raising_observer_does_not_fail_the_run_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    observeplug.RECORDED.clear()
    with caplog.at_level(logging.INFO, logger="bdcore"):
        result = _run(tmp_path, observers='["explode", "record"]')
    assert (result.run_dir / "COMPLETE").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert 'observer "explode" failed on run_start (the run goes on): RuntimeError: boom on run_start' in warnings
    assert any(w.startswith('observer "explode" disabled after 25 failures') for w in warnings), warnings
    run_log = (result.run_dir / "run.log").read_text()
    assert 'observer "explode" failed on run_start' in run_log
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    failures = manifest["observer_failures"]["explode"]
    assert failures["disabled"] and failures["failures"] >= 25
    assert failures["first_error"] == "run_start: RuntimeError: boom on run_start"
    assert manifest["observers"] == ["explode", "record"]
    # the other observer saw the whole run, in order
    kinds = [e.kind for e in observeplug.RECORDED]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert observeplug.RECORDED[-1].status == "complete"
    assert len(observeplug.RECORDED[-1].rows) == len(result.rows)
    starts = [e.stage for e in observeplug.RECORDED if e.kind == "stage_start"]
    ends = [e.stage for e in observeplug.RECORDED if e.kind == "stage_end"]
    assert sorted(starts) == sorted(ends) and set(STAGES) <= set(starts)


def test_event_bus_reports_each_failure_kind_once_and_keeps_calling_others() -> None:
    calls: list[str] = []

    class Good:
        def on_event(self, event: Any) -> None:
            calls.append(event.kind)

    class Bad:
        wants = frozenset({"scalars"})

        def on_event(self, event: Any) -> None:
            raise ValueError("nope")

    bus = EventBus([("bad", Bad()), ("good", Good())], max_failures=3)
    for step in range(5):
        bus.emit(Scalars("attack", step, {"loss": 1.0}))
    # the first failure of a kind is reported (a message to the others), then counted; the third disables
    assert calls == ["message", "scalars", "scalars", "message", "scalars", "scalars", "scalars"]
    assert bus.failures() == {"bad": {"failures": 3, "first_error": "scalars: ValueError: nope", "disabled": True}}


def test_a_failed_run_ends_the_stream_with_its_status(tmp_path: Path) -> None:
    observeplug.RECORDED.clear()
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(observers='["record"]', log_every=2))
    host = make_host([goodplug, observeplug])
    loaded = load_spec(spec, host.registry)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("defense exploded")

    goodplug_box3 = goodplug.Box3.transform
    goodplug.Box3.transform = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(Exception, match="defense exploded"):
            execute(loaded, host, out_root=tmp_path / "runs")
    finally:
        goodplug.Box3.transform = goodplug_box3  # type: ignore[method-assign]
    end = observeplug.RECORDED[-1]
    assert end.kind == "run_end" and end.status == "failed" and "defense exploded" in end.error
    failed = [e for e in observeplug.RECORDED if e.kind == "stage_end" and e.status == "failed"]
    assert [e.stage for e in failed] == ["defense/box3/evaluate", "defense/box3"]


# -- spec and command line ------------------------------------------------------------------------


def test_unknown_observer_is_a_spec_error(tmp_path: Path, cli_host: None) -> None:
    body = '[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n'
    for observers, message in (
        ('["tensorbord"]', 'run.observers[0].use: unknown observer "tensorbord". Did you mean "tensorboard"?'),
        (
            '["mlflow", 3]',
            'run.observers[1]: expected a name or a table { use = "...", params = { ... } }, got the integer 3',
        ),
        ('[{ use = "mlflow", params = { experimant = "x" } }]', "run.observers[0].params.experimant: unknown key"),
        ('["record", "record"]', 'run.observers: observer "record" is chosen twice'),
    ):
        spec = tmp_path / "spec.toml"
        spec.write_text(f"[run]\nobservers = {observers}\n{body}")
        res = CliRunner().invoke(main, ["check", str(spec)])
        assert res.exit_code == 2, res.output
        assert message in res.output, res.output


def test_observe_option_with_an_unknown_name_exits_2(tmp_path: Path, cli_host: None) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text('[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n')
    res = CliRunner().invoke(main, ["run", str(spec), "--observe", "mlfow", "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2, res.output
    assert 'unknown observer "mlfow". Did you mean "mlflow"?' in res.output


@pytest.mark.parametrize(("name", "package"), [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_missing_extra_is_exit_3_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, package: str, cli_host: None
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    spec = tmp_path / "spec.toml"
    spec.write_text('[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n')
    res = CliRunner().invoke(main, ["run", str(spec), "--observe", name, "--out", str(tmp_path / "runs")])
    assert res.exit_code == 3, res.output
    assert f"observer \"{name}\" needs the Python package '{package}', which is not installed" in res.output
    assert f"pip install 'bdcore[{name}]'" in res.output
    assert not (tmp_path / "runs").exists()  # nothing ran


# -- names ------------------------------------------------------------------------------------------


def test_flatten_and_safe_keys() -> None:
    spec = {
        "run": {"seed": 0, "requires": ["bd-plugin-x"], "observers": []},
        "attack": {"trigger": {"use": "x", "params": {"k": 16}}},
        "defense": [{"use": "jpeg", "params": {}}, {"use": "blur", "sweep": {"values": [1, 2]}}],
    }
    assert flatten(spec) == {
        "run.seed": 0,
        "run.requires": ["bd-plugin-x"],
        "attack.trigger.use": "x",
        "attack.trigger.params.k": 16,
        "defense.0.use": "jpeg",
        "defense.1.use": "blur",
        "defense.1.sweep.values": [1, 2],
    }
    assert (
        safe_key("eval/attacked/poisoned/psnr[input,clean_input]") == "eval/attacked/poisoned/psnr_input_clean_input_"
    )
    assert safe_key("defense/a//b/../c") == "defense/a/b/__/c"
    row = {"stage": "defended", "defense": "jpeg", "setting": "quality=50", "split": "poisoned", "metric": "psnr"}
    assert row_tag(row) == "eval/jpeg@quality=50/poisoned/psnr"


# -- TensorBoard ---------------------------------------------------------------------------------------


def _scalars(log_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_event_files_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard")
    monkeypatch.setenv(GROUP_ENV, "sweep-1")
    result = _run(tmp_path, observers='["tensorboard"]')
    log_dirs = list((tmp_path / "runs" / "tensorboard" / "sweep-1").iterdir())
    assert [d.name for d in log_dirs] == [result.run_dir.name]  # <log_dir>/<group>/<run>
    acc = _scalars(log_dirs[0])
    tags = acc.Tags()
    # training curves: one point every log_every = 2 steps
    for tag, steps in {
        "clean-victim/loss": [2, 4, 6],
        "clean-victim/lr": [2, 4, 6],
        "attack/loss": [2, 4, 6],
        "attack/backdoor": [2, 4, 6],
        "attack/clean": [2, 4, 6],
        "trigger-fit/patch fit/loss": [2, 4],
        "trigger-fit/patch fit/gap": [2, 4],
        "defense/finetune-test/train/loss": [2, 4],
    }.items():
        assert [e.step for e in acc.Scalars(tag)] == steps, tag
    # every result row, under its own tag
    for row in result.rows:
        values = acc.Scalars(row_tag(row))
        assert values[-1].value == pytest.approx(row["value"], rel=1e-6), row_tag(row)
    assert {"grid/attacked model/clean input", "grid/attacked model/output: poisoned input"} <= set(tags["images"])
    assert len(acc.Images("grid/attacked model/output: poisoned input")) == 1
    assert {"spec/text_summary", "run/text_summary", "status/text_summary"} <= set(tags["tensors"])
    spec_text = acc.Tensors("spec/text_summary")[0].tensor_proto.string_val[0].decode()
    assert 'use = "fit-patch"' in spec_text
    # the HPARAMS view: this run's session holds the spec's values, the metrics are the eval tags
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["attack.trigger.use"].string_value == "fit-patch"
    assert hparams["train.steps"].number_value == 6
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {row_tag(r) for r in result.rows}


def test_observers_do_not_change_results(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    plain = _run(tmp_path / "a")
    observed = _run(tmp_path / "b", observers='["tensorboard"]')
    assert [r["value"] for r in plain.rows] == [r["value"] for r in observed.rows]


# -- MLflow -------------------------------------------------------------------------------------------


def test_mlflow_run_read_back_through_the_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv(GROUP_ENV, raising=False)
    monkeypatch.delenv(MLFLOW_PARENT_ENV, raising=False)
    observers = '[{ use = "mlflow", params = { tracking_uri = "tracking", experiment = "obs-test" } }]'
    result = _run(tmp_path, observers=observers, group="grid-A")
    second = _run(tmp_path / "again", observers=observers.replace('"tracking"', '"../tracking"'), group="grid-A")

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'tracking' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("obs-test")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    run = runs[result.run_dir.name]
    assert run.info.status == "FINISHED"
    # params: the resolved spec, flattened to dotted keys, defaults filled in
    params = run.data.params
    assert params["attack.trigger.use"] == "fit-patch"
    assert params["attack.fit_steps"] == "4"
    assert params["train.steps"] == "6"
    assert params["train.optimizer"] == "adam"  # a default the spec did not write
    assert params["defense.1.params.steps"] == "4"
    assert params["data.params.count"] == "16"
    # metrics per logged step, and every result row
    history = client.get_metric_history(run.info.run_id, "attack/loss")
    assert [m.step for m in history] == [2, 4, 6]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "clean-victim/lr")] == [2, 4, 6]
    for row in result.rows:
        assert run.data.metrics[safe_key(row_tag(row))] == pytest.approx(row["value"], rel=1e-9)
    # the run folder's files as artifacts
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "results.jsonl", "results.csv", "manifest.json", "spec.resolved.toml", "run.log"} <= names
    assert {"plots", "grid"} <= names
    local = Path(client.download_artifacts(run.info.run_id, "results.jsonl", str(tmp_path / "dl")))
    assert local.read_text() == (result.run_dir / "results.jsonl").read_text()
    # tags: versions of bdcore and of every plugin
    tags = run.data.tags
    assert tags["bdcore.version"] == json.loads((result.run_dir / "manifest.json").read_text())["bdcore"]
    assert tags["bdcore.plugin.goodplug"] == "goodplug test"
    assert tags["bdcore.plugin.observeplug"] == "observeplug test"
    assert tags["bdcore.lib.torch"]
    assert tags["bdcore.status"] == "complete"
    # both runs of the group are children of one parent run
    parent = runs["grid-A"]
    assert parent.data.tags["bdcore.role"] == "group"
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert runs[second.run_dir.name].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert len(runs) == 3
    # --resume continues the MLflow run of its run folder instead of making another one
    resumed = _run(tmp_path, observers=observers, group="grid-A", resume=True)
    assert resumed.run_dir == result.run_dir
    after = client.search_runs([exp.experiment_id])
    assert len(after) == 3
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_components_that_keep_their_context_copy_and_pickle_with_a_live_bus(tmp_path: Path) -> None:
    import copy
    import pickle
    import threading

    from bdcore.context import Context
    from bdcore.observe.progress import RunLog
    from bdcore.testing.toy import DenoiserParams, ToyDenoiser

    class HoldsALock:  # like a SummaryWriter or an MLflow client: neither copyable nor picklable
        def __init__(self) -> None:
            self.lock = threading.Lock()

        def on_event(self, event: Any) -> None: ...

    bus = EventBus([("run.log", RunLog(tmp_path / "run.log")), ("tracker", HoldsALock())])
    victim = ToyDenoiser(DenoiserParams(), Context(events=bus))
    victim.ctx = Context(events=bus)  # as components that keep their ctx do
    twin = copy.deepcopy(victim)
    assert twin.ctx.events is bus  # the copy reports to the same run
    clone = pickle.loads(pickle.dumps(victim))
    assert isinstance(clone.ctx.events, EventBus) and clone.ctx.events.names == []  # detached, not broken


def test_stage_update_reads_scalars_only_on_logged_steps() -> None:
    class Tensorish:
        def __init__(self, value: float, readable: bool) -> None:
            self.value, self.readable = value, readable

        def __float__(self) -> float:
            assert self.readable, "read on a step that is not logged"
            return self.value

    seen: list[Any] = []

    class Keep:
        def on_event(self, event: Any) -> None:
            seen.append(event)

    bus = EventBus([("keep", Keep())], log_every=3)
    with bus.stage("fit", 7) as bar:
        for step in range(1, 8):
            bar.update(step, loss=Tensorish(step / 10, readable=step in (3, 6, 7)))
    scalars = [(e.step, dict(e.values)) for e in seen if isinstance(e, Scalars)]
    assert scalars == [(3, {"loss": 0.3}), (6, {"loss": 0.6}), (7, {"loss": 0.7})]
    assert [e.done for e in seen if isinstance(e, Progress)] == [1, 2, 3, 4, 5, 6, 7]
