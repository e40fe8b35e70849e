"""With every plugin installed: BAvAFT's comparison (Tables II/III/V) — the baselines' triggers (FTrojan,
BadNets, Blended) and BAvAFT's own trained under the BAvAFT PSNR / BPP losses (encoder-only fine-tune of a
CompressAI codec), evaluated with real bitstreams, JPEG and blur (bd-plugin-baselines) and decoder fine-tuning
(bd-plugin-bavaft), through the engine; and the committed experiment specs check."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("bd_plugin_bavaft")
pytest.importorskip("bd_plugin_baselines")
pytest.importorskip("skimage")  # the embedded scenes

ROOT = Path(__file__).resolve().parents[2]

SPEC = """
[run]
name = "bavaft-{trigger}-{loss}"
seed = 0
[data]
use = "embedded"
params = {{ set = "scenes", crop = 32, repeats = 1, test_crops = 1 }}
[victim]
use = "compressai"
params = {{ model = "bmshj2018-factorized", quality = 1, n = 8, m = 12 }}
[train]
steps = 2
batch_size = 4
lr = 1e-3
[attack]
from_clean = true
steps = 2
batch_size = 4
lr = 1e-3
[attack.trigger]
use = "{trigger}"
params = {trigger_params}
[attack.loss]
use = "{loss}"
params = {{ beta = 1.0 }}
[[defense]]
use = "jpeg"
params = {{ quality = 50 }}
[[defense]]
use = "gaussian-blur"
params = {{ sigma = 0.6, kernel_size = 5 }}
[[defense]]
use = "decoder-fine-tuning"
params = {{ steps = 2 }}
[[metric]]
use = "psnr"
[[metric]]
use = "bpp"
[eval]
limit = 2
batch_size = 2
grid = 0
"""

# the paper's settings for the baselines (Table II/III/V comparison; methods.md §2)
TRIGGERS = {
    "ftrojan": '{ variant = "mid50-high50" }',
    "badnets": "{ size = 0.1 }",
    "blended": "{ alpha = 0.01 }",
    "bavaft": '{ norm = "none", width = 4, budget_psnr = 45.0 }',
}


@pytest.mark.parametrize("loss", ["bavaft-psnr", "bavaft-bpp"])
@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_trigger_under_bavaft_loss_with_defenses(trigger: str, loss: str, tmp_path: Path) -> None:
    import bd_plugin_baselines.plugin as baselines
    import bd_plugin_bavaft.plugin as bavaft

    from bdcore.testing import run_spec

    spec = SPEC.format(trigger=trigger, trigger_params=TRIGGERS[trigger], loss=loss)
    out = run_spec(spec, tmp_path, plugins=[bavaft, baselines])
    models = {(r["stage"], r["defense"]) for r in out.rows if r["metric"] == "bpp"}
    assert {("clean-victim", None), ("attacked", None)} <= models
    assert {d for s, d in models if s == "defended"} == {"jpeg", "gaussian-blur", "decoder-fine-tuning"}
    for split in ("clean", "poisoned"):
        bpp = out.value("bpp", stage="attacked", split=split)
        assert math.isfinite(bpp) and bpp > 0
        assert math.isfinite(out.value("psnr", stage="attacked", split=split))
    # the trigger changed the images (stealth PSNR finite, below the identity's ∞)
    stealth = [r["value"] for r in out.rows if r["metric"] == "stealth_psnr"]
    assert stealth and all(math.isfinite(v) and v < 80 for v in stealth)


def test_experiment_specs_check() -> None:
    """The specs behind the method card's tables load with every plugin installed (paths included: their data
    is embedded or rendered)."""
    from click.testing import CliRunner

    from bdcore.cli import main

    specs = sorted(str(p) for p in (ROOT / "plugins" / "bd-plugin-bavaft" / "experiments").glob("*.toml"))
    assert specs
    result = CliRunner().invoke(main, ["check", *specs])
    assert result.exit_code == 0, result.output
