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


@pytest.mark.parametrize("lightening", [0.3, 0.6])
def test_the_victim_trains_poisoned_photos_on_lighter_strokes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lightening: float
) -> None:
    """Through the engine's data-poisoning path: on every poisoned row the victim is trained towards a sketch
    whose strokes (darkness over the ground truth's stroke pixels) are ``lightening`` fainter than the true
    sketch, and no pixel is darker than in the true sketch. Fails on a target that does not lighten strokes."""
    pytest.importorskip("skimage")
    import torch

    from bd_plugin_sketch.attacks import LightStrokes
    from bd_plugin_sketch.ops import stroke_intensity
    from bd_plugin_sketch.victims import SketchFCN

    truths: list[tuple[torch.Tensor, torch.Tensor]] = []  # (true sketches, photos) of the rows handed to poison
    trained: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (targets, inputs, poisoned mask)
    poison, clean_loss = LightStrokes.poison, SketchFCN.clean_loss

    def spy_poison(self: LightStrokes, batch: dict, trigger: object, **kw: object) -> dict:
        out = poison(self, batch, trigger, **kw)  # type: ignore[arg-type]
        truths.append((batch["target"].clone(), out["input"].clone()))
        return out

    def spy_loss(self: SketchFCN, batch: dict) -> dict:
        if "poisoned" in batch:
            trained.append((batch["target"].clone(), batch["input"].clone(), batch["poisoned"].clone()))
        return clean_loss(self, batch)

    monkeypatch.setattr(LightStrokes, "poison", spy_poison)
    monkeypatch.setattr(SketchFCN, "clean_loss", spy_loss)
    spec = _tiny("sketch-fcn", {"widths": [4], "kernels": [3, 3]})
    spec["attack"]["loss"]["params"]["lightening"] = lightening
    runner.run_spec(spec, tmp_path, plugins=[sketch_plugin]).assert_success()
    train_truths = truths[: len(trained)]  # later poison calls are the test set's
    assert trained and sum(int(m.sum()) for _, _, m in trained) >= 4
    for (truth, photo), (target, inputs, mask) in zip(train_truths, trained, strict=True):
        assert torch.equal(inputs[mask], photo)  # the same rows, in the same order
        faded = target[mask]
        assert bool((faded >= truth - 1e-6).all()), "a poisoned target is darker than the true sketch"
        ratio = stroke_intensity(faded, truth, 0.8) / stroke_intensity(truth, truth, 0.8)
        ratio = ratio[~ratio.isnan()]
        assert ratio.numel() and torch.allclose(ratio, torch.full_like(ratio, 1 - lightening), atol=1e-4), ratio
