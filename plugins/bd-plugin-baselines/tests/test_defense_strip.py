"""STRIP (output-consistency) detection and the AUROC it is scored with."""

from __future__ import annotations

import numpy as np
import torch
from bd_plugin_baselines.defenses.strip import Strip, auroc, strip_scores
from bd_plugin_baselines.params_defenses import StripParams
from defense_helpers import ListDataset, defense_context, smooth_images
from sklearn.metrics import roc_auc_score
from torch import nn

from bdcore.context import Context


def test_auroc_equals_sklearn_including_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        clean = rng.integers(0, 6, size=37).astype(float)  # many ties
        pois = rng.integers(2, 9, size=23).astype(float)
        ref = roc_auc_score(np.r_[np.zeros(37), np.ones(23)], np.r_[clean, pois])
        assert abs(auroc(torch.tensor(clean), torch.tensor(pois)) - ref) < 1e-12
    assert auroc([0.0, 1.0], [2.0, 3.0]) == 1.0 and auroc([2.0], [1.0]) == 0.0


class CheckerBackdoor(nn.Module):
    """Image model: identity, except that a checkerboard in the top-left 8×8 corner (even
    half-blended) switches the output to a fixed target image."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target)
        k = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).expand(1, 3, 2, 2) / 12
        self.register_buffer("k", k.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = x[:, :, :8, :8]
        energy = nn.functional.conv2d(corner, self.k, stride=2).abs().mean(dim=(1, 2, 3))
        gate = torch.sigmoid((energy - 0.15) * 200).view(-1, 1, 1, 1)
        return gate * self.target + (1 - gate) * x


def _checker(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    board = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    y[:, :, :8, :8] = board.float()
    return y


def test_strip_separates_a_dominant_trigger_and_not_a_clean_model() -> None:
    pool = smooth_images(16, seed=3)
    x = smooth_images(12, seed=4)
    xt = _checker(x)
    model = CheckerBackdoor(torch.full((3, 16, 16), 0.5))
    overlays = pool[:6]
    for statistic in ("variance", "pairwise"):
        s_clean = strip_scores(model, x, overlays, alpha=0.5, statistic=statistic)
        s_pois = strip_scores(model, xt, overlays, alpha=0.5, statistic=statistic)
        assert s_clean.shape == (12,)
        assert auroc(s_clean, s_pois) == 1.0
    ident = nn.Identity()  # a model with no backdoor: the statistic does not depend on the trigger
    a = strip_scores(ident, x, overlays)
    b = strip_scores(ident, xt, overlays)
    torch.testing.assert_close(a, b)


def test_strip_statistic_golden_variance_and_scores() -> None:
    x = smooth_images(3, seed=5)
    overlays = smooth_images(4, seed=6)
    ident = nn.Identity()
    got = strip_scores(ident, x, overlays, alpha=0.3)
    blends = 0.7 * x[:, None] + 0.3 * overlays[None]
    ref = -blends.double().var(dim=1, unbiased=False).flatten(1).mean(1)
    torch.testing.assert_close(got, ref)
    score_model = lambda z: z.mean(dim=(1, 2, 3))  # noqa: E731 - a B-score model
    got = strip_scores(score_model, x, overlays, alpha=0.3)
    ref = -blends.double().mean(dim=(2, 3, 4)).std(dim=1, unbiased=False)
    torch.testing.assert_close(got, ref)


def test_strip_defense_returns_a_seeded_detector() -> None:
    ds = ListDataset(smooth_images(20, seed=7))
    model = CheckerBackdoor(torch.full((3, 16, 16), 0.5))
    x = smooth_images(8, seed=8)
    scores = []
    for _ in range(2):
        out = Strip(StripParams(n_overlays=4, pool_size=10), Context(seed=2)).defend(model, defense_context(ds))
        assert out.victim is None and out.transform is None
        scores.append((out.detector(model, x), out.detector(model, _checker(x))))
    torch.testing.assert_close(scores[0][0], scores[1][0])
    assert auroc(*scores[0]) == 1.0


def test_strip_blends_every_input_with_the_same_overlays_unless_redraw() -> None:
    """On a model without a backdoor (identity), the blends' spread does not depend on the input
    (0.25·var of the overlays at α = 0.5), so with one overlay set for all calls clean and triggered
    batches score alike up to rounding; per-call draws make the batches differ by the draw alone."""
    ds = ListDataset(smooth_images(20, seed=7))
    x = smooth_images(8, seed=8)
    ident = nn.Identity()
    out = Strip(StripParams(n_overlays=4, pool_size=16), Context(seed=2)).defend(ident, defense_context(ds))
    clean, pois = out.detector(ident, x), out.detector(ident, _checker(x))
    torch.testing.assert_close(clean, pois, rtol=1e-6, atol=0)  # float32 blends
    out = Strip(StripParams(n_overlays=4, pool_size=16, redraw=True), Context(seed=2)).defend(
        ident, defense_context(ds)
    )
    assert not torch.allclose(out.detector(ident, x), out.detector(ident, _checker(x)), rtol=1e-3, atol=0)
