"""Safe checkpoint loading and golden tests of the built-in metrics."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from bdcore.engine.evaluate import auroc
from bdcore.errors import DataError, UntrustedFileError
from bdcore.io.checkpoint import load_weights, sha256_of
from bdcore.metrics import image


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - the classic pickle exploit
        return (os.system, ("touch pwned-by-pickle",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": _Evil()}, fh)
    with pytest.raises(UntrustedFileError, match="refused to load"):
        load_weights(path)
    assert not (tmp_path / "pwned-by-pickle").exists()


def test_plain_checkpoints_and_sha256(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {"w": torch.arange(6.0).view(2, 3)}
    torch.save(state, tmp_path / "ok.pt")
    save_file(state, str(tmp_path / "ok.safetensors"))
    assert torch.equal(load_weights(tmp_path / "ok.pt")["w"], state["w"])
    assert torch.equal(load_weights(tmp_path / "ok.safetensors")["w"], state["w"])
    good = sha256_of(tmp_path / "ok.pt")
    assert torch.equal(load_weights(tmp_path / "ok.pt", sha256=good)["w"], state["w"])
    with pytest.raises(UntrustedFileError, match="sha256"):
        load_weights(tmp_path / "ok.pt", sha256="0" * 64)
    with pytest.raises(DataError, match="not found"):
        load_weights(tmp_path / "missing.pt")


def _pair(seed: int = 0, size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.interpolate(torch.rand(3, 3, 12, 12, generator=g), size=size, mode="bilinear").clamp(0, 1)
    b = (a + 0.08 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a.double(), b.double()


def test_psnr_and_ssim_match_skimage() -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a, b = _pair()
    ps = image.psnr(a, b)
    ss = image.ssim(a, b)
    for i in range(a.shape[0]):
        x, y = a[i].permute(1, 2, 0).numpy(), b[i].permute(1, 2, 0).numpy()
        assert ps[i].item() == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-6)
        ref = structural_similarity(
            x, y, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert ss[i].item() == pytest.approx(ref, abs=2e-4)
    assert image.psnr(a, a)[0].item() == 100.0


def _ms_ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Independent MS-SSIM (Wang 2003): Gaussian σ = 1.5 window 11, valid region, 2× average pooling."""
    from scipy.ndimage import convolve1d

    k = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    k /= k.sum()

    def filt(img: np.ndarray) -> np.ndarray:
        out = convolve1d(convolve1d(img, k, axis=0, mode="constant"), k, axis=1, mode="constant")
        return out[5:-5, 5:-5]

    c1, c2 = 0.01**2, 0.03**2
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    vals = []
    for level in range(5):
        cs_c, ss_c = [], []
        for c in range(x.shape[0]):
            a, b = x[c], y[c]
            mu_a, mu_b = filt(a), filt(b)
            saa, sbb, sab = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2, filt(a * b) - mu_a * mu_b
            cs = (2 * sab + c2) / (saa + sbb + c2)
            ss_c.append((((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)) * cs).mean())
            cs_c.append(cs.mean())
        vals.append((np.mean(cs_c), np.mean(ss_c)))
        if level < 4:
            h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
            x = x[:, :h, :w].reshape(x.shape[0], h // 2, 2, w // 2, 2).mean((2, 4))
            y = y[:, :h, :w].reshape(y.shape[0], h // 2, 2, w // 2, 2).mean((2, 4))
    out = np.prod([max(v[0], 0) ** w for v, w in zip(vals[:-1], weights[:-1])]) * max(vals[-1][1], 0) ** weights[-1]
    return float(out)


def test_ms_ssim_matches_independent_numpy() -> None:
    a, b = _pair(size=192)
    got = image.ms_ssim(a, b)
    for i in range(a.shape[0]):
        assert got[i].item() == pytest.approx(_ms_ssim_numpy(a[i].numpy(), b[i].numpy()), abs=2e-3)


def test_ms_ssim_small_images_use_fewer_scales() -> None:
    a, b = _pair(size=40)
    v = image.ms_ssim(a, b)
    assert v.shape == (3,) and bool(((v > 0) & (v <= 1)).all())


def test_auroc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 50).round(1), rng.normal(0.8, 1, 40).round(1)
    ref = roc_auc_score(np.r_[np.zeros(50), np.ones(40)], np.r_[neg, pos])
    assert auroc(neg, pos) == pytest.approx(ref, abs=1e-12)


def _write_pngs(folder: Path, sizes: list[tuple[int, int]]) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"im{i}.png")


def test_image_folder_with_a_separate_test_folder_and_whole_test_images(tmp_path: Path) -> None:
    from bdcore.builtin.params import ImageFolderParams
    from bdcore.context import Context
    from bdcore.data.sources import ImageFolder

    _write_pngs(tmp_path / "train", [(40, 40)] * 5)
    _write_pngs(tmp_path / "kodak", [(32, 48), (48, 32)])
    params = ImageFolderParams(path=Path("train"), test_path=Path("kodak"), crop=16, test_crop=0, limit=4)
    splits = ImageFolder(params, Context(spec_dir=tmp_path)).splits()
    assert splits["train"].names == ["im0.png", "im1.png", "im2.png", "im3.png"]  # limit per folder
    assert splits["test"].names == ["im0.png", "im1.png"]
    assert splits["train"].get(0, seed=1)["input"].shape == (3, 16, 16)
    assert [tuple(splits["test"][i]["input"].shape) for i in range(2)] == [(3, 32, 48), (3, 48, 32)]
    # without test_crop, test items take the training crop; without test_path, a seeded split
    crop_only = ImageFolder(ImageFolderParams(path=Path("train"), crop=16), Context(spec_dir=tmp_path)).splits()
    assert crop_only["test"][0]["input"].shape == (3, 16, 16)
    assert len(crop_only["train"]) + len(crop_only["test"]) == 5
    with pytest.raises(DataError, match="no_such"):
        ImageFolder(
            ImageFolderParams(path=Path("train"), test_path=Path("no_such")), Context(spec_dir=tmp_path)
        ).splits()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_reading_images_raises_no_numpy_writability_warning(tmp_path: Path, mode: str) -> None:
    """Grey and colour images, read and converted: no "NumPy array is not writable" warning, exact values."""
    import warnings

    from PIL import Image

    from bdcore.data.images import read_image, to_tensor

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (9, 7, 3 if mode == "RGB" else 1), dtype=np.uint8)
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode=mode).save(tmp_path / "x.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arr = read_image(tmp_path / "x.png", channels=None)
        readonly = pixels.copy()
        readonly.flags.writeable = False
        tensors = [to_tensor(arr), to_tensor(readonly)]
    for t in tensors:
        assert t.dtype == torch.float32 and t.is_contiguous() and t.shape == (pixels.shape[2], 9, 7)
        assert torch.equal(t, torch.from_numpy(pixels.transpose(2, 0, 1).copy()).float() / 255.0)
