"""With every plugin installed: BAIQA's comparison — the baselines' triggers (Blended, WaNet, FTrojan on the
BAIQA mid-64 band) under P-BAIQA's α-scaled labels, and the fine-tuning / fine-pruning defenses on the
attacked IQA model, all through one spec each (the Table 1/2 structure)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("bd_plugin_baiqa")
pytest.importorskip("bd_plugin_baselines")

SPEC = """
[run]
name = "baiqa-{trigger}"
seed = 0
[data]
use = "iqa-embedded"
params = {{ size = 48, crop = 32, test_crops = 1, levels = 2 }}
[victim]
use = "cnniqa"
params = {{ filters = 8, hidden = 16, patch = 16, color = true }}
[train]
steps = 3
batch_size = 8
lr = 1e-3
[attack]
poison_rate = 0.3
steps = 3
batch_size = 8
lr = 1e-3
[attack.trigger]
use = "{trigger}"
{trigger_params}
[attack.loss]
use = "p-baiqa"
[[defense]]
use = "fine-tuning"
params = {{ steps = 2 }}
[[defense]]
use = "fine-pruning"
params = {{ rate = 0.25, calib_batches = 1 }}
[[metric]]
use = "plcc"
[[metric]]
use = "mmra"
params = {{ alphas = [1.0, -0.5] }}
[[metric]]
use = "psnr-alpha"
[eval]
limit = 8
batch_size = 8
"""

TRIGGERS = {
    "blended": "",
    "wanet": "",
    "ftrojan": 'params = { variant = "baiqa-mid64", window = 16, magnitude = 12.0 }',
}


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_baseline_trigger_under_p_baiqa_with_defenses(trigger: str, tmp_path: Path) -> None:
    import bd_plugin_baiqa.plugin as baiqa
    import bd_plugin_baselines.plugin as baselines

    from bdcore.testing import run_spec

    spec = SPEC.format(trigger=trigger, trigger_params=TRIGGERS[trigger])
    out = run_spec(spec, tmp_path, plugins=[baiqa, baselines])
    models = {(r["stage"], r["defense"]) for r in out.rows if r["metric"] == "mmra"}
    assert ("attacked", None) in models
    assert {d for s, d in models if s == "defended"} == {"fine-tuning", "fine-pruning"}
    # α scaling reaches the baseline trigger: α = −0.5 and α = 1 give different inputs, so both curve points exist
    mra = {r["metric"]: r["value"] for r in out.rows if r["stage"] == "attacked" and r["metric"].startswith("mra@")}
    assert set(mra) == {"mra@1", "mra@-0.5"} and all(math.isfinite(v) for v in mra.values())
    assert 15.0 < out.value("psnr-alpha", stage="attacked", split="clean") < 60.0
