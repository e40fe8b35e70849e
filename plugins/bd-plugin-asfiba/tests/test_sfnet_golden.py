"""Golden tests: SFNet modules against an independent numpy transcription of their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bd_plugin_asfiba.sfinet import SE, FusedResBlock, se_fuse
from bd_plugin_asfiba.sfnet import Decoupler, DynamicFilter, Gap, PatchAP, ResBlock, SFConv
from scipy.special import erf


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Random values for every parameter and BN statistic (zeros at init would hide bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    module.eval()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def softmax(a: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Stride-1 'same' convolution (cross-correlation, zero padding) written as a sum over taps."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    h, wd = x.shape[-2:]
    out = np.zeros((x.shape[0], w.shape[0], h, wd))
    for u in range(k):
        for v in range(k):
            out += np.einsum("oc,nchw->nohw", w[:, :, u, v], xp[:, :, u : u + h, v : v + wd])
    return out + (0 if b is None else b[None, :, None, None])


def decoupler_np(x: np.ndarray, m: Decoupler) -> tuple[np.ndarray, np.ndarray]:
    n, c, h, w = x.shape
    k, g = m.k, m.group
    f = x.mean(axis=(2, 3)) @ _np(m.conv.weight)[:, :, 0, 0].T
    bn = m.bn
    f = (f - _np(bn.running_mean)) / np.sqrt(_np(bn.running_var) + bn.eps) * _np(bn.weight) + _np(bn.bias)
    kern = softmax(f.reshape(n, g, k * k), axis=-1)
    xp = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)), mode="reflect")
    low = np.zeros_like(x)
    for ch in range(c):
        grp = ch // (c // g)
        for u in range(k):
            for v in range(k):
                low[:, ch] += kern[:, grp, u * k + v, None, None] * xp[:, ch, u : u + h, v : v + w]
    return low, x - low


def sfconv_np(low: np.ndarray, high: np.ndarray, m: SFConv) -> np.ndarray:
    s = (low + high).mean(axis=(2, 3))
    z = s @ _np(m.fc.weight)[:, :, 0, 0].T + _np(m.fc.bias)
    a_h = z @ _np(m.fc_high.weight)[:, :, 0, 0].T + _np(m.fc_high.bias)
    a_l = z @ _np(m.fc_low.weight)[:, :, 0, 0].T + _np(m.fc_low.bias)
    att = softmax(np.concatenate([a_h, a_l], axis=1), axis=1)  # the reference normalises over all 2C logits
    c = low.shape[1]
    mixed = high * att[:, :c, None, None] + low * att[:, c:, None, None]
    return conv2d(mixed, _np(m.out.weight), _np(m.out.bias))


def gap_np(x: np.ndarray, m: Gap) -> np.ndarray:
    d = x.mean(axis=(2, 3), keepdims=True)
    return d * _np(m.fscale_d)[None, :, None, None] + (x - d) * (_np(m.fscale_h)[None, :, None, None] + 1)


def patch_ap_np(x: np.ndarray, m: PatchAP) -> np.ndarray:
    _n, c, h, w = x.shape
    p = m.p
    hh, ww = h // p, w // p
    out = np.zeros_like(x)
    hs, ls = _np(m.h), _np(m.l)
    for ch in range(c):
        for i in range(p):
            for j in range(p):
                win = x[:, ch, i * hh : (i + 1) * hh, j * ww : (j + 1) * ww]
                mean = win.mean(axis=(1, 2), keepdims=True)
                idx = ch * p * p + i * p + j
                out[:, ch, i * hh : (i + 1) * hh, j * ww : (j + 1) * ww] = (win - mean) * hs[idx] + mean * ls[idx]
    return out


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def resblock_np(x: np.ndarray, m: ResBlock) -> np.ndarray:
    out = gelu(conv2d(x, _np(m.conv1[0].weight), _np(m.conv1[0].bias)))
    half = out.shape[1] // 2
    if m.filter:
        outs = []
        for part, dyn in ((out[:, :half], m.dyna), (out[:, half:], m.dyna_2)):
            lo, hi = decoupler_np(part, dyn.decouple)
            outs.append(sfconv_np(lo, hi, dyn.modulate))
        out = np.concatenate(outs, axis=1)
    out = np.concatenate([gap_np(out[:, :half], m.global_ap), patch_ap_np(out[:, half:], m.localap)], axis=1)
    return conv2d(out, _np(m.conv2[0].weight), _np(m.conv2[0].bias)) + x


@pytest.fixture
def feats() -> torch.Tensor:
    return torch.randn(2, 16, 12, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("k", [3, 5])
def test_decoupler(feats: torch.Tensor, k: int) -> None:
    m = Decoupler(16, k, 8).double()
    _randomize(m)
    low, high = m(feats)
    lo, hi = decoupler_np(_np(feats), m)
    np.testing.assert_allclose(_np(low), lo, atol=1e-10)
    np.testing.assert_allclose(_np(high), hi, atol=1e-10)
    # a softmax-normalised kernel is a low-pass filter: a constant map passes unchanged
    const = torch.full((1, 16, 6, 6), 0.7, dtype=torch.float64)
    torch.testing.assert_close(m(const)[0], const)


def test_sfconv_and_dynamic_filter(feats: torch.Tensor) -> None:
    m = DynamicFilter(16, 3).double()
    _randomize(m)
    lo, hi = decoupler_np(_np(feats), m.decouple)
    np.testing.assert_allclose(_np(m(feats)), sfconv_np(lo, hi, m.modulate), atol=1e-10)
    assert m.modulate.fc.out_channels == 32  # d = max(C/2, 32)


def test_mcsf_parts(feats: torch.Tensor) -> None:
    g, p = Gap(16).double(), PatchAP(16, 2).double()
    _randomize(g)
    _randomize(p)
    np.testing.assert_allclose(_np(g(feats)), gap_np(_np(feats), g), atol=1e-12)
    np.testing.assert_allclose(_np(p(feats)), patch_ap_np(_np(feats), p), atol=1e-12)
    # at init (all zeros) Gap removes the per-channel mean and PatchAP outputs zero
    torch.testing.assert_close(Gap(16).double()(feats), feats - feats.mean((2, 3), keepdim=True))
    assert float(PatchAP(16).double()(feats).abs().max()) == 0.0


@pytest.mark.parametrize("filt", [False, True])
def test_resblock(feats: torch.Tensor, filt: bool) -> None:
    m = ResBlock(16, filter=filt).double()
    _randomize(m, seed=3)
    np.testing.assert_allclose(_np(m(feats)), resblock_np(_np(feats), m), atol=1e-9)


def test_se_fusion_eq2() -> None:
    gen = torch.Generator().manual_seed(2)
    xb, xt = torch.randn(2, 8, 5, 5, generator=gen), torch.randn(2, 8, 5, 5, generator=gen)
    se = SE(8)
    _randomize(se)
    s = xb.mean((2, 3))
    hid = np.maximum(_np(s) @ _np(se.fc1.weight)[:, :, 0, 0].T + _np(se.fc1.bias), 0)
    act = 1 / (1 + np.exp(-(hid @ _np(se.fc2.weight)[:, :, 0, 0].T + _np(se.fc2.bias))))
    expect = _np(xt) * act[:, :, None, None] + _np(xb)
    np.testing.assert_allclose(_np(se_fuse(xt, xb, se)), expect, atol=1e-6)


def test_fused_block_equals_plain_block_when_trigger_is_zero_gated() -> None:
    """With the SE gates closed (fc2 bias → −∞) the benign branch is exactly a plain SFNet ResBlock."""
    m = FusedResBlock(16).double()
    _randomize(m, seed=5)
    with torch.no_grad():
        for fd in (m.dyna, m.dyna_2):
            for se in (fd.se_low, fd.se_high):
                se.fc2.weight.zero_()
                se.fc2.bias.fill_(-1e4)
    plain = ResBlock(16, filter=True).double().eval()
    plain.conv1, plain.conv2, plain.global_ap, plain.localap = (
        m.block.conv1,
        m.block.conv2,
        m.block.global_ap,
        m.block.localap,
    )
    plain.dyna, plain.dyna_2 = m.dyna.dyn, m.dyna_2.dyn
    gen = torch.Generator().manual_seed(9)
    xb, xt = (torch.randn(2, 16, 8, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    ob, ot = m(xb, xt)
    torch.testing.assert_close(ob, plain(xb))
    torch.testing.assert_close(ot, plain(xt))
