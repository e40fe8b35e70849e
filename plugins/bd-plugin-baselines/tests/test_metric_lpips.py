"""LPIPS wiring: equal to the lpips package on the same (random, seeded) backbone; local weights."""

from __future__ import annotations

import math

import pytest
import torch
from bd_plugin_baselines.metrics.components import Lpips
from bd_plugin_baselines.metrics.perceptual import BACKBONE_FILES, LpipsWeightsMissing, build_lpips
from bd_plugin_baselines.params_defenses import LpipsParams

from bdcore.context import Context
from bdcore.errors import UntrustedFileError
from bdcore.metrics.batch import EvalBatch

lpips = pytest.importorskip("lpips")


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 32, 32, generator=gen)
    return a, (a + 0.1 * torch.randn(a.shape, generator=gen)).clamp(0, 1)


def _reference(net: str, seed: int):
    torch.manual_seed(seed)
    return lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()  # lin layers from the wheel, random backbone


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_random_backbone_equals_lpips_package(net: str) -> None:
    a, b = _pair()
    ref = _reference(net, 5)
    with torch.no_grad():
        expected = ref(a, b, normalize=True).flatten().double()
    metric = Lpips(LpipsParams(net=net, random_backbone=True, seed=5), Context(component="metric:lpips"))
    metric.update(EvalBatch(split="clean", input=a, output=a, target=b))
    assert metric.name == "lpips(random-backbone)"
    assert math.isclose(metric.compute()[metric.name], float(expected.mean()), rel_tol=1e-6)
    assert float(expected.mean()) > 0


def test_backbone_loaded_from_a_local_torchvision_file(tmp_path) -> None:
    """Save a (seeded random) backbone in torchvision's key layout; the metric must load it
    and equal lpips with that backbone, regardless of its own initial weights."""
    import torchvision

    torch.manual_seed(11)
    tv_net = torchvision.models.alexnet(weights=None)
    path = tmp_path / BACKBONE_FILES["alex"]
    torch.save(tv_net.state_dict(), path)
    ref = _reference("alex", 0)
    for i, layer in enumerate(tv_net.features):  # the same backbone, placed into lpips' slices by index
        for block in ref.net.children():
            if str(i) in dict(block.named_children()):
                getattr(block, str(i)).load_state_dict(layer.state_dict())
    a, b = _pair()
    with torch.no_grad():
        expected = ref(a, b, normalize=True).flatten().double()
    model = build_lpips("alex", weights=path, seed=99)
    with torch.no_grad():
        got = model(a, b, normalize=True).flatten().double()
    torch.testing.assert_close(got, expected)
    with pytest.raises(UntrustedFileError):
        build_lpips("alex", weights=path, sha256="0" * 64)


def test_missing_weights_error_names_the_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(LpipsWeightsMissing, match=r"alexnet-owt-7be5be79\.pth"):
        build_lpips("alex")
    with pytest.raises(LpipsWeightsMissing, match=r"vgg16-397923af\.pth"):
        Lpips(LpipsParams(net="vgg"), Context(component="metric:lpips"))
