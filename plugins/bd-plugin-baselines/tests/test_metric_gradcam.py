"""grad-cam: closed-form golden tests, pytorch-grad-cam as a reference, the metric, its grid columns, a toy run."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bd_plugin_baselines import registration_defenses
from bd_plugin_baselines.metrics.components import GradCam
from bd_plugin_baselines.metrics.gradcam import (
    GradCamError,
    cam_from,
    colormap_table,
    default_layer,
    grad_cam,
    heatmap,
    pearson,
    probe_conv_layers,
)
from bd_plugin_baselines.params_defenses import GradCamParams
from torch import nn

from bdcore.context import Context
from bdcore.metrics.batch import EvalBatch
from bdcore.testing.contracts import MetricContract

cv2 = pytest.importorskip("cv2")


# --------------------------------------------------------------------------- independent numpy pieces


def np_conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation ``B×C×H×W`` * ``K×C×kh×kw`` as a sum over kernel offsets (float64)."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    _, _, h, wd = x.shape
    _, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            out += np.einsum("bchw,kc->bkhw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def np_finish(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """ReLU, OpenCV bilinear resize to ``size`` (H, W), min-max per image → ``B×H×W``."""
    out = []
    for c in np.maximum(cam, 0):
        r = cv2.resize(c, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) if c.shape != size else c
        r = r - r.min()
        out.append(r / r.max() if r.max() > 0 else r)
    return np.stack(out)


class ImageNet(nn.Module):
    """conv (stride 2) → LeakyReLU in place → 1×1 conv → nearest ×2: an image-to-image model."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.head = nn.Conv2d(6, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.head(self.act(self.conv(x))), scale_factor=2, mode="nearest")

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class ScoreNet(nn.Module):
    """conv (stride 2) → ReLU in place → global average pool → linear: one score per image (IQA-like)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
        self.fc = nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x), inplace=True).mean(dim=(2, 3))).squeeze(1)

    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"output": self(x), "extra": x.mean(dim=(1, 2, 3))}


def _model(cls: type[nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return cls().double().eval()


def test_golden_image_output_linear_head() -> None:
    """``y = mean(nearest×2(U·g(A)))``: ``∂y/∂A_kij = (Σ_c U_ck)/(3hw)·g'(A_kij)`` (g = LeakyReLU 0.2)."""
    m = _model(ImageNet)
    x = torch.rand(3, 3, 16, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = grad_cam(m.predict, m.conv, x).numpy()[:, 0]

    w, b = m.conv.weight.detach().numpy(), m.conv.bias.detach().numpy()
    a = np_conv2d(x.numpy(), w, b, stride=2, pad=1)  # B×6×8×10
    hw = a.shape[2] * a.shape[3]
    u = m.head.weight.detach().numpy()[:, :, 0, 0].sum(axis=0)  # Σ_c U_ck
    slope = np.where(a > 0, 1.0, 0.2)
    weights = u[None, :] / (3 * hw) * slope.mean(axis=(2, 3))  # B×K
    ref = np_finish(np.einsum("bk,bkhw->bhw", weights, a), (16, 20))
    assert np.abs(ref).max() == 1.0  # a real map, not all zero
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("size", [(16, 16), (13, 17)])
def test_golden_score_output(size: tuple[int, int]) -> None:
    """``y = v·mean_ij ReLU(A)``: ``∂y/∂A_kij = v_k/(hw)·[A_kij > 0]``; 13×17 → 7×9 maps resized by a non-integer factor."""
    m = _model(ScoreNet, seed=3)
    x = torch.rand(4, 3, *size, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = grad_cam(m.predict, m.conv, x).numpy()[:, 0]

    a = np_conv2d(x.numpy(), m.conv.weight.detach().numpy(), m.conv.bias.detach().numpy(), stride=2, pad=1)
    hw = a.shape[2] * a.shape[3]
    v = m.fc.weight.detach().numpy()[0]
    weights = v[None, :] / hw * (a > 0).mean(axis=(2, 3))
    ref = np_finish(np.einsum("bk,bkhw->bhw", weights, a), size)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_output_l2_target_closed_form() -> None:
    """``y = ‖v·mean ReLU(A) + c‖`` = |score|: the weights are the score's times its sign."""
    m = _model(ScoreNet, seed=4)
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    score = m(x).detach()
    with torch.no_grad():
        m.fc.bias -= score.mean()  # centred: some scores positive, some negative
    sign = torch.sign(m(x).detach())
    assert set(sign.tolist()) == {-1.0, 1.0}
    got = grad_cam(m.predict, m.conv, x, target="output-l2")
    a = m.conv(x).detach()
    g = m.fc.weight.detach()[0].view(1, -1, 1, 1) * (a > 0) / (a.shape[2] * a.shape[3]) * sign.view(-1, 1, 1, 1)
    torch.testing.assert_close(got, cam_from(a, g, (12, 12)))


def test_agrees_with_pytorch_grad_cam() -> None:
    """jacobgil/pytorch-grad-cam's GradCAM (on a copy: it puts the model in eval mode and writes .grad)."""
    lib = pytest.importorskip("pytorch_grad_cam")

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.c3 = nn.Conv2d(8, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.relu(self.c2(F.relu(self.c1(x))))
            return torch.sigmoid(F.interpolate(self.c3(h), size=x.shape[-2:], mode="bilinear"))

    torch.manual_seed(5)
    net = Net().eval()
    x = torch.rand(3, 3, 18, 22, generator=torch.Generator().manual_seed(6))
    for layer in ("c1", "c2"):
        ours = grad_cam(net, getattr(net, layer), x)[:, 0].numpy()
        ref_net = copy.deepcopy(net)
        with lib.GradCAM(model=ref_net, target_layers=[getattr(ref_net, layer)]) as cam:
            ref = cam(input_tensor=x, targets=[lambda out: out.mean()] * 3)
        np.testing.assert_allclose(ours, ref, atol=2e-5)


# --------------------------------------------------------------------------- the victim is left alone


class TinyUNet(nn.Module):
    """Down to a bottleneck and back, BatchNorm, in-place activations, a residual output."""

    def __init__(self) -> None:
        super().__init__()
        self.inc = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.mid = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.out = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.inc(x).relu()
        return x + self.out(torch.cat([self.up(self.mid(self.down(s))), s], dim=1))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_victim_parameters_mode_grads_untouched(mode: str) -> None:
    torch.manual_seed(0)
    m = TinyUNet()
    m.train(mode == "train")
    m.mid[0].weight.requires_grad_(False)  # a frozen part stays frozen
    before = _state(m)
    flags = {n: p.requires_grad for n, p in m.named_parameters()}
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():  # as in the evaluator
        grad_cam(m.predict, m.mid[0], x)
        probe_conv_layers(m.predict, m, x, target="output-mean")
        assert not torch.is_grad_enabled()
    assert m.training == (mode == "train")
    assert all(mod.training == (mode == "train") for mod in m.modules())
    assert all(p.grad is None for p in m.parameters())
    assert {n: p.requires_grad for n, p in m.named_parameters()} == flags
    after = m.state_dict()
    for k, v in before.items():
        if mode == "train" and k.startswith("down.1."):
            continue  # BatchNorm in train mode updates its running stats on any forward: the caller's choice
        assert torch.equal(v, after[k]), k


def test_deterministic() -> None:
    torch.manual_seed(0)
    m = TinyUNet().eval()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(grad_cam(m.predict, m.mid[0], x), grad_cam(m.predict, m.mid[0], x))
    a, b = _metric_on(m, x), _metric_on(m, x)
    assert a == b


# --------------------------------------------------------------------------- the default layer


def test_default_layer_is_the_bottleneck_that_gets_a_gradient() -> None:
    torch.manual_seed(0)
    m = TinyUNet().eval()
    probes = probe_conv_layers(m.predict, m, torch.rand(1, 3, 16, 16), target="output-mean")
    assert [p.name for p in probes] == ["inc", "down.0", "mid.0", "up", "out"]  # execution order
    assert {p.name: p.area for p in probes} == {"inc": 256, "down.0": 64, "mid.0": 64, "up": 256, "out": 256}
    assert default_layer(probes) == "mid.0"  # 8×8, and runs after down.0

    class Dead(TinyUNet):
        """mid's output is multiplied by zero: connected, but no gradient reaches it."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = self.inc(x).relu()
            d = self.down(s)
            return x + self.out(torch.cat([self.up(d + 0 * self.mid(d)), s], dim=1))

    torch.manual_seed(0)
    dead = Dead().eval()
    probes = probe_conv_layers(dead.predict, dead, torch.rand(1, 3, 16, 16), target="output-mean")
    assert {p.name: (p.connected, p.nonzero) for p in probes}["mid.0"] == (True, False)
    assert default_layer(probes) == "down.0"

    class Twice(TinyUNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = self.inc(x).relu()
            return x + self.out(torch.cat([self.up(self.mid(self.mid(self.down(s)))), s], dim=1))

    torch.manual_seed(0)
    twice = Twice().eval()
    probes = probe_conv_layers(twice.predict, twice, torch.rand(1, 3, 16, 16), target="output-mean")
    assert {p.name: p.calls for p in probes}["mid.0"] == 2
    assert default_layer(probes) == "down.0"  # a layer that runs twice has no single map
    with pytest.raises(GradCamError, match="ran 2 times"):
        grad_cam(twice.predict, twice.mid[0], torch.rand(1, 3, 16, 16))


def test_patch_based_victims_are_refused() -> None:
    """A victim that scores 2 half-image patches per image (CNNIQA-style) has no per-image map."""

    class Patches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            halves = torch.cat(x.chunk(2, dim=-1), dim=0)  # 2B×C×H×W/2
            return self.conv(halves).mean(dim=(1, 2, 3)).view(2, -1).mean(0)

    m = Patches()
    x = torch.rand(3, 3, 8, 8)
    probes = probe_conv_layers(m, m, x, target="output-mean")
    assert [(p.name, p.per_image, p.nonzero) for p in probes] == [("conv", False, True)]
    assert default_layer(probes) is None
    with pytest.raises(GradCamError, match="outputs 6 maps for 3 images"):
        grad_cam(m, m.conv, x)
    with pytest.raises(GradCamError, match=r"metric\[3\]\.params\.layer: no conv layer of the victim \(Patches\)"):
        _metric_on(m, x, call="forward")


def test_predict_without_gradients_is_reported() -> None:
    class Coded(TinyUNet):
        @torch.no_grad()
        def predict(self, x: torch.Tensor) -> torch.Tensor:
            return self(x).mul(255).round().div(255)

    m = Coded().eval()
    with pytest.raises(GradCamError, match='use call = "forward"'):
        grad_cam(m.predict, m.mid[0], torch.rand(1, 3, 16, 16))
    metric = GradCam(GradCamParams(), _ctx())
    with pytest.raises(GradCamError, match=r'spec\.toml: metric\[3\]\.params\.layer: .*call = "forward"'):
        metric.update(_batch(m, torch.rand(2, 3, 16, 16)))
    assert _metric_on(m, torch.rand(2, 3, 16, 16), call="forward")["grad-cam.similarity"] > -1.0


# --------------------------------------------------------------------------- the metric


def _ctx() -> Context:
    return Context(
        seed=0,
        component="metric:grad-cam",
        options={"registered_name": "grad-cam", "spec_path": "metric[3]", "spec_file": "spec.toml"},
    )


def _batch(victim: Any, clean: torch.Tensor, triggered: torch.Tensor | None = None) -> EvalBatch:
    triggered = clean if triggered is None else triggered
    return EvalBatch(
        split="poisoned", input=triggered, output=triggered, clean_input=clean, clean_model_input=clean, victim=victim
    )


def _metric_on(victim: Any, clean: torch.Tensor, triggered: torch.Tensor | None = None, **params: Any) -> dict:
    m = GradCam(GradCamParams(**params), _ctx())
    m.reset()
    m.update(_batch(victim, clean, triggered))
    return m.compute()


def test_pearson_matches_numpy() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 1, 5, 7, generator=gen), torch.rand(3, 1, 5, 7, generator=gen)
    b[1] = 0.3 * a[1] + 0.1  # perfectly correlated
    b[2] = 0.5  # constant: undefined
    r = pearson(a, b)
    assert float(r[0]) == pytest.approx(np.corrcoef(a[0].numpy().ravel(), b[0].numpy().ravel())[0, 1], abs=1e-12)
    assert float(r[1]) == pytest.approx(1.0, abs=1e-12)
    assert torch.isnan(r[2])


def test_values_on_an_untriggered_and_a_triggered_batch() -> None:
    torch.manual_seed(0)
    m = TinyUNet().eval()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    same = _metric_on(m, x)
    assert same == {"grad-cam.similarity": pytest.approx(1.0), "grad-cam.abs-diff": 0.0, "grad-cam.constant": 0.0}
    patched = x.clone()
    patched[..., 10:, 10:] = 1.0
    moved = _metric_on(m, x, patched)
    metric = GradCam(GradCamParams(), _ctx())
    cam_c, cam_t = metric.cams(_batch(m, x, patched))
    r = pearson(cam_t, cam_c)
    assert moved["grad-cam.similarity"] == pytest.approx(float(r.mean()))
    assert moved["grad-cam.abs-diff"] == pytest.approx(float((cam_t - cam_c).abs().mean()))
    assert moved["grad-cam.similarity"] < 0.99 and moved["grad-cam.abs-diff"] > 0.01


def test_constant_maps_are_counted_not_averaged() -> None:
    torch.manual_seed(0)
    m = TinyUNet().eval()
    with torch.no_grad():
        m.out.weight.zero_()  # the output no longer depends on the inner layers: zero gradients
    out = _metric_on(m, torch.rand(2, 3, 16, 16), layer="mid.0")
    assert np.isnan(out["grad-cam.similarity"]) and out["grad-cam.constant"] == 1.0 and out["grad-cam.abs-diff"] == 0.0


def test_a_missing_layer_names_the_spec_key_and_the_conv_layers() -> None:
    torch.manual_seed(0)
    m = TinyUNet().eval()
    with pytest.raises(
        GradCamError,
        match=re.escape(
            "spec.toml: metric[3].params.layer: the victim (TinyUNet) has no module 'bottleneck'; "
            "conv layers: inc, down.0, mid.0, up, out"
        ),
    ):
        _metric_on(m, torch.rand(2, 3, 16, 16), layer="bottleneck")
    # any module with a B×K×h×w output will do (here a Sequential ending in an in-place ReLU)
    assert _metric_on(m, torch.rand(2, 3, 16, 16), layer="down")["grad-cam.abs-diff"] == 0.0
    m2 = _model(ScoreNet).float()
    with pytest.raises(GradCamError, match=r"metric\[3\]\.params\.layer = 'fc': the layer's output must be"):
        _metric_on(m2, torch.rand(2, 3, 16, 16), layer="fc")


def test_bad_params_are_spec_errors() -> None:
    from bdcore.spec.converter import make_converter, structure

    conv = make_converter()
    for raw, key in (({"colormap": "not-a-map"}, "colormap"), ({"overlay": 1.5}, "overlay"), ({"call": "x"}, "call")):
        _, issues = structure(conv, raw, GradCamParams, "params")
        assert issues and any(key in i.path or key in i.message for i in issues), (raw, issues)


def test_grid_columns_are_coloured_maps() -> None:
    torch.manual_seed(0)
    m = TinyUNet().eval()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t = x.clone()
    t[..., 10:, 10:] = 1.0
    metric = GradCam(GradCamParams(overlay=0.0), _ctx())
    cols = metric.grid_columns(_batch(m, x, t), 2)
    assert sorted(cols) == ["clean input", "triggered input"]
    cam_c, cam_t = metric.cams(_batch(m, x, t), 2)
    for key, cam in (("clean input", cam_c), ("triggered input", cam_t)):
        img = cols[key]
        assert img.shape == (2, 3, 16, 16) and float(img.min()) >= 0 and float(img.max()) <= 1
        table = colormap_table("jet")
        torch.testing.assert_close(img, table[(cam[:, 0] * 255).round().long()].permute(0, 3, 1, 2))
    blended = GradCam(GradCamParams(overlay=0.25), _ctx()).grid_columns(_batch(m, x, t), 2)["triggered input"]
    torch.testing.assert_close(blended, 0.75 * cols["triggered input"] + 0.25 * t[:2])


def test_colormap_table_is_matplotlib() -> None:
    import matplotlib

    table = colormap_table("viridis")
    for k in (0, 1, 77, 128, 254, 255):
        np.testing.assert_allclose(table[k].numpy(), matplotlib.colormaps["viridis"](k / 255)[:3], atol=1e-6)
    cam = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1)
    np.testing.assert_allclose(heatmap(cam, colormap="viridis")[:, :, 0, 0].numpy(), table[[0, 128, 255]].numpy())


class TestGradCamContract(MetricContract):
    params_cls = GradCamParams

    def make(self) -> GradCam:
        return GradCam(GradCamParams(), _ctx())

    def batch(self) -> EvalBatch:
        b = super().batch()
        torch.manual_seed(0)
        b.victim = TinyUNet().eval()
        return b


# --------------------------------------------------------------------------- end to end: the report shows the maps

SPEC = """
[run]
name = "gradcam"
seed = 1
[data]
use = "toy-smooth"
params = { count = 16, size = 16 }
[victim]
use = "toy-denoiser"
params = { width = 8 }
[train]
steps = 4
batch_size = 4
[attack]
poison_rate = 0.5
steps = 4
batch_size = 4
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert"
[eval]
grid = 2
[[metric]]
use = "grad-cam"
"""


def test_toy_run_reports_similarity_and_heat_maps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bdcore.testing import run_spec

    with caplog.at_level("INFO", logger="bdcore"):
        out = run_spec(SPEC, tmp_path, plugins=[registration_defenses])
    for stage in ("clean-victim", "attacked"):
        r = out.value("grad-cam.similarity", stage=stage)
        assert -1.0 <= r <= 1.0
        assert 0.0 <= out.value("grad-cam.abs-diff", stage=stage) <= 1.0
    assert not [row for row in out.rows if row["metric"].startswith("grad-cam") and row["split"] == "clean"]
    html = (out.run_dir / "report.html").read_text()
    for column, stem in (
        ("grad-cam: clean input", "attacked-model-grad-cam-clean-input"),
        ("grad-cam: triggered input", "attacked-model-grad-cam-triggered-input"),
    ):
        assert f"<b>{column}</b>" in html
        for i in range(2):
            assert f"grid/{stem}-{i}.png" in html
            assert (out.run_dir / "grid" / f"{stem}-{i}.png").is_file()
    assert (
        "grad-cam: explaining layer 'body.4' (the bottleneck conv)" in caplog.text
    )  # toy-denoiser: all 16×16, the last
