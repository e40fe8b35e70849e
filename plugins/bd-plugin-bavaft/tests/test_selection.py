"""Golden test of Algorithm 1 (top-K selection + reweighting) against a numpy transcription."""

import numpy as np
import pytest
import torch
from bd_plugin_bavaft.selection import frequency_sensitivity, reweight_factors, topk_reweight_mask


def algorithm1_numpy(mt: np.ndarray, imp: np.ndarray, k: int) -> np.ndarray:
    """Line-by-line transcription of the paper's Algorithm 1 (3×N)."""
    mt = mt.copy()
    n = mt.shape[1]
    btm_index = np.argsort(-imp, axis=1, kind="stable")[:, : n - k]  # topk(I, N-K, largest=True)
    np.put_along_axis(mt, btm_index, 0.0, axis=1)
    topk_index = np.argsort(imp, axis=1, kind="stable")[:, :k]  # topk(I, K, largest=False), ascending
    src = np.array([((k - 1 - i) / (k - 1) + 0.5) ** 0.5 for i in range(k)])
    cur = np.take_along_axis(mt, topk_index, axis=1)
    np.put_along_axis(mt, topk_index, cur * src[None, :], axis=1)
    return mt


@pytest.mark.parametrize("k", [16, 4, 63])
def test_topk_reweight_matches_algorithm1(k):
    rng = np.random.default_rng(k)
    mt = rng.normal(size=(3, 64))
    imp = rng.permutation(3 * 64).reshape(3, 64).astype(float)  # distinct: no ties
    ref = algorithm1_numpy(mt, imp, k)
    ours = torch.tensor(mt) * topk_reweight_mask(torch.tensor(imp), k)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12)
    assert (ours != 0).sum(1).tolist() == [k, k, k]


def test_batched_and_learned_mode():
    g = torch.Generator().manual_seed(0)
    imp = torch.randn(5, 3, 64, generator=g)
    m = topk_reweight_mask(imp, 16, reweight=False, largest_kept=True)
    assert torch.equal(m.sum(-1), torch.full((5, 3), 16.0))
    kept = imp.topk(16, dim=-1).indices
    assert torch.all(m.gather(-1, kept) == 1)


def test_reweight_endpoints():
    f = reweight_factors(16, dtype=torch.float64)
    assert f[0].item() == pytest.approx(1.5**0.5) and f[-1].item() == pytest.approx(0.5**0.5)
    assert torch.all(f[:-1] > f[1:])


def test_sensitivity_ranks_high_frequencies_as_fragile_under_blur():
    """A blur removes high frequencies more than low ones, so their sensitivity must be larger."""
    from bd_plugin_bavaft.dct import dct_to_image, image_to_dct

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) * 0.5 + 0.25
    idx = torch.tensor([1 * 16 + 1, 12 * 16 + 12])  # a low and a high frequency
    inj = torch.full((2, 3, 2, 2, 2), 200.0, dtype=torch.float64)
    coeffs = image_to_dct(x).flatten(-2).index_add(-1, idx, inj).view(2, 3, 2, 2, 16, 16)
    xp = dct_to_image(coeffs).clamp(0, 1)
    sens = frequency_sensitivity(xp, inj, idx, kinds=("blur",), generator=torch.Generator().manual_seed(1))
    assert sens.shape == (2, 3, 2)
    assert torch.all(sens[..., 1] > sens[..., 0])


def test_trigger_sensitivity_measures_the_triggers_own_coefficients():
    """``clean = x`` (ours): for a linear preprocessing (blur) the numerator is the blur of the trigger alone,
    so I does not depend on the image content; Eq. 17 as written does (the image's own coefficients move)."""
    from bd_plugin_bavaft.dct import dct_delta_to_image, image_to_dct
    from bd_plugin_bavaft.selection import preprocess_sample

    g = torch.Generator().manual_seed(0)
    idx = torch.tensor([1 * 16 + 2, 9 * 16 + 7])
    inj = torch.zeros(2, 3, 2, 2, 2, dtype=torch.float64)
    inj[:, 0, :, :, 0], inj[:, 1, :, :, 1] = 40.0, -30.0
    flat = torch.zeros(2, 3, 2, 2, 256, dtype=torch.float64).index_add(-1, idx, inj)
    delta = dct_delta_to_image(flat.view(2, 3, 2, 2, 16, 16))
    smooth = torch.linspace(0.3, 0.7, 32, dtype=torch.float64).view(1, 1, 1, 32).expand(2, 3, 32, 32)
    textured = 0.3 + 0.4 * torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    out = {}
    for name, x in (("smooth", smooth), ("textured", textured)):
        xp = x + delta
        assert float(xp.min()) > 0 and float(xp.max()) < 1  # no clamping: t is linear in the change
        for mode in ("image", "trigger"):
            out[name, mode] = frequency_sensitivity(
                xp, inj, idx, kinds=("blur",), generator=torch.Generator().manual_seed(3),
                clean=x if mode == "trigger" else None,
            )  # fmt: skip
    # independent: blur the change alone (the block DCT pipeline is affine; compare with a flat image)
    flat_img = torch.full((2, 3, 32, 32), 0.5, dtype=torch.float64)
    blurred = preprocess_sample(torch.cat([delta, delta]), "blur", torch.Generator().manual_seed(3), per_image=False)[
        :2
    ]
    coeff = (image_to_dct(flat_img + blurred, quantize=False) - image_to_dct(flat_img, quantize=False)).flatten(-2)
    expected = ((coeff[..., idx] - inj).abs() / inj.abs().clamp_min(1e-6)).sum(dim=(2, 3))
    torch.testing.assert_close(out["smooth", "trigger"], expected, rtol=1e-6, atol=1e-5)  # inj = 0: 1e-6 floors
    torch.testing.assert_close(out["textured", "trigger"], expected, rtol=1e-6, atol=1e-5)
    assert not torch.allclose(out["smooth", "image"], out["textured", "image"], rtol=0.05)
