"""Registration, the BAvAFT++ Table V grid as spec sweeps, and an end-to-end toy run."""

from __future__ import annotations

import os

import pytest
from bd_plugin_baselines import registration_defenses

TABLE_V = """
[run]
name = "table-v"
seed = 0
[data]
use = "toy-smooth"
[victim]
use = "toy-denoiser"
[train]
steps = {train_steps}
batch_size = 4
[attack]
poison_rate = 0.25
steps = {train_steps}
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert"
[[defense]]
use = "gaussian-blur"
sweep = {{ param = "sigma", values = [0.2, 0.4, 0.5, 0.6, 0.8, 1.0] }}
[[defense]]
use = "gaussian-noise"
sweep = {{ param = "sigma", values = [0.02, 0.04, 0.06, 0.08, 0.1] }}
[[defense]]
use = "jpeg"
sweep = {{ param = "quality", values = [90, 70, 50, 30, 10] }}
[[defense]]
use = "bit-squeeze"
sweep = {{ param = "bits", values = [7, 6, 5, 4, 3] }}
{extra}
[[metric]]
use = "psnr"
[[metric]]
use = "stealth"
[[metric]]
use = "freq-distance"
[[metric]]
use = "image-asr"
[eval]
batch_size = 4
"""

MODEL_DEFENSES = """
[[defense]]
use = "fine-tuning"
params = { fraction = 0.5, steps = 3, lr = 1e-3 }
[[defense]]
use = "fine-pruning"
params = { finetune_steps = 2 }
sweep = { param = "rate", values = [0.0, 0.5, 0.98] }
[[defense]]
use = "strip"
params = { n_overlays = 4, pool_size = 8 }
"""


def test_registers_every_defense_and_metric(bd_host, register_plugin) -> None:
    register_plugin(registration_defenses, "baselines_defenses")
    names = {c.name for c in bd_host.registry if c.kind == "defense"}
    assert {"gaussian-blur", "gaussian-noise", "jpeg", "bit-squeeze", "fine-tuning", "fine-pruning", "strip"} <= names
    metrics = {c.name for c in bd_host.registry if c.kind == "metric"}
    assert {"lpips", "stealth", "freq-distance", "image-asr", "grad-cam"} <= metrics


def test_table_v_grid_is_expressible_as_sweeps(tmp_path) -> None:
    from bdcore.spec.structure import load_spec
    from bdcore.testing import make_host

    path = tmp_path / "spec.toml"
    path.write_text(TABLE_V.format(train_steps=2, extra=MODEL_DEFENSES))
    loaded = load_spec(path, make_host([registration_defenses]).registry)
    settings = [(d.component.name, d.setting) for d in loaded.defenses]
    assert len(settings) == 6 + 5 + 5 + 5 + 1 + 3 + 1
    assert ("jpeg", "quality=10") in settings and ("fine-pruning", "rate=0.98") in settings


@pytest.mark.skipif(os.environ.get("BDCORE_SLOW") != "1", reason="end-to-end run; set BDCORE_SLOW=1")
@pytest.mark.slow
def test_end_to_end_toy_run(tmp_path) -> None:
    from bdcore.testing import run_spec

    out = run_spec(TABLE_V.format(train_steps=10, extra=MODEL_DEFENSES), tmp_path, plugins=[registration_defenses])
    defenses = {r["defense"] for r in out.rows}
    assert {"jpeg", "fine-pruning", "strip"} <= {d.split("[")[0] if d else d for d in defenses if d}
