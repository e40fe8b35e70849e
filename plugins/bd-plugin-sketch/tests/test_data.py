"""CUFS (both layouts) and the embedded pencil-sketch set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from bdcore.context import Context
from bdcore.data.images import read_image, to_tensor

from bd_plugin_sketch.data import Cufs, EmbeddedSketch
from bd_plugin_sketch.ops import pencil_sketch
from bd_plugin_sketch.params import CufsParams, EmbeddedSketchParams


def test_cufs_layouts_agree(cufs_root: Path) -> None:
    ctx = Context(seed=0)
    a = Cufs(CufsParams(root=cufs_root, layout="folders"), ctx).pairs()
    b = Cufs(CufsParams(root=cufs_root, layout="pairs-csv"), ctx).pairs()
    assert len(a["training"]) == 88 and len(a["testing"]) == 100
    for split in a:
        assert sorted(a[split]) == sorted(b[split])


def test_cufs_samples(cufs_root: Path) -> None:
    splits = Cufs(CufsParams(root=cufs_root, crop=64, flip=True, test_crops=2), Context(seed=0)).splits()
    train, test = splits["train"], splits["test"]
    assert len(train) == 88 and len(test) == 200
    s = train.get(3, seed=11)
    assert s["input"].shape == (3, 64, 64) and s["target"].shape == (1, 64, 64)
    assert torch.equal(s["input"], train.get(3, seed=11)["input"])  # seeded
    # co-cropping: the sketch crop is the crop of the full sketch at the photo crop's place
    full = Cufs(CufsParams(root=cufs_root), Context(seed=0)).splits()["train"].get(3)
    x, y = full["input"], full["target"]
    hits = [
        (i, j)
        for i in range(x.shape[1] - 63)
        for j in range(x.shape[2] - 63)
        if torch.equal(x[:, i : i + 64, j : j + 64], s["input"])
        or torch.equal(x[:, i : i + 64, j : j + 64].flip(-1), s["input"])
    ]
    assert hits
    i, j = hits[0]
    yy = y[:, i : i + 64, j : j + 64]
    assert torch.equal(yy, s["target"]) or torch.equal(yy.flip(-1), s["target"])
    # an RGB-stored test sketch comes back as 1 channel
    rgb = [f for f in sorted((cufs_root / "testing_sketch").iterdir()) if read_image(f, None).shape[2] == 3]
    assert rgb and test.get(0)["target"].shape[0] == 1


def test_cufs_seeded_split_and_limit(cufs_root: Path) -> None:
    p = CufsParams(root=cufs_root, split="seeded", train_fraction=0.5, limit=10)
    s = Cufs(p, Context(seed=1)).splits()
    assert len(s["train"]) == 10 and len(s["test"]) == 10
    assert Cufs(p, Context(seed=1)).splits()["test"].names == s["test"].names


def test_cufs_missing_root_is_clear(tmp_path: Path) -> None:
    from bdcore.errors import DataError

    with pytest.raises(DataError, match="CUFS folder not found"):
        Cufs(CufsParams(root=tmp_path / "nope"), Context()).splits()


def test_embedded_sketch_targets_are_pencil_sketches() -> None:
    pytest.importorskip("skimage")
    ds = EmbeddedSketch(EmbeddedSketchParams(size=64, sigma=2.0), Context(seed=0)).splits()
    s = ds["test"].get(0)
    x, y = s["input"], s["target"]
    assert x.shape[0] == 3 and y.shape[0] == 1 and x.shape[1:] == y.shape[1:]
    expect = pencil_sketch(x[None], sigma=2.0)[0]
    assert float((expect - y).abs().max()) <= 1.0 / 255 + 1e-6  # only the uint8 rounding
    assert len(ds["train"]) + len(ds["test"]) == 10


def test_to_tensor_roundtrip_sanity() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    assert to_tensor(arr).shape == (3, 2, 2)
