"""bdcore sweep on a real local Ray: the same results as the local executor; a lost worker is retried.

One ``ray.init(num_cpus=2)`` for the module (it costs seconds). Ray workers import the test
plugin ``sweepplug`` through ``PYTHONPATH``, set before Ray starts its workers.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

import sweepplug

from bdcore.sweep.driver import SweepOptions, run_sweep
from bdcore.testing import make_host

pytestmark = pytest.mark.ray
PLUGINS = str(Path(__file__).resolve().parents[1] / "plugins")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([PLUGINS, *sys.path])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def values(sweep_dir: Path) -> list[tuple[str, ...]]:
    with open(sweep_dir / "results.csv") as fh:
        return sorted((r["cell"], r["model"], r["split"], r["metric"], r["value"]) for r in csv.DictReader(fh))


def cells(sweep_dir: Path) -> list[dict[str, Any]]:
    return list(json.loads((sweep_dir / "sweep.json").read_text())["cells"])


def test_ray_gives_the_local_executor_s_results(tmp_path: Path) -> None:
    spec = tmp_path / "toy.toml"
    spec.write_text(sweepplug.toy_sweep())
    local = run_sweep(spec, SweepOptions(out=tmp_path / "local", host_factory=make_host, echo=lambda s: None))
    progress = sweepplug.Collect()
    on_ray = run_sweep(
        spec,
        SweepOptions(
            out=tmp_path / "ray", executor="ray", host_factory=sweepplug.host, echo=lambda s: None, progress=progress
        ),
    )
    assert local.exit_code == on_ray.exit_code == 0
    assert values(on_ray.sweep_dir) == values(local.sweep_dir)
    ran = cells(on_ray.sweep_dir)
    assert all(c["status"] == "done" and c["ray_node"] for c in ran)
    assert ray.is_initialized(), "a Ray the driver did not start is left running"
    # the clean victim of each seed trained once on Ray too
    assert sum("clean-victim" in c["trained"] for c in ran) == 2
    # progress came back from the workers: every cell started and stepped through its training
    kinds = {(e["type"], e["cell"]) for e in progress.events}
    assert {("start", c["name"]) for c in ran} <= kinds
    steps = [e for e in progress.events if e["type"] == "progress" and e["stage"] == "attack"]
    assert {e["cell"] for e in steps} == {c["name"] for c in ran} and any(e["step"] == e["total"] for e in steps)
    assert sorted(progress.done) == sorted(c["name"] for c in ran)


def test_a_lost_worker_is_retried_and_the_sweep_completes(tmp_path: Path) -> None:
    marker = tmp_path / "died"
    params = f'{{ width = 8, die_at = 3, marker = "{marker}" }}'
    spec = tmp_path / "toy.toml"
    spec.write_text(sweepplug.toy_sweep(seeds="[0]", victim="fragile-denoiser", victim_params=params))
    reference = tmp_path / "ref.toml"  # the same cells, nobody dies
    reference.write_text(sweepplug.toy_sweep(seeds="[0]"))
    result = run_sweep(
        spec,
        SweepOptions(out=tmp_path / "ray", executor="ray", jobs=1, host_factory=sweepplug.host, echo=lambda s: None),
    )
    ref = run_sweep(reference, SweepOptions(out=tmp_path / "ref", host_factory=make_host, echo=lambda s: None))
    assert marker.is_file(), "no worker was killed"
    assert result.exit_code == 0
    ran = cells(result.sweep_dir)
    assert [c["attempt"] for c in ran] == [2, 1, 1, 1]  # the first cell's worker died in its clean training
    assert all(c["status"] == "done" for c in ran)
    assert values(result.sweep_dir) == values(ref.sweep_dir)
