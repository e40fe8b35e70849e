"""Loader workers without losing determinism: the DataLoader's batches are batch_at's, bit for bit, with
any number of workers, from any start step; unreadable images are reported by path and do not end a run."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bdcore.data.dataset import Augment, AugmentedDataset
from bdcore.data.loader import LoaderSettings, StepLoader, default_workers, eval_loader
from bdcore.data.loading import batch_at, eval_batches
from bdcore.errors import DataError
from bdcore.testing import run_spec


def _fields(i: int) -> dict[str, Any]:
    rng = np.random.default_rng(i)
    img = rng.integers(0, 256, (18 + i % 5, 20, 3), dtype=np.uint8)
    return {"input": img, "target": img[:, :, :1].copy(), "score": float(i) / 7, "label": i % 3, "name": f"n{i}"}


def augmented(n: int, train: bool = True) -> AugmentedDataset:
    loaders = [partial(_fields, i) for i in range(n)]
    return AugmentedDataset(loaders, Augment(crop=12, flip=True, test_crops=2), train=train, repeats=2)


def assert_same_batch(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("case", range(20))
def test_the_sampler_yields_batch_at_for_any_step_in_any_order(case: int) -> None:
    """batch_at is the definition: consecutive steps, restarts at any step and epochs' ends all agree
    (random dataset sizes, batch sizes larger or smaller than the set, seeds and step orders)."""
    rng = np.random.default_rng(case)
    n, batch, seed, shuffle = (
        int(rng.integers(1, 24)),
        int(rng.integers(1, 10)),
        int(rng.integers(2**40)),
        bool(case % 3),
    )
    data = augmented(n)
    loader = StepLoader(data, batch, seed=seed, shuffle=shuffle)
    for first in rng.integers(0, 40, size=4).tolist():
        for step in (first, first + 1, first + 2):  # a restart, then streaming
            assert_same_batch(loader(step), batch_at(data, step, batch, seed=seed, shuffle=shuffle))


def test_two_workers_give_the_same_batches_as_none() -> None:
    data = augmented(13)
    with (
        StepLoader(data, 5, seed=3, stop=12) as zero,
        StepLoader(data, 5, seed=3, stop=12, settings=LoaderSettings(workers=2)) as two,
    ):
        for step in [*range(12), 7, 8, 30, 2, 3]:
            expected = batch_at(data, step, 5, seed=3)
            assert_same_batch(zero(step), expected)
            assert_same_batch(two(step), expected)
        assert two.state_dict() == {"step": 4, "size": 26, "batch_size": 5, "seed": 3, "shuffle": True}


def test_eval_loader_is_eval_batches_with_workers() -> None:
    data = augmented(7, train=False)
    for workers in (0, 2):
        got = list(eval_loader(data, 3, limit=11, settings=LoaderSettings(workers=workers)))
        expected = list(eval_batches(data, 3, limit=11))
        assert len(got) == len(expected) == 4
        for a, b in zip(got, expected, strict=True):
            assert_same_batch(a, b)


def test_default_workers_keep_the_cpu_for_training() -> None:
    assert default_workers("cpu") == 0
    assert 0 <= default_workers("cuda") <= 8
    s = LoaderSettings.for_device("cuda:0", workers=3)
    assert (s.workers, s.pin_memory) == (3, True)
    assert LoaderSettings.for_device("cpu").pin_memory is False


def write_images(folder: Path, n: int, size: int = 24, bad: tuple[int, ...] = ()) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=gen), size=size, mode="bilinear")
    paths = []
    for i in range(n):
        path = folder / f"img{i:03d}.png"
        if i in bad:
            path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        else:
            arr = (base[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


SPEC = """
[run]
name = "folder"
seed = 2
checkpoint_every = 5
[data]
use = "image-folder"
params = {{ path = "{path}", crop = 16, flip = true, repeats = 2 }}
{data_extra}
[victim]
use = "toy-denoiser"
params = {{ width = 8 }}
[train]
steps = 12
batch_size = 4
[attack]
poison_rate = 0.3
steps = 12
batch_size = 4
from_clean = true
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert"
[[metric]]
use = "psnr"
[eval]
batch_size = 3
grid = 2
"""


def test_results_are_bit_identical_with_0_and_2_workers(tmp_path: Path) -> None:
    """The same seed gives the same stage tensors and results whichever number of processes decodes."""
    from safetensors.torch import load_file

    write_images(tmp_path / "imgs", 20)
    outs = {}
    for workers in (0, 2):
        text = SPEC.format(path=tmp_path / "imgs", data_extra=f"workers = {workers}")
        outs[workers] = run_spec(text, tmp_path / f"w{workers}")
    a, b = outs[0].run_dir, outs[2].run_dir
    assert (a / "results.jsonl").read_bytes() == (b / "results.jsonl").read_bytes()
    for stage in ("clean-victim", "attack"):
        ta = load_file(str(next((a.parent / ".stages").glob(f"{stage}-*[!l]")) / "tensors.safetensors"))
        tb = load_file(str(next((b.parent / ".stages").glob(f"{stage}-*[!l]")) / "tensors.safetensors"))
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), stage


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_image_met_during_the_run_is_reported_and_replaced(tmp_path: Path, workers: int) -> None:
    write_images(tmp_path / "imgs", 16, bad=(3,))
    text = SPEC.format(path=tmp_path / "imgs", data_extra=f"workers = {workers}")
    out = run_spec(text, tmp_path)
    listed = (out.run_dir / "unreadable.txt").read_text().splitlines()
    assert {line.split("\t")[0] for line in listed} == {"img003.png"}
    assert "img003.png: not a readable image" in listed[0]
    assert "1 unreadable item(s) were replaced" in (out.run_dir / "run.log").read_text()
    assert json.loads((out.run_dir / "manifest.json").read_text())["status"] == "complete"


def test_verify_names_every_unreadable_image_before_training(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 12, bad=(2, 7))
    text = SPEC.format(path=tmp_path / "imgs", data_extra="verify = true")
    with pytest.raises(DataError) as err:
        run_spec(text, tmp_path)
    message = str(err.value)
    assert "2 of 12 items are unreadable ([data] verify = true)" in message
    assert "img002.png" in message and "img007.png" in message and str(tmp_path / "imgs") in message
    assert not list((tmp_path / "runs" / ".stages").glob("clean-victim-*"))  # nothing trained
