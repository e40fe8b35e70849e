"""NIQE: the plugin's metric (pyiqa + basicsr 1.4.2's pristine model) against basicsr's own ``niqe.py``.

The reference is the numpy NIQE in the basicsr 1.4.2 sdist (the file that ``niqe_params fetch``
extracts beside the npz), which its authors checked against MATLAB to 1e-7 on baboon.png. It is
imported from the sdist folder with stub parent packages, because ``import basicsr`` would import
the whole training framework. The MATLAB release converts RGB with ``rgb2gray``; basicsr's matching
mode is ``convert_to="gray"`` (its default ``"y"`` is the YCbCr luma, a different NIQE).

CI fetches the sdist before this session (noxfile); elsewhere these tests skip unless
``python -m bd_plugin_asfiba.niqe_params fetch`` has been run.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from bd_plugin_asfiba.metrics import NIQE
from bd_plugin_asfiba.niqe_params import NPZ_MEMBER, default_cache, niqe_mat_path
from bd_plugin_asfiba.params import NIQEParams

from bdcore.errors import ComponentError

KODAK = Path(__file__).resolve().parents[3] / "../shared/data/kodak"
SDIST = default_cache() / "basicsr-1.4.2"

needs_sdist = pytest.mark.skipif(
    not (SDIST / NPZ_MEMBER).is_file(),
    reason=f"basicsr 1.4.2 sdist not at {SDIST}; run `python -m bd_plugin_asfiba.niqe_params fetch`",
)


@pytest.fixture(scope="module")
def basicsr_niqe() -> Iterator[Any]:
    """basicsr's ``metrics/niqe.py`` module, imported from the sdist without ``basicsr/__init__``."""
    root = SDIST / "basicsr"
    names = ["basicsr", "basicsr.utils", "basicsr.metrics"]
    saved = {n: sys.modules.get(n) for n in names}
    for name, path in zip(names, [root, root / "utils", root / "metrics"], strict=True):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        sys.modules[name] = stub
    loaded: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # scipy.ndimage.filters
            color = importlib.import_module("basicsr.utils.color_util")
            sys.modules["basicsr.utils"].bgr2ycbcr = color.bgr2ycbcr  # type: ignore[attr-defined]
            module = importlib.import_module("basicsr.metrics.niqe")
        loaded = [n for n in sys.modules if n.startswith("basicsr.")]
        yield module
    finally:
        for name in loaded:
            sys.modules.pop(name, None)
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _images() -> list[np.ndarray]:
    """HWC uint8 RGB: two Kodak crops when the shared data is there, and a seeded smooth+texture image."""
    from PIL import Image

    out = []
    for name in ["kodim04.png"]:
        if (KODAK / name).is_file():
            out.append(np.asarray(Image.open(KODAK / name).convert("RGB"))[:384, :384])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:192, 0:256] / 40.0
    base = 0.5 + 0.3 * np.sin(xx)[..., None] * np.cos(yy)[..., None] + 0.05 * rng.standard_normal((192, 256, 3))
    out.append((np.clip(base, 0, 1) * 255).round().astype(np.uint8))
    return out


@needs_sdist
def test_niqe_matches_basicsr_reference(basicsr_niqe: Any) -> None:
    metric = NIQE(NIQEParams())
    for rgb in _images():
        ref = basicsr_niqe.calculate_niqe(rgb[..., ::-1].astype(np.float64), 0, input_order="HWC", convert_to="gray")
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
        ours = float(metric.per_image(SimpleNamespace(output=x)))
        # measured: |Δ| ≤ 7e-4 on Kodak, 1.3e-2 at NIQE 19.4 on the synthetic image (relative ≤ 7e-4); the
        # float32 grey conversion in cv2 vs float64 in pyiqa
        assert ours == pytest.approx(float(ref), rel=1e-3, abs=2e-3), (rgb.shape, ours, float(ref))


@needs_sdist
def test_niqe_prefers_pristine_over_degraded() -> None:
    metric = NIQE(NIQEParams())
    rgb = _images()[0]
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    noisy = (x + 0.15 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    values = metric.per_image(SimpleNamespace(output=torch.cat([x, noisy])))
    assert values.shape == (2,)
    assert float(values[1]) > float(values[0]) + 1.0  # lower = more natural


@needs_sdist
def test_tampered_pristine_model_is_refused(tmp_path: Path) -> None:
    npz = tmp_path / "basicsr-1.4.2" / NPZ_MEMBER
    npz.parent.mkdir(parents=True)
    shutil.copy(SDIST / NPZ_MEMBER, npz)
    with npz.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ComponentError, match=r"sha256.*fetch"):
        niqe_mat_path(None, tmp_path)


def test_missing_pristine_model_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"niqe_pris_params\.npz.*niqe_params fetch"):
        NIQE(NIQEParams(cache_dir=tmp_path))
    with pytest.raises(ComponentError, match=r"params_path .* not found"):
        NIQE(NIQEParams(params_path=tmp_path / "nope.npz"))


def test_small_images_are_refused_with_the_size(tmp_path: Path) -> None:
    mat = tmp_path / "p.mat"
    import scipy.io

    scipy.io.savemat(mat, {"mu_prisparam": np.zeros((1, 36)), "cov_prisparam": np.eye(36)})
    metric = NIQE(NIQEParams(params_path=mat))
    with pytest.raises(ComponentError, match="192"):
        metric.per_image(SimpleNamespace(output=torch.rand(1, 3, 128, 200)))
