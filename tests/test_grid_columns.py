"""Metrics adding columns to the report's image grid (``MetricBase.grid_columns``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
from torch import Tensor

from bdcore import hookimpl
from bdcore.components import MetricBase
from bdcore.engine.evaluate import _free_label
from bdcore.errors import ContractError
from bdcore.metrics.batch import EvalBatch
from bdcore.testing import run_spec


@attrs.frozen
class MapParams:
    splits: tuple[str, ...] = ("clean", "poisoned")
    bad: bool = False
    keys: tuple[str, ...] = ("map",)


class InputMap(MetricBase):
    """Reports the mean input brightness; shows the channel-mean of its input as a grey map."""

    higher_is_better = None

    def __init__(self, params: MapParams, ctx: Any = None) -> None:
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)  # type: ignore[assignment]
        self.seen: list[int] = []

    def reset(self) -> None:
        self._sum, self._n = 0.0, 0

    def update(self, batch: EvalBatch) -> None:
        self._sum += float(batch.input.mean(dim=(1, 2, 3)).sum())
        self._n += batch.input.shape[0]

    def compute(self) -> dict[str, float]:
        return {self.name: self._sum / max(self._n, 1)}

    def grid_columns(self, batch: EvalBatch, n: int) -> dict[str, Tensor]:
        if self.params.bad:
            return {"map": batch.input[:n, 0]}  # B×H×W: not an image batch
        grey = batch.input[:n].mean(dim=1, keepdim=True)
        return {k: grey for k in self.params.keys}


class MapPlugin:
    @hookimpl
    def register_metrics(self, register: Any) -> None:
        register("input-map", InputMap, params=MapParams, summary="test: grid columns from a metric")


SPEC = """
[run]
name = "grid"
seed = 3
[data]
use = "toy-smooth"
params = {{ count = 12, size = 16 }}
[victim]
use = "toy-denoiser"
params = {{ width = 8 }}
[train]
steps = 2
batch_size = 4
{attack}
[eval]
grid = 3
[[metric]]
use = "psnr"
{metrics}
"""

ATTACK = """
[attack]
poison_rate = 0.5
steps = 2
batch_size = 4
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert"
"""


def _headers(html: str) -> list[str]:
    return re.findall(r"<td><b>(.*?)</b></td>", html)


def test_metric_columns_join_the_grid_and_the_report(tmp_path: Path) -> None:
    metrics = '[[metric]]\nuse = "input-map"\n[[metric]]\nuse = "input-map"\nlabel = "poisoned-map"\n'
    metrics += 'params = { splits = ["poisoned"], keys = ["map", "a b", "a-b"] }\n'
    out = run_spec(SPEC.format(attack=ATTACK, metrics=metrics), tmp_path, [MapPlugin()])
    html = (out.run_dir / "report.html").read_text()
    headers = _headers(html)
    # per model: its outputs first, then the clean split's metric columns, then the poisoned split's
    model_columns = [
        "output: clean input",
        "output: poisoned input",
        "input-map: map",
        "input-map: map [poisoned]",  # the same metric on the poisoned split: the clash gets the split
        "poisoned-map: map",
        "poisoned-map: a b",
        "poisoned-map: a-b",
    ]
    inputs = ["clean input", "poisoned input", "residual (amplified)", "attack target"]
    assert headers == inputs + model_columns + model_columns  # clean victim, then attacked model
    assert re.findall(r"<th colspan=(\d+)>(.*?)</th>", html.split("<h2>Examples</h2>")[1]) == [
        ("4", "test inputs"),
        ("7", "clean victim"),
        ("7", "attacked model"),
    ]
    files = sorted(p.name for p in (out.run_dir / "grid").glob("*.png"))
    # distinct labels that slug alike still get their own files, 3 images each
    for stem in (
        "attacked-model-input-map-map",
        "attacked-model-input-map-map-poisoned",
        "attacked-model-poisoned-map-a-b",
        "attacked-model-poisoned-map-a-b-2",
        "clean-victim-poisoned-map-a-b-2",
    ):
        assert [f for f in files if re.fullmatch(rf"{re.escape(stem)}-\d\.png", f)] == [
            f"{stem}-{i}.png" for i in range(3)
        ], (stem, files)
    for i in range(3):
        assert f"grid/attacked-model-poisoned-map-a-b-2-{i}.png" in html
    # the poisoned split's column shows the triggered input (its mean differs from the clean one)
    import numpy as np
    from PIL import Image

    grid = out.run_dir / "grid"
    clean_map = torch.from_numpy(np.asarray(Image.open(grid / "attacked-model-input-map-map-0.png"), dtype=np.float32))
    trig_map = torch.from_numpy(
        np.asarray(Image.open(grid / "attacked-model-input-map-map-poisoned-0.png"), dtype=np.float32)
    )
    assert (trig_map - clean_map).abs().max() > 20  # toy-patch: a white corner square
    assert out.value("input-map", split="poisoned") > out.value("input-map", split="clean")


def test_without_an_attack_the_grid_is_the_clean_input_and_the_clean_victim(tmp_path: Path) -> None:
    out = run_spec(SPEC.format(attack="", metrics='[[metric]]\nuse = "input-map"\n'), tmp_path, [MapPlugin()])
    html = (out.run_dir / "report.html").read_text()
    assert _headers(html) == ["clean input", "output: clean input", "input-map: map"]
    assert re.findall(r"<th colspan=(\d+)>(.*?)</th>", html.split("<h2>Examples</h2>")[1]) == [
        ("1", "test inputs"),
        ("2", "clean victim"),
    ]
    assert len(list((out.run_dir / "grid").glob("clean-victim-input-map-map-*.png"))) == 3


def test_a_column_that_is_not_an_image_batch_is_a_contract_error(tmp_path: Path) -> None:
    metrics = '[[metric]]\nuse = "input-map"\nparams = { bad = true }\n'
    with pytest.raises(ContractError, match=r"metric input-map \(metric\[1\]\): grid column 'map' must be"):
        run_spec(SPEC.format(attack=ATTACK, metrics=metrics), tmp_path, [MapPlugin()])


def test_free_label_is_deterministic() -> None:
    cols: dict[str, int] = {"a": 0}
    assert _free_label(cols, "b", "clean") == "b"
    assert _free_label(cols, "a", "poisoned") == "a [poisoned]"
    cols.update({"a [poisoned]": 1})
    assert _free_label(cols, "a", "poisoned") == "a [poisoned] (2)"
    cols.update({"a [poisoned] (2)": 2})
    assert _free_label(cols, "a", "poisoned") == "a [poisoned] (3)"


def test_metric_base_offers_no_columns_by_default() -> None:
    class Plain(MetricBase):
        def update(self, batch: Any) -> None: ...

        def compute(self) -> dict[str, float]:
            return {}

    x = torch.rand(2, 3, 8, 8)
    assert Plain().grid_columns(EvalBatch(split="clean", input=x, output=x), 2) == {}


class ModelInputCheck(MetricBase):
    """How far ``clean_model_input`` is from the clean input, from one 3×3 box blur of it, and from ``input``."""

    higher_is_better = None

    def reset(self) -> None:
        self._max = {"raw": 0.0, "box3": 0.0, "input": 0.0}

    def update(self, batch: EvalBatch) -> None:
        import goodplug

        assert batch.clean_model_input is not None and batch.clean_input is not None
        blurred = goodplug.Box3(goodplug.BlurParams(passes=1)).transform(batch.clean_input)
        for key, ref in (("raw", batch.clean_input), ("box3", blurred), ("input", batch.input)):
            self._max[key] = max(self._max[key], float((batch.clean_model_input - ref).abs().max()))

    def compute(self) -> dict[str, float]:
        return {f"{self.name}.{k}": v for k, v in self._max.items()}


class CheckPlugin:
    @hookimpl
    def register_metrics(self, register: Any) -> None:
        register("model-input-check", ModelInputCheck, summary="test: clean_model_input")


def test_clean_model_input_is_the_clean_input_after_the_input_defense(tmp_path: Path) -> None:
    import goodplug

    metrics = '[[metric]]\nuse = "model-input-check"\n[[defense]]\nuse = "box3"\n'
    out = run_spec(SPEC.format(attack=ATTACK, metrics=metrics), tmp_path, [goodplug, CheckPlugin()])
    for split in ("clean", "poisoned"):
        assert out.value("model-input-check.raw", split=split) == 0.0
        assert out.value("model-input-check.raw", stage="defended", split=split, defense="box3") > 0.01
        assert out.value("model-input-check.box3", stage="defended", split=split, defense="box3") == 0.0
    assert out.value("model-input-check.input", split="clean") == 0.0
    assert out.value("model-input-check.input", split="poisoned") > 0.1  # the trigger
