"""CarToRoad at CPU scale: the pixel-wise ASR (Eq. 13) on hand-made masks, its metric, the rendered
street-scene data source and the built-in segmenter."""

import math

import pytest
import torch
from bd_plugin_bavaft.downstream import CarToRoadAttack, pixel_asr_counts
from bd_plugin_bavaft.metrics import PixelAsr
from bd_plugin_bavaft.params import CarToRoadParams, PixelAsrParams, StreetScenesParams
from bd_plugin_bavaft.street import CAR, NUM_CLASSES, ROAD, SKY, StreetScenes, render_scene, small_segmenter
from torch import nn

from bdcore.context import Context
from bdcore.metrics.batch import EvalBatch
from bdcore.testing.contracts import DatasetContract, MetricContract

C, R, B = CAR, ROAD, 2  # car 13, road 0, building 2 (Cityscapes train ids)


def test_pixel_asr_counts_on_hand_made_masks():
    clean = torch.tensor(
        [
            [[C, C, R], [C, C, B], [R, R, R]],  # 4 car pixels
            [[B, B, B], [B, C, B], [R, R, R]],  # 1 car pixel
        ]
    )
    poisoned = torch.tensor(
        [
            [[R, C, R], [R, B, B], [R, R, C]],  # car → road at (0,0), (1,0); (0,1) stays car; (1,1) → building
            [[B, B, B], [B, R, B], [R, R, R]],  # the car pixel → road
        ]
    )
    hits, source = pixel_asr_counts(clean, poisoned, C, R)
    assert hits.tolist() == [2, 1] and source.tolist() == [4, 1]
    # a pixel that becomes road but was not a car in g(f(x)) counts for nothing (the (2,2) car in image 0)
    hits, source = pixel_asr_counts(poisoned, clean, C, R)
    assert hits.tolist() == [1, 0] and source.tolist() == [2, 0]


class ColourSegmenter(nn.Module):
    """1×1 conv: class 13 "car" where R ≫ G, B, class 0 "road" elsewhere (every other logit −∞-ish)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, NUM_CLASSES, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.fill_(-50.0)
            self.conv.bias[ROAD] = 0.0
            self.conv.weight[CAR] = torch.tensor([10.0, -10.0, -10.0]).view(3, 1, 1)
            self.conv.bias[CAR] = -3.0

    def forward(self, x):
        return self.conv(x)


def _images(cars: list[int], converted: list[int], size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images whose first ``cars[i]`` pixels (raster order) are red; in the "triggered" output the first
    ``converted[i]`` of those are grey again."""
    n = len(cars)
    clean = torch.full((n, 3, size, size), 0.4)
    out = clean.clone()
    for i, (c, k) in enumerate(zip(cars, converted, strict=True)):
        idx = torch.arange(c)
        rows, cols = idx // size, idx % size
        clean[i, :, rows, cols] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1)
        out[i, :, rows, cols] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1)
        out[i, :, rows[:k], cols[:k]] = 0.4
    return clean, out


def _batch(clean: torch.Tensor, out: torch.Tensor) -> EvalBatch:
    return EvalBatch(split="poisoned", input=out, output=out, clean_input=clean, clean_output=clean)


def test_pixel_asr_metric_is_a_ratio_of_sums_over_the_test_set():
    m = PixelAsr(PixelAsrParams(), Context(component="metric:asr"), segmenter=ColourSegmenter())
    c1, o1 = _images([10, 2], [5, 2])  # per image 50 % and 100 %
    c2, o2 = _images([20], [2])  # 10 %
    m.update(_batch(c1, o1))
    m.update(_batch(c2, o2))
    out = m.compute()
    assert out["asr"] == pytest.approx(100.0 * (5 + 2 + 2) / (10 + 2 + 20))  # not the mean of 50, 100, 10
    assert out["asr/source_pixels"] == pytest.approx(32 / (3 * 64))
    m.reset()
    m.update(_batch(*_images([0], [0])))
    assert math.isnan(m.compute()["asr"])  # no car pixel: no rate


class TestPixelAsrContract(MetricContract):
    params_cls = PixelAsrParams

    def make(self):
        return PixelAsr(PixelAsrParams(), Context(component="metric:car-to-road-asr"), segmenter=ColourSegmenter())

    def batch(self):
        clean, out = _images([12, 30, 5, 20], [3, 30, 0, 7])
        return EvalBatch(
            split="poisoned",
            input=out,
            output=out,
            target=clean,
            attack_target=clean,
            clean_input=clean,
            clean_model_input=clean,
            clean_output=clean,
            reference_output=clean,
            strength=torch.ones(4),
            index=torch.arange(4),
        )


class TestStreetScenesContract(DatasetContract):
    params_cls = StreetScenesParams

    def make(self):
        return StreetScenes(StreetScenesParams(train=6, test=3, size=32), Context(seed=0))


def test_street_scenes_are_labelled_and_independent_of_the_run_seed():
    img, lab = render_scene(7, 64)
    assert img.shape == (64, 64, 3) and lab.shape == (64, 64) and 0.0 <= img.min() <= img.max() <= 1.0
    assert {CAR, ROAD, SKY} <= set(lab.flatten().tolist())
    # the car label covers the car: its pixels are coloured differently from the road around it
    a = StreetScenes(StreetScenesParams(train=2, test=2), Context(seed=0)).splits()["test"][1]
    b = StreetScenes(StreetScenesParams(train=2, test=2), Context(seed=5)).splits()["test"][1]
    assert torch.equal(a["input"], b["input"]) and torch.equal(a["labels"], b["labels"])
    c = StreetScenes(StreetScenesParams(train=2, test=2, scene_seed=1), Context(seed=0)).splits()["test"][1]
    assert not torch.equal(a["input"], c["input"])


def test_small_segmenter_trains_caches_and_reloads(tmp_path):
    p = CarToRoadParams(train_scenes=8, train_steps=3, train_batch=4, train_size=32, cache_dir=tmp_path)
    ctx = Context(seed=0)
    net = small_segmenter(p, ctx)
    files = list(tmp_path.glob("small-segmenter-*.safetensors"))
    assert len(files) == 1
    assert all(not q.requires_grad for q in net.parameters()) and not net.training
    x = torch.rand(2, 3, 32, 32)
    assert net(x).shape == (2, NUM_CLASSES, 32, 32)
    reloaded = small_segmenter(CarToRoadParams(weights=files[0], train_size=32), ctx)
    torch.testing.assert_close(reloaded(x), net(x))
    # the attack builds the same built-in segmenter from its params (memoised by its settings)
    atk = CarToRoadAttack(p, ctx)
    torch.testing.assert_close(atk.segmenter(x), net(x))
