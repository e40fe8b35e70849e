"""Datasets (LIVEC official split, embedded ladder) and the pyiqa victim builders."""

from __future__ import annotations

import json

import pytest
import torch
from bd_plugin_baiqa import params as P
from bd_plugin_baiqa.data import EmbeddedIqa, Livec, load_split_order
from bd_plugin_baiqa.util import BaiqaError
from conftest import shared_path

from bdcore.context import Context


def test_livec_official_split_on_jpeg_subset() -> None:
    root = shared_path("livec")
    idx = shared_path("reference", "baiqa", "CLIVE_traintest_index.pkl")
    order, _ = load_split_order(idx)
    assert sorted(order) == list(range(1162))
    js = json.loads(shared_path("reference", "baiqa", "clive_traintest_index.json").read_text())
    assert js["order"] == order
    src = Livec(P.LivecParams(root=root, split_index=idx, crop=64), Context(seed=0))
    splits = src.splits()
    n_train, n_test = len(splits["train"]), len(splits["test"])
    assert n_train + n_test == 627 and 0.7 < n_train / 627 < 0.9
    s = splits["train"].get(0, seed=1)
    assert s["input"].shape == (3, 64, 64) and 3 < s["target"] < 93 and s["baiqa_train"] == 1
    assert splits["test"][0]["baiqa_train"] == 0
    # csv route gives the same MOS for the same file
    src2 = Livec(P.LivecParams(root=root, csv=root / "mos.csv"), Context(seed=0))
    loaders, names = src2.items()
    assert len(names) == 627
    mat_loaders, mat_names = src.items()
    k = mat_names.index(names[5])
    assert loaders[5]()["target"] == mat_loaders[k]()["target"]


def test_embedded_ladder_scores() -> None:
    src = EmbeddedIqa(P.EmbeddedIqaParams(size=32, levels=2), Context(seed=0))
    loaders, names = src.items()
    assert len(names) == 10 * 7
    pristine = loaders[0]()
    worst_blur = loaders[names.index(f"{names[0].split('/')[0]}/blur2")]()
    assert pristine["target"] == 85.0 and worst_blur["target"] == 59.0
    assert not (pristine["input"] == worst_blur["input"]).all()
    tr, te = src.split_indices(names)
    scenes_tr = {names[i].split("/")[0] for i in tr}
    assert scenes_tr.isdisjoint({names[i].split("/")[0] for i in te})


@pytest.mark.parametrize("cls", ["HyperIqa", "Dbcnn", "Tres"])
def test_pyiqa_victims_fail_fast_without_local_weights(cls: str) -> None:
    import bd_plugin_baiqa.pyiqa_victims as pv

    with pytest.raises(BaiqaError, match="backbone_weights"):
        getattr(pv, cls)(P.PyiqaVictimParams(), Context())


@pytest.mark.slow
def test_tres_builds_offline_and_runs() -> None:
    pytest.importorskip("pyiqa")
    from bd_plugin_baiqa.pyiqa_victims import Tres

    torch.manual_seed(0)
    v = Tres(P.PyiqaVictimParams(allow_random_backbone=True), Context())
    x = torch.rand(2, 3, 224, 224)
    out = v.predict(x)
    assert out.shape == (2,) and torch.isfinite(out).all()
    loss = v.clean_loss({"input": x, "target": torch.tensor([30.0, 60.0])})["loss"]
    loss.backward()


def test_tres_loads_a_local_backbone(tmp_path) -> None:
    pytest.importorskip("pyiqa")
    import torchvision
    from bd_plugin_baiqa.pyiqa_victims import Tres

    ref = torchvision.models.resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    v = Tres(P.PyiqaVictimParams(backbone_weights=tmp_path / "r18.pth"), Context())
    assert torch.equal(v.net.model.conv1.weight, ref.conv1.weight)


@pytest.mark.slow
@pytest.mark.parametrize("cls", ["HyperIqa", "Dbcnn"])
def test_heavy_pyiqa_victims_build_and_forward(cls: str) -> None:
    import bd_plugin_baiqa.pyiqa_victims as pv

    v = getattr(pv, cls)(P.PyiqaVictimParams(allow_random_backbone=True), Context())
    out = v.predict(torch.rand(1, 3, 224, 224))
    assert out.shape == (1,) and torch.isfinite(out).all()
