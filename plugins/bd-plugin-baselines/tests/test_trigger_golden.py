"""Golden tests: badnets, blended, sig, wanet, fiba vs independent per-image numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bd_plugin_baselines.params_triggers import BadNetsParams, BlendedParams, FIBAParams, SigParams, WaNetParams
from bd_plugin_baselines.triggers.badnets import BadNets, badnets
from bd_plugin_baselines.triggers.blended import Blended, blended
from bd_plugin_baselines.triggers.fiba import FIBA, fiba
from bd_plugin_baselines.triggers.sig import SIG, sig
from bd_plugin_baselines.triggers.wanet import WaNet, wanet, wanet_control_field


def _imgs(b=3, c=3, h=40, w=56, seed=0, dtype=torch.float64):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().permute(1, 2, 0).numpy()  # H×W×C


# ---------------------------------------------------------------- BadNets
def _backdoorbench_badnets(img_u8: np.ndarray) -> np.ndarray:
    """BackdoorBench's BadNets on one H×W×3 uint8 image, from its steps: ``resource/badnet/
    generate_white_square.py`` (32×32 black, 3×3 white square, distances 0 to right and bottom) saved as
    the trigger PNG; ``bd_attack_generate.py``: ``transforms.Resize(img_size[:2])`` of the PIL image,
    ``np.array``; ``patch.py: AddMaskPatchTrigger.add_trigger``: ``img·(t == 0) + t·(t > 0)``;
    ``npClipAndToUint8``: clip to [0, 255], ``astype(uint8)``."""
    from PIL import Image
    from torchvision import transforms

    size, square, right, bottom = 32, 3, 0, 0
    black = np.zeros((size, size, 3), dtype=np.uint8)
    black[size - bottom - square : size - bottom, size - right - square : size - right, :] = 255
    trigger = np.array(transforms.Resize(img_u8.shape[:2])(Image.fromarray(black)))
    after = img_u8 * (trigger == 0) + trigger * (trigger > 0)
    return np.clip(after, 0, 255).astype(np.uint8)


def _u8(b=2, h=32, w=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(b, h, w, 3), dtype=np.uint8)


def test_badnets_default_is_backdoorbench_at_32():
    u8 = _u8()
    x = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255
    t = BadNets(BadNetsParams())
    out = t.inject_trigger(x)
    got = torch.round(out * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    changed = np.zeros((32, 32), dtype=bool)
    for i in range(2):
        ref = _backdoorbench_badnets(u8[i])
        np.testing.assert_array_equal(got[i], ref)
        changed |= (ref != u8[i]).any(-1)
    assert changed[29:32, 29:32].all() and changed.sum() == 9  # rows/columns 29–31, not 28–30
    # the uint8 path stamps the same bytes (BackdoorBench's data type)
    x8 = torch.from_numpy(u8).permute(0, 3, 1, 2)
    out8 = t.inject_trigger(x8)
    assert out8.dtype == torch.uint8
    np.testing.assert_array_equal(out8.permute(0, 2, 3, 1).numpy(), got)
    assert torch.equal(badnets(x), out)


@pytest.mark.parametrize("h,w", [(32, 32), (64, 64), (48, 40), (100, 75)])
def test_badnets_backdoorbench_pattern_at_any_size(h, w):
    pytest.importorskip("torchvision")
    u8 = _u8(h=h, w=w, seed=h + w)
    t = BadNets(BadNetsParams(pattern="backdoorbench"))
    out8 = t.inject_trigger(torch.from_numpy(u8).permute(0, 3, 1, 2))
    outf = t.inject_trigger(torch.from_numpy(u8).permute(0, 3, 1, 2).double() / 255)
    for i in range(2):
        ref = _backdoorbench_badnets(u8[i])
        np.testing.assert_array_equal(out8[i].permute(1, 2, 0).numpy(), ref)
        np.testing.assert_array_equal(torch.round(outf[i] * 255).to(torch.uint8).permute(1, 2, 0).numpy(), ref)


def test_badnets_stamps_elementwise_and_blends_with_strength():
    # BackdoorBench's rule is per element: a channel where the pattern is 0 keeps the image
    pat = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    pat[0, 0] = 1.0  # red only
    pat[0, 1, 0, 0] = 0.5
    x = _imgs(2, h=16, w=16)
    out = badnets(x, pattern=pat, size_px=2, position="top-left")
    ref = x.clone()
    ref[:, 0, :2, :2] = 1.0
    ref[:, 1, 0, 0] = 0.5
    assert torch.equal(out, ref)
    u8 = torch.from_numpy(_u8(h=16, w=16)).permute(0, 3, 1, 2)
    half = badnets(u8, pattern=pat, size_px=2, position="top-left", strength=0.5)
    want = u8.clone()
    want[:, 0, :2, :2] = torch.round(u8[:, 0, :2, :2].double() * 0.5 + 127.5).to(torch.uint8)
    want[:, 1, 0, 0] = torch.round(u8[:, 1, 0, 0].double() * 0.5 + 0.5 * 127.5).to(torch.uint8)
    assert torch.equal(half, want)


def test_badnets_scales_with_resolution_and_pattern():
    x = _imgs(2, h=256, w=320)
    pat = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    out = badnets(x, pattern=pat, size=0.1, margin=0.0, position="top-left", size_px=3, strength=0.5)
    for i in range(2):
        ref = _np(x[i]).copy()
        for (u, v), val in np.ndenumerate(pat[0, 0].numpy()):
            if val > 0:
                ref[u, v] = ref[u, v] + 0.5 * (val - ref[u, v])
        np.testing.assert_allclose(_np(out[i]), ref, atol=1e-12)
    t = BadNets(BadNetsParams(size=0.1, margin=0.0))
    o = t.inject_trigger(x)
    assert (o[:, :, -26:, -26:] == 1).all() and torch.equal(o[:, :, :-26], x[:, :, :-26])  # round(0.1·256)=26
    m = BadNets(BadNetsParams(size=0.1, margin=1 / 32)).inject_trigger(x)  # 8 px from the corner
    assert (m[:, :, -34:-8, -34:-8] == 1).all() and torch.equal(m[:, :, -8:], x[:, :, -8:])


def test_badnets_stamp_is_cached_per_shape_and_gradients_flow():
    t = BadNets(BadNetsParams(pattern="checker", size=0.25))
    x = _imgs(2, h=32, w=32).float()
    t.inject_trigger(x)
    t.inject_trigger(x + 0.0)
    assert len(t._stamps) == 1
    t.inject_trigger(_imgs(1, h=40, w=56).float())
    assert len(t._stamps) == 2
    xg = _imgs(1, h=16, w=16).requires_grad_(True)
    BadNets(BadNetsParams(pattern="checker", size_px=3)).inject_trigger(xg, strength=0.5).sum().backward()
    g = xg.grad[0, 0]
    assert g[0, 0] == 1 and g[-1, -1] == 0.5 and g[-2, -1] == 1.0  # checker: stamped, blended, kept


# ---------------------------------------------------------------- Blended
def test_blended_matches_formula_and_noise_is_seeded():
    x = _imgs()
    t = Blended(BlendedParams(alpha=0.2, seed=7))
    out = t.inject_trigger(x)
    k = t.pattern_for(x)
    for i in range(3):
        ref = np.clip((1 - 0.2) * _np(x[i]) + 0.2 * _np(k[0]), 0, 1)
        np.testing.assert_allclose(_np(out[i]), ref, atol=1e-12)
    assert torch.equal(Blended(BlendedParams(seed=7)).pattern_for(x), k)
    assert not torch.equal(Blended(BlendedParams(seed=8)).pattern_for(x), k)
    fixed = Blended(BlendedParams(seed=3, noise_size=32))
    assert fixed.pattern.shape == (1, 3, 32, 32)


def test_blended_image_pattern():
    pytest.importorskip("skimage")
    t = Blended(BlendedParams(pattern="embedded:chelsea", alpha=0.3))
    x = _imgs(2, h=64, w=48).float()
    out = t.inject_trigger(x, strength=0.5)
    torch.testing.assert_close(out, blended(x, t.pattern_for(x), alpha=0.15))


# ---------------------------------------------------------------- SIG
@pytest.mark.parametrize("orientation", ["horizontal", "vertical"])
def test_sig_matches_barni(orientation):
    x = _imgs(2)
    out = sig(x, delta=20, frequency=6, orientation=orientation)
    _, _, h, w = x.shape
    for i in range(2):
        ref = _np(x[i]).copy()
        for r in range(h):
            for col in range(w):
                j, m = (col, w) if orientation == "horizontal" else (r, h)
                ref[r, col] += 20 * math.sin(2 * math.pi * j * 6 / m) / 255
        np.testing.assert_allclose(_np(out[i]), np.clip(ref, 0, 1), atol=1e-12)
    assert torch.equal(SIG(SigParams()).inject_trigger(x, strength=0.0), x)


# ---------------------------------------------------------------- WaNet
def _cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    t = np.abs(t)
    return np.where(
        t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1, np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0)
    )


def _np_bicubic_align_corners(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Separable Keys-cubic (a = −0.75) upsampling with align_corners=True and edge replication."""

    def axis(n_in: int, n_out: int) -> np.ndarray:
        mat = np.zeros((n_out, n_in))
        for o in range(n_out):
            pos = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
            base = math.floor(pos)
            for tap in range(base - 1, base + 3):
                mat[o, min(max(tap, 0), n_in - 1)] += _cubic(np.array(pos - tap))
        return mat

    return axis(src.shape[0], out_h) @ src @ axis(src.shape[1], out_w).T


