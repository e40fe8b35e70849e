"""Golden test of the asr-psnr metric against a numpy computation."""

from __future__ import annotations

import numpy as np
import torch
from bdcore.metrics.batch import EvalBatch

from bd_plugin_example.metrics import AsrPsnr, psnr_success
from bd_plugin_example.params import AsrPsnrParams


def numpy_success(outputs: np.ndarray, targets: np.ndarray, threshold: float) -> np.ndarray:
    out = []
    for o, t in zip(outputs, targets, strict=True):
        mse = np.mean((o.astype(np.float64) - t.astype(np.float64)) ** 2)
        psnr = np.inf if mse == 0 else 10 * np.log10(1.0 / mse)
        out.append(1.0 if psnr >= threshold else 0.0)
    return np.array(out)


def test_psnr_success_matches_numpy() -> None:
    gen = torch.Generator().manual_seed(1)
    targets = torch.rand(6, 3, 8, 8, generator=gen)
    noise = torch.tensor([0.0, 0.01, 0.05, 0.1, 0.2, 0.4]).view(-1, 1, 1, 1)
    outputs = (targets + noise * torch.randn(6, 3, 8, 8, generator=gen)).clamp(0, 1)
    got = psnr_success(outputs, targets, threshold=20.0)
    np.testing.assert_array_equal(got.numpy(), numpy_success(outputs.numpy(), targets.numpy(), 20.0))
    assert 0 < float(got.sum()) < 6


def test_metric_streams_over_batches() -> None:
    metric = AsrPsnr(AsrPsnrParams(threshold=30.0))
    target = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for output in (target, 1.0 - target):  # 4 exact hits, then 4 misses
        metric.update(EvalBatch(split="poisoned", input=target, output=output, attack_target=target))
    assert metric.compute() == {metric.name: 0.5}
