"""SFNet building blocks (Cui et al., ICLR 2023; c-yn/SFNet ``models/layers.py``), re-implemented.

Code-exact semantics (see ``shared/reference/methods.md`` §3.2):

* :class:`Decoupler` — the "dynamic low-pass filter" half of MDSF: GAP → 1×1 conv (no bias) →
  BN → softmax over the k² taps, one k×k kernel per channel group per image, applied with
  reflection padding; ``high = x − low``.
* :class:`SFConv` — the SK-style modulator: ``GAP(low + high)`` → 1×1 conv to d = max(C/2, 32) →
  two 1×1 convs (high, low logits) → ``softmax`` over the **concatenated 2C channels** (dim 1,
  exactly as the reference code; methods.md paraphrases it as a per-channel 2-way softmax) →
  ``conv1×1(high·a_h + low·a_l)``.
* :class:`DynamicFilter` = Decoupler + SFConv (the reference ``dynamic_filter``).
* :class:`Gap` / :class:`PatchAP` — MCSF's global and 2×2-window frequency splits.
* :class:`ResBlock` — conv3×3+GELU → [MDSF k=3 | k=5 on the two halves] → [Gap | PatchAP] → conv3×3 → +x.

All tensors are ``B×C×H×W`` float feature maps. einops is not needed: the 2×2 window rearrangement
is two reshapes/permutes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BasicConv(nn.Sequential):
    """``conv k×k`` (padding k//2, bias) optionally followed by GELU (SFNet's ``BasicConv``)."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int, stride: int = 1, act: bool = True, transpose: bool = False
    ) -> None:
        if transpose:
            conv: nn.Module = nn.ConvTranspose2d(
                cin, cout, kernel_size, stride=stride, padding=kernel_size // 2 - 1, bias=True
            )
        else:
            conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, bias=True)
        super().__init__(conv, nn.GELU()) if act else super().__init__(conv)


