"""Attacks that edit their poisoned items once, whole, before training (``prepare_items``).

Clean-label attacks such as C-BAIQA perturb each poisoned image once, on the whole image, and train on the
result (the official code stores the perturbation and adds it at load time); the engine then crops and flips
the edited image like any other. Checked here: the dataset view serves the edited input under the same
crops and flips, the engine calls the hook once with the poisoned items whole and trains on what it
returned, and a wrong return names the attack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from bdcore import hookimpl
from bdcore.context import ItemsContext
from bdcore.data.dataset import Augment, AugmentedDataset
from bdcore.errors import ContractError
from bdcore.testing import run_spec
from bdcore.toy.components import ToyInvert

SIDE = 20
CROP = 12
FILL = 0.25  # the prepared input: a flat grey the random photos never produce


@attrs.frozen
class PrepareParams:
    mode: str = "flat"
    strength: float = 1.0
    clean_weight: float = 0.5


class PreparedInvert(ToyInvert):
    """toy-invert whose poisoned items are replaced, once, by a flat grey image (or a wrong return)."""

    prepared_calls: ClassVar[list[dict[str, Any]]] = []
    poisoned_inputs: ClassVar[list[Tensor]] = []
    evaluating: ClassVar[bool] = False
    fail_at: ClassVar[int | None] = None

    def prepare_items(self, items: ItemsContext) -> dict[Any, Tensor] | None:
        whole = {i: items.fields(i)["input"] for i in items.items}
        type(self).prepared_calls.append(
            {"items": list(items.items), "shapes": {tuple(x.shape) for x in whole.values()}, "crop": items.crop}
        )
        mode = self.params.mode
        if mode == "none":
            return None
        if mode == "unpoisoned":
            return {max(items.items) + 1: torch.full_like(whole[items.items[0]], FILL)}
        if mode == "cropped":
            return {i: torch.full((3, CROP, CROP), FILL) for i in items.items}
        if mode == "range":
            return {i: x + 1.0 for i, x in whole.items()}
        if mode == "noise":  # seeded from the run: a resumed run prepares the same inputs
            gen = items.ctx.generator("noise")
            return {i: (x + 0.2 * torch.rand(x.shape, generator=gen)).clamp(0, 1) for i, x in whole.items()}
        return {i: torch.full_like(x, FILL) for i, x in whole.items()}

    def poison(self, batch: dict[str, Any], trigger: Any, *, generator: torch.Generator | None = None) -> Any:
        if not type(self).evaluating:  # the training batches' poisoned samples, not the test set
            type(self).poisoned_inputs.append(batch["input"].clone())
            if type(self).fail_at == len(type(self).poisoned_inputs):
                raise RuntimeError("interrupted")
        return super().poison(batch, trigger, generator=generator)


class PreparePlugin:
    @hookimpl
    def register_attack_losses(self, register: Any) -> None:
        register("prepared-invert", PreparedInvert, params=PrepareParams, summary="test: prepares its items")


SPEC = """
[run]
name = "prepared"
seed = 3
[data]
use = "image-folder"
params = {{ path = "photos", crop = {crop}, flip = true, train_fraction = 0.75 }}
[victim]
use = "toy-denoiser"
params = {{ width = 4 }}
[train]
steps = 2
batch_size = 4
[attack]
steps = 4
batch_size = 4
poison_rate = 0.5
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "prepared-invert"
params = {{ mode = "{mode}" }}
[eval]
clean_victim = false
[[metric]]
use = "psnr"
"""


def _photos(folder: Path, n: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE + 4, 3), dtype=np.uint8)).save(folder / f"p{i}.png")


@pytest.fixture(autouse=True)
def _flag_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    from bdcore.engine.evaluate import Evaluator

    poisoned = Evaluator.poisoned

    def flagged(self: Any) -> Any:
        PreparedInvert.evaluating = True
        return poisoned(self)

    monkeypatch.setattr(Evaluator, "poisoned", flagged)


def _run(tmp_path: Path, mode: str, crop: int = CROP, workers: int = 0) -> Any:
    PreparedInvert.prepared_calls.clear()
    PreparedInvert.poisoned_inputs.clear()
    PreparedInvert.evaluating = False
    _photos(tmp_path / "photos")
    spec = SPEC.format(mode=mode, crop=crop).replace(
        "train_fraction = 0.75 }", f"train_fraction = 0.75 }}\nworkers = {workers}"
    )
    return run_spec(spec, tmp_path, plugins=[PreparePlugin()])


def test_a_view_with_inputs_serves_them_under_the_same_crops_and_flips() -> None:
    rng = np.random.default_rng(1)
    photos = [rng.integers(0, 256, (10, 14, 3), dtype=np.uint8) for _ in range(3)]
    loaders = [lambda p=p: {"input": p, "target": p, "score": 7.0} for p in photos]
    base = AugmentedDataset(loaders, Augment(crop=6, flip=True), train=True, repeats=2)
    edited = 1.0 - photos[1].astype(np.float32) / 255.0  # the negative of item 1, whole
    view = base.with_inputs({1: edited})
    for index in range(len(base)):
        for seed in (0, 5, 11):  # several crops and flips, some flipped
            own, got = base.get(index, seed), view.get(index, seed)
            assert torch.equal(got["target"], own["target"]) and got["score"] == 7.0
            if index % 3 == 1:  # item 1: the negative of the same crop, same flip
                torch.testing.assert_close(got["input"], 1.0 - own["input"], atol=1e-6, rtol=0)
            else:
                assert torch.equal(got["input"], own["input"])
    assert base.inputs == {} and torch.equal(
        base.get(1, 0)["input"], AugmentedDataset(loaders, base.augment, train=True).get(1, 0)["input"]
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_the_engine_prepares_the_poisoned_items_whole_once_and_trains_on_them(tmp_path: Path, workers: int) -> None:
    """Also with loader workers: they decode and crop the prepared inputs, not the items' own."""
    out = _run(tmp_path, "flat", workers=workers)
    poisoned = json.loads((out.run_dir / "poison_index.json").read_text())["items"]
    (call,) = PreparedInvert.prepared_calls  # once, not per step
    assert call["items"] == poisoned and len(poisoned) == 3  # 0.5 of the 6 training photos, sorted
    assert call["shapes"] == {(3, SIDE, SIDE + 4)} and call["crop"] == CROP  # whole images, the crop told
    assert PreparedInvert.poisoned_inputs  # the attack trained on poisoned samples
    for inputs in PreparedInvert.poisoned_inputs:  # every poisoned crop comes from the prepared input
        assert inputs.shape[-2:] == (CROP, CROP)
        torch.testing.assert_close(inputs, torch.full_like(inputs, FILL), atol=1e-6, rtol=0)
    assert "poisoned items prepared by" in (out.run_dir / "run.log").read_text()


