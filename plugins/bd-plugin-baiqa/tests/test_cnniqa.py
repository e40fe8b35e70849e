"""CNNIQA (Kang et al. 2014): local normalisation against a per-pixel numpy reference; patch scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bd_plugin_baiqa.params import CnnIqaParams
from bd_plugin_baiqa.victims import CnnIqa, local_contrast_normalize


def _lcn_reference(img: np.ndarray, window: int, c: float) -> np.ndarray:
    """Per-pixel loops: mean and (population) std over the in-image part of the window."""
    h, w = img.shape
    r = window // 2
    out = np.empty_like(img)
    for i in range(h):
        for j in range(w):
            nb = img[max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1]
            out[i, j] = (img[i, j] - nb.mean()) / (nb.std() + c)
    return out


def test_local_contrast_normalize_matches_reference() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((19, 23))
    got = local_contrast_normalize(torch.from_numpy(img)[None, None], 7, 0.04)[0, 0].numpy()
    np.testing.assert_allclose(got, _lcn_reference(img, 7, 0.04), atol=1e-9)


def test_lcn_is_contrast_and_offset_invariant_up_to_c() -> None:
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    a = local_contrast_normalize(x, 7, 1e-9)
    b = local_contrast_normalize(0.3 * x + 0.5, 7, 1e-9)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_image_score_is_the_mean_of_independent_patch_scores() -> None:
    torch.manual_seed(0)
    net = CnnIqa(CnnIqaParams(filters=6, hidden=16)).eval()
    x = torch.rand(2, 3, 70, 100)  # 2×3 patches of 32; the remainder is ignored
    per = net.patch_scores(x)
    assert per.shape == (2, 6)
    # patch (row 1, column 2) scored by hand from the full image's normalisation
    gray = (x * net.luma).sum(1, keepdim=True)
    norm = local_contrast_normalize(gray, 7, net.params.lcn_c)[:, :, 32:64, 64:96]
    f = net.conv(norm)
    z = net.head(torch.cat([f.amax((2, 3)), f.amin((2, 3))], 1)).squeeze(1)
    torch.testing.assert_close(per[:, 5], 50 + 25 * z)
    torch.testing.assert_close(net(x), per.mean(1))


def test_per_patch_loss_regresses_every_patch_onto_the_image_mos() -> None:
    torch.manual_seed(0)
    net = CnnIqa(CnnIqaParams(filters=4, hidden=8, dropout=0.0))
    x = torch.rand(2, 3, 64, 64)
    y = torch.tensor([20.0, 80.0])
    loss = net.clean_loss({"input": x, "target": y})["loss"]
    per = net.patch_scores(x)
    assert float(loss.detach()) == pytest.approx(float((per - y[:, None]).abs().mean().detach()), rel=1e-6)


def test_too_small_images_are_refused() -> None:
    with pytest.raises(ValueError, match="smaller than one 32×32 patch"):
        CnnIqa()(torch.rand(1, 3, 16, 40))


def test_color_variant_sees_a_chroma_only_change_that_grey_ignores() -> None:
    """A Cb/Cr-only perturbation (e.g. FTrojan's UV trigger) leaves the luma and so the grey score unchanged."""
    torch.manual_seed(0)
    rgb_to_ycc = torch.tensor(
        [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=torch.float64
    )
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64) * 0.5 + 0.25
    chroma = torch.zeros_like(x)
    chroma[:, 1:] = 0.02 * torch.randn(1, 2, 64, 64, dtype=torch.float64)
    xp = x + torch.einsum("ij,bjhw->bihw", torch.linalg.inv(rgb_to_ycc), chroma)
    grey = CnnIqa(CnnIqaParams(filters=4, hidden=8)).double().eval()
    color = CnnIqa(CnnIqaParams(filters=4, hidden=8, color=True)).double().eval()
    torch.testing.assert_close(grey(xp), grey(x), atol=1e-6, rtol=0)
    assert float((color(xp) - color(x)).abs()) > 1e-4