class Decoupler(nn.Module):
    """Dynamic low-pass decoupler: ``x`` (B×C×H×W) → ``(low, high)`` with ``low + high = x``.

    ``C`` must be divisible by ``group``. The predicted kernels are softmax-normalised (sum 1,
    non-negative) so ``low`` is a per-image, per-group low-pass of ``x``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, group: int = 8) -> None:
        super().__init__()
        if channels % group:
            raise ValueError(f"Decoupler: channels ({channels}) must be divisible by group ({group})")
        self.k = kernel_size
        self.group = group
        self.conv = nn.Conv2d(channels, group * kernel_size**2, 1, bias=False)
        self.bn = nn.BatchNorm2d(group * kernel_size**2)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def kernels(self, x: Tensor) -> Tensor:
        """Per-image normalised kernels, ``B×group×k²``."""
        f = self.bn(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return f.view(x.shape[0], self.group, self.k**2).softmax(dim=-1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, c, h, w = x.shape
        k, g = self.k, self.group
        kern = self.kernels(x)  # n×g×k²
        # The reference unfolds k² shifted copies and sums them weighted by the kernel; the same sum is a
        # depthwise convolution with one k×k kernel per (image, channel) (shared within a group): the
        # images are folded into the channel axis (groups = n·c). ≈ 7× faster on CPU, no k² copy.
        weight = kern.view(n, g, 1, k * k).expand(n, g, c // g, k * k).reshape(n * c, 1, k, k)
        padded = F.pad(x, [k // 2] * 4, mode="reflect").reshape(1, n * c, h + 2 * (k // 2), w + 2 * (k // 2))
        low = F.conv2d(padded, weight.to(x.dtype), groups=n * c).view(n, c, h, w)
        return low, x - low


class SFConv(nn.Module):
    """SK-style selective modulator ``(low, high) → B×C×H×W`` (SFNet's ``SFconv``, M = 2, r = 2, L = 32)."""

    def __init__(self, channels: int, r: int = 2, min_dim: int = 32) -> None:
        super().__init__()
        d = max(int(channels / r), min_dim)
        self.fc = nn.Conv2d(channels, d, 1)
        self.fc_high = nn.Conv2d(d, channels, 1)
        self.fc_low = nn.Conv2d(d, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def attention(self, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        z = self.fc(F.adaptive_avg_pool2d(low + high, 1))
        att = torch.cat([self.fc_high(z), self.fc_low(z)], dim=1).softmax(dim=1)
        a_h, a_l = att.chunk(2, dim=1)
        return a_h, a_l

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        a_h, a_l = self.attention(low, high)
        return self.out(high * a_h + low * a_l)


class DynamicFilter(nn.Module):
    """MDSF branch = :class:`Decoupler` then :class:`SFConv` (SFNet's ``dynamic_filter``)."""

    def __init__(self, channels: int, kernel_size: int = 3, group: int = 8) -> None:
        super().__init__()
        self.decouple = Decoupler(channels, kernel_size, group)
        self.modulate = SFConv(channels)

    def forward(self, x: Tensor) -> Tensor:
        low, high = self.decouple(x)
        return self.modulate(low, high)


class Gap(nn.Module):
    """MCSF global split: ``GAP(x)·fd + (x − GAP(x))·(fh + 1)``; fd, fh per channel, init 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fscale_d = nn.Parameter(torch.zeros(channels))
        self.fscale_h = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x_d = x.mean(dim=(2, 3), keepdim=True)
        return x_d * self.fscale_d.view(1, -1, 1, 1) + (x - x_d) * (self.fscale_h.view(1, -1, 1, 1) + 1.0)


class PatchAP(nn.Module):
    """MCSF local split on a p×p grid of windows: ``(x − mean_w)·h + mean_w·l`` per (channel, window).

    Parameters are indexed ``c·p² + i·p + j`` for window row i, column j (the reference's
    ``(c p1 p2)`` order) and initialised to 0. H and W must be divisible by p.
    """

    def __init__(self, channels: int, patch_size: int = 2) -> None:
        super().__init__()
        self.p = patch_size
        self.h = nn.Parameter(torch.zeros(channels * patch_size**2))
        self.l = nn.Parameter(torch.zeros(channels * patch_size**2))

    def forward(self, x: Tensor) -> Tensor:
        n, c, hh, ww = x.shape
        p = self.p
        if hh % p or ww % p:
            raise ValueError(f"PatchAP: spatial size {hh}×{ww} must be divisible by {p}")
        t = x.view(n, c, p, hh // p, p, ww // p).permute(0, 1, 2, 4, 3, 5).reshape(n, c * p * p, hh // p, ww // p)
        low = t.mean(dim=(2, 3), keepdim=True)
        out = (t - low) * self.h.view(1, -1, 1, 1) + low * self.l.view(1, -1, 1, 1)
        return out.view(n, c, p, p, hh // p, ww // p).permute(0, 1, 2, 4, 3, 5).reshape(n, c, hh, ww)


class ResBlock(nn.Module):
    """SFNet ResBlock on ``C`` channels (``filter=True``: with MDSF; C/2 must be divisible by 8)."""

    def __init__(self, channels: int, filter: bool = False, group: int = 8) -> None:  # noqa: A002
        super().__init__()
        self.conv1 = BasicConv(channels, channels, 3, act=True)
        self.conv2 = BasicConv(channels, channels, 3, act=False)
        self.filter = filter
        if filter:
            self.dyna = DynamicFilter(channels // 2, 3, group)
            self.dyna_2 = DynamicFilter(channels // 2, 5, group)
        self.global_ap = Gap(channels // 2)
        self.localap = PatchAP(channels // 2, 2)

    def mcsf(self, out: Tensor) -> Tensor:
        non_local, local = out.chunk(2, dim=1)
        return torch.cat([self.global_ap(non_local), self.localap(local)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        if self.filter:
            k3, k5 = out.chunk(2, dim=1)
            out = torch.cat([self.dyna(k3), self.dyna_2(k5)], dim=1)
        return self.conv2(self.mcsf(out)) + x
