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


# -- KonIQ-10k on a fixture folder in the release layout -------------------------------------------------

KONIQ_HEADER = "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"


def _koniq_fixture(root, sets: list[str]):  # noqa: ANN001, ANN202
    """A KonIQ-10k-shaped folder from real LIVEC photographs: ``1024x768/<id>.jpg`` (1024×768 JPEGs, the
    release's size), ``koniq10k_scores_and_distributions.csv`` and ``koniq10k_distributions_sets.csv``
    (the same columns plus ``set``), with made-up vote counts whose MOS/z-score columns are consistent."""
    from PIL import Image

    src = sorted(shared_path("livec", "Images").glob("*.JPG"))[: len(sets)]
    images = root / "1024x768"
    images.mkdir(parents=True)
    rows, expected = [], {}
    for k, (path, split) in enumerate(zip(src, sets, strict=True)):
        name = f"{826373 + 1000 * k}.jpg"  # KonIQ names are numeric ids
        Image.open(path).convert("RGB").resize((1024, 768), Image.Resampling.BICUBIC).save(images / name, quality=95)
        votes = [k + 1, 10, 30 - k, 40, 20 + k]
        total = sum(votes)
        mos = sum((i + 1) * c for i, c in enumerate(votes)) / total  # 1..5
        z = 100 * (mos - 1) / 4  # a 0..100 stand-in for the z-score column
        rows.append(f"{name},{','.join(map(str, votes))},{total},{mos},0.9,{z}")
        expected[name] = (mos, z, split)
    (root / "koniq10k_scores_and_distributions.csv").write_text("\n".join([KONIQ_HEADER, *rows]) + "\n")
    with_sets = [f"{r},{expected[r.split(',')[0]][2]}" for r in rows]
    (root / "koniq10k_distributions_sets.csv").write_text("\n".join([KONIQ_HEADER + ",set", *with_sets]) + "\n")
    return expected


def test_koniq_reads_the_release_layout_with_its_official_sets(tmp_path) -> None:
    from bd_plugin_baiqa.data import Koniq

    sets = ["training", "training", "validation", "test", "training", "test"]
    expected = _koniq_fixture(tmp_path, sets)
    params = P.KoniqParams(
        csv=tmp_path / "koniq10k_distributions_sets.csv",
        images=tmp_path / "1024x768",
        split_column="set",
        resize=(512, 384),
    )
    splits = Koniq(params, Context(seed=0)).splits()
    train, test = splits["train"], splits["test"]
    assert len(train) == 3 and len(test) == 2  # the validation image is in neither
    names = {train.name_of(i): "training" for i in range(3)} | {test.name_of(i): "test" for i in range(2)}
    assert names == {n: s for n, (_, _, s) in expected.items() if s != "validation"}
    for ds in (train, test):
        for i in range(len(ds)):
            s = ds[i]
            assert s["input"].shape == (3, 384, 512)  # BAIQA's 512×384 resize (W, H)
            assert s["target"] == pytest.approx(expected[ds.name_of(i)][1])  # MOS_zscore
            assert s["baiqa_train"] == (ds is train)
    # the 1..5 MOS column, and the scores file without a set column: a seeded split of all six
    plain = P.KoniqParams(
        csv=tmp_path / "koniq10k_scores_and_distributions.csv", images=tmp_path / "1024x768", score_column="MOS"
    )
    src = Koniq(plain, Context(seed=0))
    loaders, names = src.items()
    assert len(names) == 6 and loaders[0]()["input"].shape == (768, 1024, 3)
    assert {n: loaders[i]()["target"] for i, n in enumerate(names)} == pytest.approx(
        {n: m for n, (m, _, _) in expected.items()}
    )
    tr, te = src.split_indices(names)
    assert sorted(tr + te) == list(range(6)) and tr and te


def test_koniq_names_the_missing_column_and_image(tmp_path) -> None:
    from bd_plugin_baiqa.data import Koniq

    from bdcore.errors import DataError

    _koniq_fixture(tmp_path, ["training", "test"])
    csv = tmp_path / "koniq10k_scores_and_distributions.csv"
    with pytest.raises(DataError, match="no column 'set'"):
        Koniq(P.KoniqParams(csv=csv, images=tmp_path / "1024x768", split_column="set"), Context()).items()
    victim = next((tmp_path / "1024x768").glob("*.jpg"))
    victim.unlink()
    with pytest.raises(DataError, match=victim.name):
        Koniq(P.KoniqParams(csv=csv, images=tmp_path / "1024x768"), Context()).items()


def test_hyperiqa_loads_a_local_backbone(tmp_path) -> None:
    """The paper's victims build offline from local files (random-initialised stand-ins for the ImageNet
    weights here): every backbone tensor ends up in the model, nothing is downloaded."""
    pytest.importorskip("pyiqa")
    import torchvision
    from bd_plugin_baiqa.pyiqa_victims import HyperIqa

    r50 = torchvision.models.resnet50(weights=None)
    torch.save(r50.state_dict(), tmp_path / "r50.pth")
    h = HyperIqa(P.PyiqaVictimParams(backbone_weights=tmp_path / "r50.pth"), Context())
    assert torch.equal(h.net.base_model.conv1.weight, r50.conv1.weight)
    assert torch.equal(h.net.base_model.layer4[2].conv3.weight, r50.layer4[2].conv3.weight)


def test_dbcnn_loads_local_vgg_and_scnn(tmp_path) -> None:
    pytest.importorskip("pyiqa")
    import torchvision
    from bd_plugin_baiqa.pyiqa_victims import Dbcnn

    vgg = torchvision.models.vgg16(weights=None)
    torch.save({k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}, tmp_path / "vgg.pth")
    from pyiqa.archs.dbcnn_arch import SCNN

    scnn = SCNN()
    torch.save(scnn.state_dict(), tmp_path / "scnn.pth")
    d = Dbcnn(P.PyiqaVictimParams(backbone_weights=tmp_path / "vgg.pth", scnn_weights=tmp_path / "scnn.pth"), Context())
    assert torch.equal(d.net.features1[0].weight, vgg.features[0].weight)
    first_scnn = next(k for k in scnn.state_dict() if k.startswith("features.") and k.endswith("weight"))
    assert torch.equal(d.net.features2.state_dict()[first_scnn[len("features.") :]], scnn.state_dict()[first_scnn])
    with pytest.raises(BaiqaError, match="scnn_weights"):
        Dbcnn(P.PyiqaVictimParams(backbone_weights=tmp_path / "vgg.pth"), Context())
