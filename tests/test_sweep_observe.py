"""A sweep's cells in the experiment trackers: one TensorBoard folder per sweep with a subfolder per
cell, and one MLflow store where every cell is a child run of the sweep's parent run."""

from __future__ import annotations

from pathlib import Path

import pytest
import sweepplug

from bdcore.observe.group import GROUP_ENV, MLFLOW_PARENT_ENV
from bdcore.sweep.driver import SweepOptions, run_sweep
from bdcore.testing import make_host


def _sweep(tmp_path: Path, observers: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(GROUP_ENV, raising=False)
    monkeypatch.delenv(MLFLOW_PARENT_ENV, raising=False)
    spec = tmp_path / "toy.toml"
    text = sweepplug.toy_sweep(seeds="[0]", attack_steps=4, extra="exclude = [{ size = 0.5 }]")
    spec.write_text(text.replace('name = "toy"', f'name = "toy"\nobservers = {observers}', 1))
    result = run_sweep(spec, SweepOptions(out=tmp_path / "runs", echo=lambda line: None, host_factory=make_host))
    assert result.exit_code == 0
    return Path(result.sweep_dir)


def test_a_sweep_nests_its_cells_in_tensorboard_and_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorBoard: ``<sweep>/tensorboard/<sweep folder name>/<cell run>`` (the default store moves from the
    cell's output folder to the sweep folder); MLflow: every cell a child run of one parent run tagged with
    the sweep. (MLflow's file store here: creating its default SQLite store takes 20 s on a busy disk.)"""
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    observers = (
        f'["tensorboard", {{ use = "mlflow", params = {{ experiment = "sweep-test", tracking_uri = "{store}" }} }}]'
    )
    sweep_dir = _sweep(tmp_path, observers, monkeypatch)

    group = sweep_dir / "tensorboard" / sweep_dir.name
    cells = sorted(p for p in group.iterdir() if p.is_dir())
    assert len(cells) == 2, cells  # two cells (loss × size 0.25), one seed
    for cell in cells:
        acc = EventAccumulator(str(cell))
        acc.Reload()
        assert "attack/loss" in acc.Tags()["scalars"]

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("bdcore.role") == "group"]
    assert len(parents) == 1 and parents[0].data.tags["bdcore.group"] == sweep_dir.name
    children = [r for r in runs if r.data.tags.get("bdcore.role") != "group"]
    assert len(children) == 2
    assert {r.data.tags.get("mlflow.parentRunId") for r in children} == {parents[0].info.run_id}
    assert all(r.info.status == "FINISHED" for r in children)

    # the cells' own output folders hold no tracker store: the sweep folder holds them
    assert not list((sweep_dir / "cells").rglob("events.out.tfevents.*"))