def _np_grid_sample(img: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Bilinear sampling, zero padding, align_corners=True; img H×W×C."""
    h, w, _ = img.shape
    px, py = (gx + 1) / 2 * (w - 1), (gy + 1) / 2 * (h - 1)
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    out = np.zeros((gx.shape[0], gx.shape[1], img.shape[2]))
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - np.abs(px - xi)) * (1 - np.abs(py - yi))
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            out += (wgt * ok)[..., None] * vals
    return out


def test_wanet_field_equals_official_seeded_draw():
    torch.manual_seed(1234)
    ins = torch.rand(1, 2, 4, 4) * 2 - 1  # official train.py
    ins = ins / torch.mean(torch.abs(ins))
    t = WaNet(WaNetParams(seed=1234))
    torch.testing.assert_close(t.field, ins, rtol=0, atol=0)
    assert torch.equal(wanet_control_field(4, torch.Generator().manual_seed(1234)), ins)


@pytest.mark.parametrize("h,w", [(32, 32), (40, 56)])
def test_wanet_matches_numpy_reference(h, w):
    k, s = 4, 0.5
    field = wanet_control_field(k, torch.Generator().manual_seed(0)).double()
    x = _imgs(2, h=h, w=w)
    out = wanet(x, field, s=s)
    f = field[0].numpy()
    nx, ny = _np_bicubic_align_corners(f[0], h, w), _np_bicubic_align_corners(f[1], h, w)
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    gx, gy = np.clip(xx + s * nx / w, -1, 1), np.clip(yy + s * ny / h, -1, 1)
    for i in range(2):
        np.testing.assert_allclose(_np(out[i]), np.clip(_np_grid_sample(_np(x[i]), gx, gy), 0, 1), atol=1e-10)
    if h == w:  # the official square construction, literally
        ins_up = F.interpolate(field, size=h, mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        a = torch.linspace(-1, 1, steps=h, dtype=torch.float64)
        gx_, gy_ = torch.meshgrid(a, a, indexing="ij")
        grid = torch.clamp(torch.stack((gy_, gx_), 2)[None] + s * ins_up / h, -1, 1)
        torch.testing.assert_close(out, F.grid_sample(x, grid.expand(2, -1, -1, -1), align_corners=True))


def test_wanet_cached_grids_follow_strength_size_and_field():
    t = WaNet(WaNetParams(seed=1, grid_rescale=1.1))
    x = _imgs(3, h=32, w=40)
    for s in (1.0, 0.5, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)):
        ref = wanet(x, t.field.double(), s=0.5, grid_rescale=1.1, strength=s)
        assert torch.equal(t.inject_trigger(x, strength=s), ref)
    assert torch.equal(t.inject_trigger(x, strength=0.0), x)
    y = _imgs(2, h=24, w=24)
    assert torch.equal(t.inject_trigger(y), wanet(y, t.field.double(), s=0.5, grid_rescale=1.1))
    other = WaNet(WaNetParams(seed=2, grid_rescale=1.1))
    t.load_state_dict(other.state_dict())
    assert torch.equal(t.inject_trigger(x), other.inject_trigger(x))


def test_wanet_noise_mode_is_seeded_and_differs():
    t = WaNet(WaNetParams(seed=0, mode="noise"))
    x = _imgs(2, h=32, w=32).float()
    a = t.inject_trigger(x, generator=torch.Generator().manual_seed(5))
    b = t.inject_trigger(x, generator=torch.Generator().manual_seed(5))
    c = t.inject_trigger(x, generator=torch.Generator().manual_seed(6))
    warp = WaNet(WaNetParams(seed=0)).inject_trigger(x)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, warp)


# ---------------------------------------------------------------- FIBA
def _np_fiba(img: np.ndarray, trg: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """HazardFY/FIBA ``Fourier_pattern`` for one C×H×W image (numpy in place of cupy), 0–255."""
    fft_trg = np.fft.fft2(trg, axes=(-2, -1))
    amp_trg_shift = np.fft.fftshift(np.abs(fft_trg), axes=(-2, -1))
    fft_src = np.fft.fft2(img, axes=(-2, -1))
    amp_src, pha_src = np.abs(fft_src), np.angle(fft_src)
    amp_src_shift = np.fft.fftshift(amp_src, axes=(-2, -1))
    _c, h, w = img.shape
    b = int(np.floor(np.amin((h, w)) * beta))
    c_h, c_w = int(np.floor(h / 2.0)), int(np.floor(w / 2.0))
    h1, h2, w1, w2 = c_h - b, c_h + b + 1, c_w - b, c_w + b + 1
    amp_src_shift[:, h1:h2, w1:w2] = (
        amp_src_shift[:, h1:h2, w1:w2] * (1 - alpha) + amp_trg_shift[:, h1:h2, w1:w2] * alpha
    )
    amp_src = np.fft.ifftshift(amp_src_shift, axes=(-2, -1))
    return np.clip(np.real(np.fft.ifft2(amp_src * np.exp(1j * pha_src), axes=(-2, -1))), 0, 255)


@pytest.mark.parametrize("h,w", [(64, 64), (48, 70)])
def test_fiba_matches_official_numpy(h, w):
    x = _imgs(2, h=h, w=w)
    trg = _imgs(1, h=h, w=w, seed=9)
    out = fiba(x, trg, alpha=0.15, beta=0.1)
    for i in range(2):
        ref = _np_fiba(x[i].numpy() * 255, trg[0].numpy() * 255, 0.15, 0.1) / 255
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-10)


def test_fiba_matches_official_on_odd_sizes_and_wide_windows():
    """The half-spectrum window (a frequency and its negative sharing rows, 0 and H/2 their own
    partners) covers the official square for every size parity and β up to 0.5 (the whole spectrum)."""
    for h, w in [(1, 1), (2, 5), (9, 8), (17, 12), (33, 31)]:
        for beta in (0.0, 0.25, 0.45, 0.5):
            x = _imgs(2, h=h, w=w, seed=h * 100 + w)
            trg = _imgs(1, h=h, w=w, seed=7)
            out = fiba(x, trg, alpha=0.3, beta=beta)
            for i in range(2):
                ref = _np_fiba(x[i].numpy() * 255, trg[0].numpy() * 255, 0.3, beta) / 255
                np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-12, err_msg=f"{h}×{w}, β {beta}")


def _high_contrast_224() -> torch.Tensor:
    """A 16-px black/white checkerboard at 224² with a faint (1e-5) seeded texture, float32: many window
    coefficients are tiny but not zero, so their phase survives float64 arithmetic and not float32."""
    yy, xx = np.mgrid[:224, :224]
    board = ((yy // 16 + xx // 16) % 2).astype(np.float32)
    texture = np.random.default_rng(0).random((3, 224, 224)).astype(np.float32) * np.float32(1e-5)
    return torch.from_numpy(np.clip(board[None] + texture, 0, 1).astype(np.float32))[None]


def test_fiba_float32_keeps_float64_precision_on_high_contrast_224():
    pytest.importorskip("skimage")
    t = FIBA(FIBAParams())
    x = _high_contrast_224()
    out = t.inject_trigger(x)
    assert out.dtype == torch.float32
    trg = t.trigger_for(x)[0].double().numpy() * 255
    ref = _np_fiba(x[0].double().numpy() * 255, trg, 0.15, 0.1) / 255
    np.testing.assert_allclose(out[0].double().numpy(), ref, atol=1e-6)  # float32 output rounding
    out64 = fiba(x.double(), t.trigger_for(x).double())
    np.testing.assert_allclose(out64[0].numpy(), ref, atol=1e-9)
    # what a float32 spectrum gives on this image (the old rfft2 path): the phases are lost
    spec = torch.fft.rfft2(x)
    r, c = torch.cat([torch.arange(0, 23), torch.arange(224 - 22, 224)]), slice(0, 23)
    z, amp_t = spec[..., r, c], torch.fft.rfft2(t.trigger_for(x))[..., r, c].abs()
    spec[..., r, c] = torch.polar(z.abs() + 0.15 * (amp_t - z.abs()), z.angle())
    naive = torch.fft.irfft2(spec, s=(224, 224)).clamp(0, 1)
    assert np.abs(naive[0].double().numpy() - ref).max() > 5 / 255  # 7.0/255 here


def test_fiba_class_embedded_pattern_and_strength():
    pytest.importorskip("skimage")
    t = FIBA(FIBAParams())
    assert t.pattern.dtype == torch.uint8
    x = _imgs(2, h=64, w=64).float()
    assert torch.equal(t.inject_trigger(x, strength=0.0), x)
    out = t.inject_trigger(x, strength=torch.tensor([1.0, 0.5]))
    trg = t.trigger_for(x)
    torch.testing.assert_close(out[1:], fiba(x[1:], trg, alpha=0.075))
    assert (out - x).abs().max() > 1e-3


# ---------------------------------------------------------------- pseudo triggers (cross samples)
def test_wanet_pseudo_poison_is_the_official_cross_warp():
    """Official WaNet cross samples: ``clamp(clamp(id + s·noise/H) + U(−1,1)/H)`` (numpy reference)."""
    h, w, s = 32, 40, 0.5
    t = WaNet(WaNetParams(seed=3, s=s))
    x = _imgs(2, h=h, w=w)
    out = t.pseudo_poison(x, torch.Generator().manual_seed(11))
    ins = (torch.rand(2, h, w, 2, generator=torch.Generator().manual_seed(11)) * 2 - 1).double().numpy()
    f = t.field[0].double().numpy()
    nx, ny = _np_bicubic_align_corners(f[0], h, w), _np_bicubic_align_corners(f[1], h, w)
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    gx, gy = np.clip(xx + s * nx / w, -1, 1), np.clip(yy + s * ny / h, -1, 1)
    for i in range(2):
        cx, cy = np.clip(gx + ins[i, ..., 0] / w, -1, 1), np.clip(gy + ins[i, ..., 1] / h, -1, 1)
        np.testing.assert_allclose(_np(out[i]), np.clip(_np_grid_sample(_np(x[i]), cx, cy), 0, 1), atol=1e-10)
    # a fresh draw per call, the backdoor warp itself is not a cross sample
    assert not torch.equal(out, t.pseudo_poison(x, torch.Generator().manual_seed(12)))
    assert (out - t.inject_trigger(x)).abs().max() > 1e-3
    assert torch.equal(t.pseudo_poison(x, strength=0.0), x)


def test_fiba_pseudo_poison_blends_another_image_per_sample():
    pytest.importorskip("skimage")
    t = FIBA(FIBAParams())
    assert "embedded:coffee" not in t.pseudo_pattern_specs() and len(t.pseudo_pattern_specs()) == 6
    x = _imgs(6, h=48, w=64)
    out = t.pseudo_poison(x, torch.Generator().manual_seed(4))
    pool = t.pseudo_triggers_for(x)
    assert pool.shape == (6, 3, 48, 64)
    used = []
    for i in range(6):  # each output is the official Fourier_pattern with one of the pseudo images
        refs = [_np_fiba(x[i].numpy() * 255, pool[j].numpy() * 255, 0.15, 0.1) / 255 for j in range(6)]
        hits = [j for j, r in enumerate(refs) if np.allclose(out[i].numpy(), r, atol=1e-10)]
        assert len(hits) == 1, hits
        used.append(hits[0])
    assert len(set(used)) > 1  # drawn per sample
    trg = _np_fiba(x[0].numpy() * 255, t.trigger_for(x)[0].numpy() * 255, 0.15, 0.1) / 255
    assert not np.allclose(out[0].numpy(), trg, atol=1e-6)
    assert torch.equal(t.pseudo_poison(x, torch.Generator().manual_seed(4)), out)


def test_fiba_pseudo_patterns_param():
    pytest.importorskip("skimage")
    with pytest.raises(ValueError, match="trigger pattern itself"):
        FIBAParams(pattern="embedded:rocket", pseudo_patterns=("embedded:china", "embedded:rocket"))
    t = FIBA(FIBAParams(pseudo_patterns=("embedded:china",)))
    x = _imgs(3, h=32, w=32)
    torch.testing.assert_close(t.pseudo_poison(x), fiba(x, t.pseudo_triggers_for(x)))