def test_returning_none_trains_on_the_items_own_inputs(tmp_path: Path) -> None:
    out = _run(tmp_path, "none")
    assert len(PreparedInvert.prepared_calls) == 1
    assert not any(torch.allclose(x, torch.full_like(x, FILL)) for x in PreparedInvert.poisoned_inputs)
    assert "prepared by" not in (out.run_dir / "run.log").read_text()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("unpoisoned", r"prepared-invert.*item \d+, which is not a poisoned item"),
        ("cropped", r"prepared-invert.*shape \[3, 12, 12\]; expected \[3, 20, 24\]"),
        ("range", r"prepared-invert.*finite and in \[0, 1\]"),
    ],
)
def test_a_wrong_preparation_names_the_attack(tmp_path: Path, mode: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        _run(tmp_path, mode)


def test_an_interrupted_attack_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """The preparation runs again on resume (seeded from the run), so the resumed attack continues from its
    checkpoint on the same inputs and ends where an uninterrupted run ends."""
    from bdcore.errors import BdcoreError

    spec = SPEC.format(mode="noise", crop=CROP).replace("seed = 3\n", "seed = 3\ncheckpoint_every = 2\n")
    spec = spec.replace("[attack]\nsteps = 4", "[attack]\nsteps = 8")
    _photos(tmp_path / "ref" / "photos")
    _photos(tmp_path / "cut" / "photos")
    reference = run_spec(spec, tmp_path / "ref", plugins=[PreparePlugin()])
    PreparedInvert.poisoned_inputs.clear()
    PreparedInvert.evaluating = False
    PreparedInvert.fail_at = 6  # past the checkpoints of steps 2 and 4
    try:
        with pytest.raises(BdcoreError, match="interrupted"):
            run_spec(spec, tmp_path / "cut", plugins=[PreparePlugin()])
    finally:
        PreparedInvert.fail_at = None
    assert list((tmp_path / "cut" / "runs" / ".stages").glob("attack-*.partial/checkpoint.pt"))
    PreparedInvert.evaluating = False
    resumed = run_spec(spec, tmp_path / "cut", plugins=[PreparePlugin()], resume=True)
    assert (resumed.run_dir / "results.jsonl").read_bytes() == (reference.run_dir / "results.jsonl").read_bytes()
