"""bdcore sweep on the local executor: a 4-cell × 2-seed toy grid, shared stages, aggregation,
faults (a failing cell, Ctrl-C, kill -9 of the driver) and resume."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
import sweepplug
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.spec.structure import load_spec
from bdcore.sweep import cell as cell_mod
from bdcore.sweep import driver
from bdcore.sweep.driver import SweepOptions, run_sweep
from bdcore.sweep.plan import cell_stages
from bdcore.testing import make_host, run_spec

PLUGINS = str(Path(__file__).parent / "plugins")


def sweep(spec: Path, out: Path, **kw: Any) -> Any:
    lines: list[str] = []
    kw.setdefault("host_factory", make_host)
    result = run_sweep(spec, SweepOptions(out=out, echo=lines.append, **kw))
    return SimpleNamespace(**attrs.asdict(result, recurse=False), lines=lines)


def info_of(sweep_dir: Path) -> dict[str, Any]:
    return json.loads((sweep_dir / "sweep.json").read_text())


def values(sweep_dir: Path) -> list[tuple[str, ...]]:
    """results.csv without the header, as (cell, model, split, metric, value) tuples."""
    with open(sweep_dir / "results.csv") as fh:
        return sorted((r["cell"], r["model"], r["split"], r["metric"], r["value"]) for r in csv.DictReader(fh))


def run_dir(sweep_dir: Path, cell: dict[str, Any]) -> Path:
    return sweep_dir / "cells" / cell["name"] / cell["run_dir"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """The 4-cell × 2-seed toy sweep, run once in order in this process."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = tmp / "toy.toml"
    spec.write_text(sweepplug.toy_sweep())
    result = sweep(spec, tmp / "runs")
    return spec, result.sweep_dir, result


def test_local_sweep_runs_every_cell_and_shares_the_clean_victim(reference: tuple[Path, Path, Any]) -> None:
    _spec, sweep_dir, result = reference
    info = info_of(sweep_dir)
    assert result.exit_code == 0 and info["status"] == "complete"
    cells = info["cells"]
    assert len(cells) == 8 and {c["status"] for c in cells} == {"done"}
    assert {c["seed"] for c in cells} == {0, 1}
    # one clean victim per seed, trained once, reused by the three other cells of its seed (counted in the logs)
    logs = [(run_dir(sweep_dir, c) / "run.log").read_text() for c in cells]
    assert sum("stage clean-victim: training" in log for log in logs) == 2
    assert sum("stage clean-victim: reused finished stage" in log for log in logs) == 6
    assert sum("stage attack: toy-invert" in log for log in logs) == 8  # every attack differs
    plan = info["plan"]
    assert plan["trainings_needed"] == 10 and plan["stage_computations"] == 16
    assert [len(s["cells"]) for s in plan["shared"]] == [4, 4]
    assert sum(len(c["trained"]) for c in cells) == 10
    assert all(c["seconds"] > 0 and c["attempt"] == 1 for c in cells)
    for name in ("results.csv", "summary.csv", "table.md", "table.csv", "table.tex", "report.html"):
        assert (sweep_dir / name).is_file(), name
    assert any(line.startswith("sweep toy: 8 of 8 cells done") for line in result.lines)


def test_planned_stage_keys_are_the_runner_s(reference: tuple[Path, Path, Any]) -> None:
    spec, sweep_dir, _ = reference
    for c in info_of(sweep_dir)["cells"]:
        manifest = json.loads((run_dir(sweep_dir, c) / "manifest.json").read_text())
        assert c["planned_stages"] == manifest["stages"] == c["stages"]
        loaded = load_spec(spec, make_host().registry, overrides=c["overrides"])
        assert {k: v[1] for k, v in cell_stages(loaded).items()} == manifest["stages"]


def test_a_cell_is_an_ordinary_run_with_its_overrides(reference: tuple[Path, Path, Any], tmp_path: Path) -> None:
    spec, sweep_dir, _ = reference
    cell = info_of(sweep_dir)["cells"][5]
    from bdcore.engine.run import execute
    from bdcore.sweep.cell import torch_threads

    host = make_host()
    loaded = load_spec(spec, host.registry, overrides=cell["overrides"])
    with torch_threads(1):  # a cell computes with [sweep.resources] cpus threads (default 1), so does this run
        alone = execute(loaded, host, out_root=tmp_path / "alone")
    assert (alone.run_dir / "results.jsonl").read_bytes() == (run_dir(sweep_dir, cell) / "results.jsonl").read_bytes()


