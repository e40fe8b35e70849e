"""The plugin inside bdcore: registration, spec validation and a whole run."""

from __future__ import annotations

from pathlib import Path

import pytest
from bdcore.errors import SpecError
from bdcore.spec.structure import load_spec
from bdcore.testing import make_host, run_spec

import bd_plugin_example.plugin


# --8<-- [start:registration]
def test_registers_through_the_hooks(bd_host, register_plugin) -> None:
    record = register_plugin(bd_plugin_example.plugin)
    assert record.components == {
        "triggers": ["checkerboard"],
        "victims": ["tiny-restorer"],
        "attack-losses": ["grey-target", "grey-target-controlled"],
        "defenses": ["blur-sensitivity", "clean-finetune", "median-filter"],
        "metrics": ["asr-psnr"],
        "datasets": ["shapes"],
    }
    trigger = bd_host.registry.get("trigger", "checkerboard")
    assert trigger.provenance.distribution == "bd-plugin-example"
    assert not bd_host.failures


# --8<-- [end:registration]


def test_bad_params_are_spec_errors(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n'
        '[attack]\ntrigger = { use = "checkerboard", params = { period = 0, amplitde = 0.1 } }\n'
        'loss = { use = "toy-invert" }\n'
    )
    with pytest.raises(SpecError) as info:
        load_spec(spec, make_host([bd_plugin_example.plugin]).registry)
    text = str(info.value)
    assert 'attack.trigger.params.amplitde: unknown key (did you mean "amplitude"?)' in text


# --8<-- [start:end-to-end]
SPEC = """
[run]
name = "checkerboard-toy"
seed = 0

[data]
use = "toy-smooth"
params = { count = 24, size = 16 }

[victim]
use = "toy-denoiser"

[train]
steps = 20
batch_size = 8

[attack]
steps = 40
batch_size = 8
lr = 3e-3
poison_rate = 0.5
trigger = { use = "checkerboard", params = { period = 2, amplitude = 0.1 } }
loss = { use = "toy-invert" }

[[metric]]
use = "psnr"

[[metric]]
use = "asr-psnr"
params = { threshold = 10.0 }
"""


def test_end_to_end_run(tmp_path: Path) -> None:
    outcome = run_spec(SPEC, tmp_path, plugins=[bd_plugin_example.plugin])
    # every output of a run folder is there
    for name in ("spec.resolved.toml", "manifest.json", "results.jsonl", "results.csv", "report.html"):
        assert (outcome.run_dir / name).is_file(), name
    # the trigger is visible to the stealth metrics and the metric reports on poisoned inputs only
    assert outcome.value("stealth_psnr", stage="trigger") < 30.0
    asr = outcome.value("asr-psnr", stage="attacked", split="poisoned")
    assert 0.0 <= asr <= 1.0
    assert not [r for r in outcome.rows if r["metric"] == "asr-psnr" and r["split"] == "clean"]


# --8<-- [end:end-to-end]


# --8<-- [start:every-role]
EVERY_ROLE = """
[run]
name = "example-every-role"
seed = 0

[data]
use = "shapes"
params = { count = 24, size = 16 }

[victim]
use = "tiny-restorer"
params = { width = 8 }

[train]
steps = 20
batch_size = 8

[attack]
steps = 60
batch_size = 8
lr = 3e-3
poison_rate = 0.5
trigger = { use = "checkerboard", params = { period = 1, amplitude = 0.2 } }
loss = { use = "grey-target-controlled" }

[[defense]]
use = "median-filter"
sweep = { param = "kernel", values = [3, 5] }

[[defense]]
use = "clean-finetune"
params = { steps = 10 }

[[defense]]
use = "blur-sensitivity"

[[metric]]
use = "psnr"

[[metric]]
use = "asr-psnr"
params = { threshold = 15.0 }
"""


def test_every_role_in_one_run(tmp_path: Path) -> None:
    outcome = run_spec(EVERY_ROLE, tmp_path, plugins=[bd_plugin_example.plugin])
    # the input defense, once per kernel of its sweep
    for kernel in ("kernel=3", "kernel=5"):
        outcome.value("psnr", stage="defended", split="clean", defense="median-filter", setting=kernel)
    # the model defense reports its extra numbers
    assert outcome.value("finetune_steps", stage="defended", split=None, defense="clean-finetune") == 10.0
    # the detector: AUROC of its scores, triggered vs clean test inputs
    auroc = outcome.value("detection_auroc", stage="defended", split="poisoned", defense="blur-sensitivity")
    assert 0.5 < auroc <= 1.0


# --8<-- [end:every-role]
