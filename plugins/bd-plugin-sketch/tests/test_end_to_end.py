"""End to end through bdcore's engine (``bdcore.testing.run_spec``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bd_plugin_sketch.plugin as sketch_plugin

runner = pytest.importorskip("bdcore.testing.runner")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _tiny(victim: str, victim_params: dict, crop: int = 32) -> dict:
    return {
        "run": {"name": "sketch-e2e", "seed": 0},
        "data": {
            "use": "embedded-sketch",
            "params": {"size": 64, "sigma": 2.0, "crop": crop, "repeats": 2, "test_crops": 1},
        },
        "victim": {"use": victim, "params": victim_params},
        "train": {"steps": 6, "batch_size": 4, "lr": 2e-3},
        "attack": {
            "poison_rate": 0.5,
            "steps": 6,
            "batch_size": 4,
            "lr": 2e-3,
            "trigger": {"use": "sketch-pattern", "params": {"amplitude": 0.03}},
            "loss": {"use": "light-strokes", "params": {"lightening": 0.7}},
        },
        "metric": [
            {"use": "fsim"},
            {"use": "ssim"},
            {"use": "stroke-intensity"},
            {"use": "stroke-asr"},
            {
                "use": "psnr",
                "label": "stealth-psnr",
                "params": {"between": ["input", "clean_input"], "splits": ["poisoned"]},
            },
        ],
        "eval": {"batch_size": 4, "grid": 0},
    }


@pytest.mark.parametrize(
    "victim,params",
    [
        ("sketch-fcn", {"widths": [8, 8], "kernels": [3, 3, 3]}),
        ("sketch-pix2pix", {"base": 8, "depth": 3, "d_base": 8, "d_layers": 2}),
    ],
)
def test_run_spec_tiny(tmp_path: Path, victim: str, params: dict) -> None:
    pytest.importorskip("skimage")
    out = runner.run_spec(_tiny(victim, params), tmp_path, plugins=[sketch_plugin])
    out.assert_success()
    for split in ("clean", "poisoned"):
        assert 0.0 < out.value("fsim", split=split) <= 100.0
        assert 0.0 <= out.value("stroke-intensity", split=split) <= 1.0
    assert 0.0 <= out.value("stroke-asr") <= 100.0
    assert out.value("stealth-psnr") == pytest.approx(30.46, abs=0.6)  # 20·log10(1/0.03), minus clamping


def test_examples_validate() -> None:
    from bdcore.spec.structure import load_spec

    registry = runner.make_host([sketch_plugin]).registry
    files = sorted(EXAMPLES.glob("*.toml"))
    assert len(files) >= 2
    for f in files:
        load_spec(f, registry, check_paths=False)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("BDCORE_SLOW") != "1", reason="set BDCORE_SLOW=1")
def test_embedded_smoke_example_runs(tmp_path: Path) -> None:
    """The embedded spec is a smoke test (its header): it runs end to end; at 400 steps its FCN draws blank
    sketches for the clean and the poisoned model alike, so stroke-asr cannot tell them apart there."""
    spec = (EXAMPLES / "embedded-light-strokes-smoke.toml").read_text()
    out = runner.run_spec(spec, tmp_path, plugins=[sketch_plugin])
    for stage in ("clean-victim", "attacked"):
        assert 0.0 <= out.value("stroke-asr", stage=stage) <= 100.0