def test_results_csv_and_mean_std_over_seeds(reference: tuple[Path, Path, Any]) -> None:
    _, sweep_dir, _ = reference
    info = info_of(sweep_dir)
    # independent: every cell's own run folder, grouped by hand
    by_config: dict[tuple[str, str, str, str], list[float]] = {}
    n_rows = 0
    for c in info["cells"]:
        for line in (run_dir(sweep_dir, c) / "results.jsonl").read_text().splitlines():
            r = json.loads(line)
            model = r["defense"] or r["stage"]
            by_config.setdefault((c["config"], model, r["split"] or "", r["metric"]), []).append(r["value"])
            n_rows += 1
    with open(sweep_dir / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n_rows
    assert set(rows[0]) >= {"cell", "config", "seed", "loss", "size", "model", "split", "metric", "value"}
    with open(sweep_dir / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    assert len(summary) == len(by_config)
    for s in summary:
        vals = by_config[(s["config"], s["model"], s["split"], s["metric"])]
        assert int(s["n"]) == len(vals) == 2
        assert float(s["mean"]) == pytest.approx(sum(vals) / 2, rel=1e-12)
        assert float(s["std"]) == pytest.approx(statistics.stdev(vals), rel=1e-9)
    # the pivot: rows = loss, columns = size × metric, attacked model on the poisoned split
    md = (sweep_dir / "table.md").read_text()
    assert md.splitlines()[0] == "| loss | 0.25 · psnr | 0.25 · ssim | 0.5 · psnr | 0.5 · ssim |"
    vals = by_config[("loss=toy-invert-controlled,size=0.5", "attacked", "poisoned", "psnr")]
    expected = f"{statistics.fmean(vals):.3f} ± {statistics.stdev(vals):.3f}"
    assert md.splitlines()[3].startswith("| toy-invert-controlled |") and expected in md.splitlines()[3]
    assert "mean ± std over 2 seeds" in md.lower()
    tex = (sweep_dir / "table.tex").read_text()
    assert "\\begin{tabular}{lrrrr}" in tex and expected.replace(" ± ", " $\\pm$ ") in tex
    table_csv = (sweep_dir / "table.csv").read_text().splitlines()
    assert table_csv[0] == "loss,0.25 · psnr mean,0.25 · psnr std,0.25 · psnr n,0.25 · ssim mean,0.25 · ssim std," + (
        "0.25 · ssim n,0.5 · psnr mean,0.5 · psnr std,0.5 · psnr n,0.5 · ssim mean,0.5 · ssim std,0.5 · ssim n"
    )
    html = (sweep_dir / "report.html").read_text()
    assert "loss=toy-invert,size=0.25,seed=0" in html and "plots/psnr-poisoned.png" in html
    assert (sweep_dir / "plots" / "psnr-poisoned.png").is_file()


def test_report_rebuilds_a_sweep_folder(reference: tuple[Path, Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _, sweep_dir, _ = reference
    (sweep_dir / "table.md").unlink()
    res = CliRunner().invoke(cli.main, ["report", str(sweep_dir)])
    assert res.exit_code == 0, res.output
    assert "| loss | 0.25 · psnr |" in res.output and (sweep_dir / "table.md").is_file()
    res = CliRunner().invoke(cli.main, ["report", str(sweep_dir), "--metric", "ssim"])
    assert res.exit_code == 0 and "psnr" not in res.output.split("report:")[0], res.output
    res = CliRunner().invoke(cli.main, ["report", str(sweep_dir), "--out", str(sweep_dir / "x.html")])
    assert res.exit_code == 2 and "sweep folder" in res.output
    CliRunner().invoke(cli.main, ["report", str(sweep_dir)])  # leave the full table for the other tests


def test_dry_run_prints_cells_shared_stages_and_trainings(
    reference: tuple[Path, Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, ref_dir, _ = reference
    monkeypatch.setattr(cell_mod, "default_host", make_host)
    res = CliRunner().invoke(cli.main, ["sweep", str(spec), "--dry-run", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "sweep toy: 8 cells (0 excluded)" in out
    assert "trainings needed: 10 (16 stage uses, 10 distinct, 0 already in the store" in out
    assert out.count("clean-victim") >= 10 and "shared stages (2):" in out
    assert "--set attack.trigger.params.size=0.5 " in out and "--set 'attack.loss.use=\"toy-invert\"'" in out
    assert not (tmp_path / "out").exists(), "a dry run writes nothing: no sweep folder, no stage store"
    # nor at a shared store it only reads: a file:// URL (and its local mirror), or a folder that holds
    # finished stages, which it counts
    for store in (f"file://{tmp_path / 'remote'}", str(ref_dir.parent / ".stages")):
        shared = tmp_path / "shared.toml"
        shared.write_text(spec.read_text().replace("[sweep]\n", f'[sweep]\nstore = "{store}"\n'))
        before = sorted(ref_dir.parent.rglob("*"))
        res = CliRunner().invoke(cli.main, ["sweep", str(shared), "--dry-run", "--out", str(tmp_path / "out")])
        assert res.exit_code == 0, res.output
        assert not (tmp_path / "out").exists() and not (tmp_path / "remote").exists()
        assert sorted(ref_dir.parent.rglob("*")) == before
    assert "10 distinct, 10 already in the store" in res.output


def test_failing_cell_is_recorded_and_the_others_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "toy.toml"
    # fail_at = 2: the second cell's victim raises a DataError in training, after the spec validated
    spec.write_text(
        sweepplug.toy_sweep(seeds="[0]", victim="fragile-denoiser", extra='zip = [["loss", "victim.params.fail_at"]]')
        .replace('"attack.trigger.params.size" = [0.25, 0.5]', '"victim.params.fail_at" = [-1, 2]')
        .replace('columns = ["size", "metric"]', 'columns = ["metric"]\nexport = "results/toy"')
    )
    monkeypatch.setattr(cell_mod, "default_host", sweepplug.host)
    res = CliRunner().invoke(cli.main, ["sweep", str(spec), "--out", str(tmp_path / "runs"), "-q"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    (sweep_dir,) = (tmp_path / "runs").glob("toy-*")
    cells = {c["name"]: c for c in info_of(sweep_dir)["cells"]}
    bad = cells["loss=toy-invert-controlled,seed=0"]
    assert bad["status"] == "failed" and bad["error_class"] == "DataError" and bad["exit_code"] == 1
    assert "unreadable image" in bad["error"] and "unreadable image" in res.output
    assert cells["loss=toy-invert,seed=0"]["status"] == "done"
    assert info_of(sweep_dir)["status"] == "failed"
    assert {r[0] for r in values(sweep_dir)} == {"loss=toy-invert,seed=0"}
    # the exported table says it is partial, and how to complete it
    head = (tmp_path / "results" / "toy.md").read_text().splitlines()[2]
    assert head.startswith("Produced by") and "1 of 2 cells finished, sweep failed: `--resume`" in head
    assert (tmp_path / "results" / "toy.csv").read_text().startswith("# Produced by bdcore sweep")


def test_a_sweep_whose_every_cell_fails_still_writes_its_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No finished cell: exit 1 with each cell's error, the (empty) table, report and export written,
    no traceback (the table's note used to index the empty list of seed counts)."""
    spec = tmp_path / "toy.toml"
    spec.write_text(
        sweepplug.toy_sweep(seeds="[0]", victim="fragile-denoiser", extra='zip = [["loss", "victim.params.fail_at"]]')
        .replace('"attack.trigger.params.size" = [0.25, 0.5]', '"victim.params.fail_at" = [2, 2]')
        .replace('columns = ["size", "metric"]', 'columns = ["metric"]\nexport = "results/toy"')
    )
    monkeypatch.setattr(cell_mod, "default_host", sweepplug.host)
    res = CliRunner().invoke(cli.main, ["sweep", str(spec), "--out", str(tmp_path / "runs"), "-q"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and res.output.count("unreadable image") >= 2
    (sweep_dir,) = (tmp_path / "runs").glob("toy-*")
    assert [c["status"] for c in info_of(sweep_dir)["cells"]] == ["failed", "failed"]
    assert "No finished cell" in (sweep_dir / "table.md").read_text()
    for name in ("table.csv", "table.tex", "report.html", "summary.csv", "results.csv"):
        assert (sweep_dir / name).is_file(), name
    assert "0 of 2 cells finished, sweep failed" in (tmp_path / "results" / "toy.md").read_text()
    # `bdcore report` has nothing to rebuild from: it says so (usage error), without a traceback
    res = CliRunner().invoke(cli.main, ["report", str(sweep_dir)])
    assert res.exit_code == 2 and "no finished cell has results" in res.output and "Traceback" not in res.output


def test_a_resumed_sweeps_export_cites_the_command_that_starts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header's command must reproduce the table on a fresh clone: `--resume` there fails (no
    earlier sweep), so a resumed sweep's export cites its starting command and says it was continued;
    a sweep recorded before sweep.json kept its command gets the resume's own command minus --resume."""
    spec = tmp_path / "my toy.toml"  # a space: the command is quoted as a shell would need it
    spec.write_text(
        sweepplug.toy_sweep(seeds="[0]", victim="fragile-denoiser", extra='zip = [["loss", "victim.params.fail_at"]]')
        .replace('"attack.trigger.params.size" = [0.25, 0.5]', '"victim.params.fail_at" = [-1, 2]')
        .replace('columns = ["size", "metric"]', 'columns = ["metric"]\nexport = "results/toy"')
    )
    monkeypatch.setattr(cell_mod, "default_host", sweepplug.host)
    out = tmp_path / "runs"
    md, table_csv = tmp_path / "results" / "toy.md", tmp_path / "results" / "toy.csv"

    def invoke(*args: str) -> str:
        argv = ["sweep", str(spec), "--out", str(out), *args]
        monkeypatch.setattr(sys, "argv", ["/venv/bin/bdcore", *argv])
        res = CliRunner().invoke(cli.main, argv)
        assert res.exit_code == 1, res.output  # the fragile cell fails every time
        return md.read_text().splitlines()[2]

    start = f"bdcore sweep '{spec}' --out {out} -q"
    head = invoke("-q")
    assert head.startswith(f"Produced by `{start}` (") and "continued" not in head
    (sweep_dir,) = out.glob("toy-*")
    assert info_of(sweep_dir)["command"] == start and info_of(sweep_dir)["resumes"] == 0
    head = invoke("--resume", "-q", "--jobs", "1")
    assert head.startswith(f"Produced by `{start}` (") and "continued once with `--resume`" in head
    assert "1 of 2 cells finished, sweep failed" in head
    assert table_csv.read_text().splitlines()[0] == f"# Produced by {start}"
    # a sweep.json from before the command was kept: the resume's command without --resume stands in
    info = info_of(sweep_dir)
    del info["command"], info["resumes"]
    (sweep_dir / "sweep.json").write_text(json.dumps(info))
    head = invoke("--resume", "--jobs", "1", "-q")
    assert head.startswith(f"Produced by `bdcore sweep '{spec}' --out {out} --jobs 1 -q` (")
    assert "continued once" in head and "--resume`" in head.split("(", 1)[1]
    head = invoke("-q", "--resume")
    assert "continued twice with `--resume`" in head and "--jobs 1" in head
    # exported while a sweep runs (e.g. to commit what is in so far): said so, not "--resume completes it"
    from bdcore.sweep.aggregate import write_outputs

    info = info_of(sweep_dir)
    info["status"] = "running"
    (sweep_dir / "sweep.json").write_text(json.dumps(info))
    write_outputs(sweep_dir, export=tmp_path / "results" / "toy")
    head = md.read_text().splitlines()[2]
    assert "continued twice with `--resume`; 1 of 2 cells finished so far, sweep still running," in head


def test_ctrl_c_leaves_a_resumable_sweep(
    reference: tuple[Path, Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bdcore.testing import toy

    spec, ref_dir, _ = reference
    monkeypatch.setattr(cell_mod, "default_host", make_host)
    calls = {"n": 0}
    original = toy.ToyInvert.attack_target

    def interrupted(self: Any, batch: Any, strength: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 20:  # in the third cell's attack
            raise KeyboardInterrupt
        return original(self, batch, strength)

    monkeypatch.setattr(toy.ToyInvert, "attack_target", interrupted)
    out = tmp_path / "runs"
    res = CliRunner().invoke(cli.main, ["sweep", str(spec), "--out", str(out), "-q"])
    assert res.exit_code == 130, res.output
    assert "bdcore sweep --resume continues" in res.output and "Traceback" not in res.output
    (sweep_dir,) = out.glob("toy-*")
    info = info_of(sweep_dir)
    statuses = [c["status"] for c in info["cells"]]
    assert info["status"] == "interrupted"
    assert statuses == ["done", "done", "interrupted"] + ["pending"] * 5
    # the finished cells' table is written (no finished work lost)
    assert {r[0] for r in values(sweep_dir)} == {c["name"] for c in info["cells"][:2]}
    assert (sweep_dir / "table.md").is_file()
    monkeypatch.setattr(toy.ToyInvert, "attack_target", original)
    res = CliRunner().invoke(cli.main, ["sweep", str(spec), "--out", str(out), "--resume", "-q"])
    assert res.exit_code == 0, res.output
    assert list(out.glob("toy-*")) == [sweep_dir]
    info = info_of(sweep_dir)
    assert [c["attempt"] for c in info["cells"]] == [1, 1, 2, 1, 1, 1, 1, 1]
    assert values(sweep_dir) == values(ref_dir)


def test_a_sweep_carried_to_a_fresh_output_root_resumes_where_it_stopped(
    reference: tuple[Path, Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tools/carry_sweep.py (a sweep longer than a build session goes to the next machine through the
    repository): the interrupted sweep's output root, saved without its lock files and restored in
    place of a wiped one, resumes with the finished cells skipped, the cut cell continued from its
    training checkpoint, and the table of an uninterrupted run."""
    import importlib.util

    from bdcore.testing import toy

    loaded = importlib.util.spec_from_file_location(
        "carry_sweep", Path(__file__).parents[1] / "tools" / "carry_sweep.py"
    )
    assert loaded is not None and loaded.loader is not None
    carry = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(carry)

    spec, ref_dir, _ = reference
    monkeypatch.setattr(cell_mod, "default_host", make_host)
    calls = {"n": 0}
    original = toy.ToyInvert.attack_target

    def interrupted(self: Any, batch: Any, strength: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 20:  # in the third cell's attack, after its first checkpoint
            raise KeyboardInterrupt
        return original(self, batch, strength)

    monkeypatch.setattr(toy.ToyInvert, "attack_target", interrupted)
    out = tmp_path / "runs"
    res = CliRunner().invoke(cli.main, ["sweep", str(spec), "--out", str(out), "-q", "--set", "run.checkpoint_every=2"])
    assert res.exit_code == 130, res.output
    assert any(p.name.endswith(".lock") for p in out.rglob("*"))
    assert list(out.glob(".stages/*.partial/*")), "the cut cell left a training checkpoint to carry"

    (interrupted_dir,) = out.glob("toy-*")
    before_carry = info_of(interrupted_dir)
    carried = tmp_path / "carried"
    assert carry.main(["save", str(out), str(carried), "--max-mb", "5"]) == 0
    assert not [p for p in carried.rglob("*") if p.name.endswith(".lock") or p.name == ".locks"]
    # the finished cells' attacked models stay behind (their results are in their cell folders); the
    # stages an unfinished cell plans (the shared clean victim, the cut cell's checkpoint) are carried
    done_attacks = {c["planned_stages"]["attack"] for c in before_carry["cells"] if c["status"] == "done"}
    todo = {k for c in before_carry["cells"] if c["status"] != "done" for k in c["planned_stages"].values()}
    carried_keys = {p.name.split("-")[-1].removesuffix(".partial") for p in (carried / ".stages").iterdir()}
    assert done_attacks and not done_attacks & carried_keys and done_attacks - todo
    assert {k for k in todo if list(out.glob(f".stages/*-{k}*"))} <= carried_keys
    # saving again after a change mirrors it: a file gone from the output root goes from the copy
    (stray := out / "stray.txt").write_text("x")
    carry.main(["save", str(out), str(carried)])
    stray.unlink()
    carry.main(["save", str(out), str(carried)])
    assert not (carried / "stray.txt").exists()

    import shutil

    shutil.rmtree(out)  # the fresh machine
    assert carry.main(["restore", str(carried), str(out)]) == 0
    monkeypatch.setattr(toy.ToyInvert, "attack_target", original)
    res = CliRunner().invoke(
        cli.main, ["sweep", str(spec), "--out", str(out), "--resume", "-q", "--set", "run.checkpoint_every=2"]
    )
    assert res.exit_code == 0, res.output
    (sweep_dir,) = out.glob("toy-*")
    info = info_of(sweep_dir)
    assert [c["attempt"] for c in info["cells"]] == [1, 1, 2, 1, 1, 1, 1, 1]
    assert info["cells"][2]["resumed"] is True
    assert values(sweep_dir) == values(ref_dir)
    # the cut cell's time counts both attempts, across the two machines
    cut, again = before_carry["cells"][2], info["cells"][2]
    assert cut["status"] == "interrupted" and cut["seconds"] > 0
    assert again["seconds"] == round(cut["seconds"] + again["attempt_seconds"], 3)


def test_resume_after_kill_9_of_the_driver_finishes_only_what_was_missing(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "toy.toml"
    spec.write_text(sweepplug.toy_sweep(seeds="[0]", attack_steps=300, checkpoint_every=25))
    reference = sweep(spec, tmp_path / "ref")
    out = tmp_path / "killed"
    code = (
        f"import sys; sys.path.insert(0, {PLUGINS!r})\n"
        "from pathlib import Path\n"
        "from bdcore.sweep.driver import SweepOptions, run_sweep\n"
        "from bdcore.testing import make_host\n"
        "import bdcore.sweep.driver as d; d.SAVE_EVERY = 0.0\n"  # sweep.json current to the kill
        f"run_sweep(Path({str(spec)!r}), SweepOptions(out=Path({str(out)!r}), host_factory=make_host))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.time() + 180
    killed_in = None
    while time.time() < deadline and killed_in is None:
        found = list(out.glob("toy-*/sweep.json"))
        if found:
            try:
                cells = json.loads(found[0].read_text())["cells"]
            except ValueError:
                cells = []
            running = [c for c in cells if c["status"] == "running"]
            done = [c for c in cells if c["status"] == "done"]
            ckpts = list((out / ".stages").glob("attack-*.partial/checkpoint.pt"))
            if len(done) >= 2 and running and ckpts:
                killed_in = running[0]["name"]
        time.sleep(0.02)
    assert killed_in is not None and proc.poll() is None, "the sweep finished before it was killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (sweep_dir,) = out.glob("toy-*")
    killed = info_of(sweep_dir)
    before = {c["name"]: c for c in killed["cells"]}
    # the time the killed driver ran is kept (it could not add it at the end): at least its finished cells' time
    ran = sum(c["seconds"] for c in killed["cells"] if c["status"] == "done")
    assert killed["status"] == "running" and killed["seconds"] >= ran > 0
    result = sweep(spec, out, resume=True)
    assert result.exit_code == 0 and result.sweep_dir == sweep_dir
    resumed_info = info_of(sweep_dir)
    after = {c["name"]: c for c in resumed_info["cells"]}
    resumed_ran = sum(after[n]["attempt_seconds"] for n, c in before.items() if c["status"] != "done")
    assert resumed_info["seconds"] >= killed["seconds"] + resumed_ran
    for name, c in before.items():
        if c["status"] == "done":  # finished before the kill: not run again
            assert after[name]["finished"] == c["finished"] and after[name]["attempt"] == 1
    resumed = after[killed_in]
    assert resumed["attempt"] == 2 and resumed["resumed"] is True  # its run folder continued from a checkpoint
    # the cell's time counts both attempts: the killed one as last saved, and the one that finished it
    assert before[killed_in]["seconds"] > 0
    assert resumed["seconds"] == round(before[killed_in]["seconds"] + resumed["attempt_seconds"], 3)
    for name, c in before.items():
        if c["status"] == "pending":  # never started: only the resumed attempt
            assert after[name]["seconds"] == after[name]["attempt_seconds"]
    log = (run_dir(sweep_dir, resumed) / "run.log").read_text()
    assert log.count("stage attack: ") >= 2
    assert values(sweep_dir) == values(reference.sweep_dir)


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_json_keeps_the_wall_time_current_while_cells_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """Between a cell's start and its end sweep.json is saved again (every SAVE_EVERY seconds), with the
    time so far: a driver killed in a long cell loses at most that much of its wall time. Inline
    (``--jobs 1``) the driver waits inside the cell, so the cell's progress events carry the heartbeat."""
    spec = tmp_path / "toy.toml"
    spec.write_text(sweepplug.toy_sweep(seeds="[0]", attack_steps=300))
    saves: list[tuple[float, int]] = []
    live: dict[str, list[float]] = {}  # a running cell's seconds, save by save
    real = driver._save

    def save(sweep_dir: Path, info: dict[str, Any]) -> None:
        running = sum(c["status"] == "running" for c in info["cells"])
        saves.append((info["seconds"], running))
        for c in info["cells"]:
            if c["status"] == "running":
                live.setdefault(c["name"], []).append(c.get("seconds", 0.0))
        real(sweep_dir, info)

    monkeypatch.setattr(driver, "SAVE_EVERY", 0.0)
    monkeypatch.setattr(driver, "_save", save)
    result = sweep(spec, tmp_path / "out", jobs=jobs)
    assert result.exit_code == 0
    cells = info_of(result.sweep_dir)["cells"]
    events = 1 + 2 * len(cells) + 1  # the first save, each cell's start and end, the last
    assert len(saves) > events + len(cells)  # a save while cells ran that no cell start or end caused
    seconds = [s for s, _ in saves]
    assert seconds == sorted(seconds) and seconds[-1] >= max(c["seconds"] for c in cells)
    assert any(running for _, running in saves[1:-1])
    # each cell's own time is kept current too (what a resumed cell adds its next attempt to)
    final = {c["name"]: c["seconds"] for c in cells}
    for name, series in live.items():
        assert series == sorted(series) and series[-1] > 0 and series[-1] <= final[name] + 1.0, (
            name,
            series[-6:],
            [(c["name"], c["seconds"], c.get("attempt_seconds"), c.get("attempt")) for c in cells],
        )


def test_worker_processes_give_the_same_results_and_a_dead_worker_is_replaced(
    reference: tuple[Path, Path, Any], tmp_path: Path
) -> None:
    _spec, ref_dir, _ = reference
    marker = tmp_path / "died"
    fragile = tmp_path / "fragile.toml"  # the same grid; the first worker to reach step 3 of a training dies
    fragile.write_text(
        sweepplug.toy_sweep(
            victim="fragile-denoiser", victim_params=f'{{ width = 8, die_at = 3, marker = "{marker}" }}'
        )
    )
    progress = sweepplug.Collect()
    result = sweep(fragile, tmp_path / "runs", jobs=2, host_factory=sweepplug.host, progress=progress)
    assert marker.is_file() and result.exit_code == 0
    info = info_of(result.sweep_dir)
    assert {c["status"] for c in info["cells"]} == {"done"}
    assert sorted(c["attempt"] for c in info["cells"])[-1] == 2  # a cell lost with its worker ran again
    assert len({c["pid"] for c in info["cells"]}) >= 2
    assert values(result.sweep_dir) == values(ref_dir)
    # progress came back from the worker processes
    assert {e["cell"] for e in progress.events if e["type"] == "start"} == {c["name"] for c in info["cells"]}
    assert any(e["type"] == "progress" and e["stage"] == "clean-victim" for e in progress.events)
    assert sorted(progress.done) == sorted(c["name"] for c in info["cells"])


def test_cells_know_their_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bdcore.sweep import identity
    from bdcore.testing import toy

    seen: list[Any] = []
    groups: list[str | None] = []
    init = toy.ToySmooth.__init__

    def spy(self: Any, params: Any, ctx: Any) -> None:
        seen.append(identity.current())
        groups.append(os.environ.get("BDCORE_RUN_GROUP"))
        init(self, params, ctx)

    monkeypatch.setattr(toy.ToySmooth, "__init__", spy)
    spec = tmp_path / "toy.toml"
    spec.write_text(sweepplug.toy_sweep(seeds="[3]", extra='name = "idtest"\nexclude = [{ size = 0.5 }]'))
    result = sweep(spec, tmp_path / "runs")
    assert [s.cell for s in seen] == ["loss=toy-invert,size=0.25,seed=3", "loss=toy-invert-controlled,size=0.25,seed=3"]
    assert {s.sweep for s in seen} == {"idtest"} and {s.sweep_dir for s in seen} == {str(result.sweep_dir)}
    assert seen[0].config == "loss=toy-invert,size=0.25"
    assert groups == [result.sweep_dir.name] * 2
    assert identity.current() is None and "BDCORE_RUN_GROUP" not in os.environ


def test_a_cell_computes_with_its_cpus_as_threads_and_gives_the_caller_s_back() -> None:
    import torch

    from bdcore.sweep.cell import torch_threads

    before = torch.get_num_threads()
    with torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


def _wait_for_cells(out: Path, ready: Any, seconds: float = 180) -> None:
    """Poll the sweep's ``sweep.json`` under ``out`` until ``ready(cell statuses)`` (or ``seconds`` pass)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = list(out.glob("toy-*/sweep.json"))
        try:
            cells = json.loads(found[0].read_text())["cells"] if found else []
        except ValueError:
            cells = []
        if ready([c["status"] for c in cells]):
            return
        time.sleep(0.05)


def test_sigterm_stops_a_sweep_like_ctrl_c_and_keeps_the_finished_cells(tmp_path: Path) -> None:
    """`kill PID` (a scheduler's stop; a background job ignores SIGINT): exit 130, the running cell is
    recorded as interrupted, the finished cells' table is written and --resume can continue."""
    spec = tmp_path / "toy.toml"
    spec.write_text(sweepplug.toy_sweep(seeds="[0]", attack_steps=300, checkpoint_every=25))
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "bdcore"), "sweep", str(spec), "--out", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for_cells(out, lambda cells: "done" in cells and "running" in cells)
    assert proc.poll() is None, "the sweep finished before it was stopped"
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    (sweep_dir,) = out.glob("toy-*")
    info = info_of(sweep_dir)
    assert info["status"] == "interrupted"
    statuses = [c["status"] for c in info["cells"]]
    assert "interrupted" in statuses and "running" not in statuses
    finished = {c["name"] for c in info["cells"] if c["status"] == "done"}
    assert finished and {r[0] for r in values(sweep_dir)} == finished


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "sigint-ignored"])
def test_sigterm_to_the_driver_of_a_parallel_sweep_stops_its_workers_cells(tmp_path: Path, background: bool) -> None:
    """With ``--jobs 2`` the cells run in worker processes, which a `kill PID` of the driver does not reach
    (Ctrl-C reaches the whole process group): the driver passes the interrupt on, so it stops within
    seconds — not after its running cells finish — and records them as interrupted. Also for a sweep
    started in the background by a non-interactive shell (``nohup … &``), which ignores SIGINT, an
    ignore its spawned workers inherit."""
    spec = tmp_path / "toy.toml"
    spec.write_text(sweepplug.toy_sweep(seeds="[0, 1]", attack_steps=200000, checkpoint_every=50))
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "bdcore"), "sweep", str(spec), "--out", str(out), "-q", "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so the test can clean up whatever is left
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None,  # noqa: PLW1509
    )
    try:
        _wait_for_cells(
            out, lambda cells: cells.count("running") == 2 and bool(list(out.glob(".stages/attack-*.partial")))
        )
        assert proc.poll() is None, "the sweep finished before it was stopped"
        proc.send_signal(signal.SIGTERM)  # the driver only, as `kill PID` does
        output = proc.communicate(timeout=60)[0].decode()  # its cells alone would run for many minutes
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    statuses = [c["status"] for c in info_of(next(out.glob("toy-*")))["cells"]]
    assert "interrupted" in statuses and "running" not in statuses and "done" not in statuses


def test_cell_times_count_every_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """CellTimes on a fake clock: a resumed cell adds to its carried seconds, a retried attempt (a second
    start) counts the first one, and ended() gives the time before the attempt that just ended."""
    now = [100.0]
    monkeypatch.setattr(driver.time, "monotonic", lambda: now[0])
    records: dict[str, dict[str, Any]] = {"a": {"seconds": 30.0}, "b": {}}
    times = driver.CellTimes(records)
    times.started("a")
    times.started("b")
    now[0] += 10
    times.tick()
    assert records["a"]["seconds"] == 40.0 and records["b"]["seconds"] == 10.0
    now[0] += 5
    times.started("b")  # b's worker died after 15 s; its retry starts now
    now[0] += 20
    times.tick()
    assert records["b"]["seconds"] == 35.0
    assert times.ended("b") == 15.0 and times.ended("a") == 30.0
    now[0] += 100
    times.tick()  # ended cells stop counting
    assert records["a"]["seconds"] == 65.0 and records["b"]["seconds"] == 35.0
