"""Learnable triggers learn: a short CPU run of ISSBA's encoder/decoder recovers the secret."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from bd_plugin_baselines import params_triggers as P
from bd_plugin_baselines.triggers.issba import ISSBA, bit_accuracy

from bdcore.context import Context


def scene_crops(size: int, batch: int, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Random ``batch×3×size×size`` crops of bdcore's embedded photographs."""
    pytest.importorskip("skimage")
    from bdcore.data.embedded import SCENES, load_scene

    images = [torch.from_numpy(load_scene(n).copy()).float().permute(2, 0, 1) / 255 for n in SCENES]
    gen = torch.Generator().manual_seed(seed)
    while True:
        crops = []
        for _ in range(batch):
            im = images[int(torch.randint(len(images), (1,), generator=gen))]
            i = int(torch.randint(im.shape[1] - size, (1,), generator=gen))
            j = int(torch.randint(im.shape[2] - size, (1,), generator=gen))
            crops.append(im[:, i : i + size, j : j + size])
        yield {"input": torch.stack(crops)}


def test_issba_decoder_recovers_the_secret_after_a_short_fit() -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    params = P.ISSBAParams(bits=8, width=16, eps=0.1, steps=300, secret_only_steps=300)
    trig = ISSBA(params, Context(seed=0))
    x = next(scene_crops(64, 64, seed=1))["input"]
    with torch.no_grad():
        before = bit_accuracy(trig.decode(trig.inject_trigger(x)), trig.secret.expand(64, -1))
    losses = trig.train_steps(scene_crops(64, 16, seed=0), params.steps)
    with torch.no_grad():
        xp = trig.inject_trigger(x)
        after = bit_accuracy(trig.decode(xp), trig.secret.expand(64, -1))
    assert losses[-1] < 0.5 * losses[0]
    assert after >= 0.95 > before
    assert float((xp - x).abs().max()) <= params.eps + 1e-6  # the residual stays inside its bound
