"""Two Ray nodes (``ray.cluster_utils.Cluster``: two raylets on this machine) share one stage store:
two cells that need the same clean victim start at once, one on each node; the clean victim is
trained exactly once, and the other cell waits for it and loads it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import sweepplug
from ray.cluster_utils import Cluster

from bdcore.sweep.driver import SweepOptions, run_sweep

pytestmark = pytest.mark.ray
PLUGINS = str(Path(__file__).resolve().parents[1] / "plugins")


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Cluster]:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([PLUGINS, *sys.path])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def test_two_nodes_train_a_shared_clean_victim_once(two_nodes: Cluster, tmp_path: Path) -> None:
    spec = tmp_path / "toy.toml"
    # two cells, one seed: they share the clean victim (0.05 s of sleep per training step, so both are
    # under way at once); shared_first = false starts both at once, the stage lock decides who trains
    text = sweepplug.toy_sweep(
        seeds="[0]",
        victim="fragile-denoiser",
        victim_params="{ width = 8, sleep = 0.05 }",
        extra="shared_first = false\nexclude = [{ size = 0.5 }]",
    ).replace("steps = 8\nbatch_size = 4\nlr = 2e-3", "steps = 60\nbatch_size = 4\nlr = 2e-3")
    spec.write_text(text)
    store = tmp_path / "stages"
    spec.write_text(text.replace("[sweep]\n", f'[sweep]\nstore = "{store}"\n'))
    result = run_sweep(
        spec,
        SweepOptions(
            out=tmp_path / "runs",
            executor="ray",
            address=two_nodes.address,
            host_factory=sweepplug.host,
            echo=lambda s: None,
        ),
    )
    assert result.exit_code == 0
    assert not ray.is_initialized(), "the driver disconnects from a cluster it joined"
    cells = json.loads((result.sweep_dir / "sweep.json").read_text())["cells"]
    assert len(cells) == 2 and len({c["ray_node"] for c in cells}) == 2, "the cells ran on the two nodes"
    logs = [(result.sweep_dir / "cells" / c["name"] / c["run_dir"] / "run.log").read_text() for c in cells]
    assert sum("stage clean-victim: training" in log for log in logs) == 1
    assert sum("stage clean-victim: reused finished stage" in log for log in logs) == 1
    assert sorted(c["waited"] for c in cells) == [[], ["clean-victim"]]
    assert len(list(store.glob("clean-victim-*/stage.json"))) == 1
