"""SF-I-Net (AS-FIBA §III-B): selective frequency-injection network G_φ(I; I_t) and residual decoder D_η.

Structure (paper Fig. 2 + SFNet):

* a **two-branch, shared-weight encoder** (3×3 conv, then per scale ``num_res`` SFNet ResBlocks, the last
  one with MDSF; stride-2 convs between scales) runs on the benign LQ face ``I`` and the trigger image ``I_t``;
* at every MDSF decoupler the benign branch's low and high bands are fused with the trigger's (Eq. 2):
  ``x^f = x^t ⊗ SE_ψ(x^b) + x^b`` (one SE per band per decoupler), and the fused bands go to the
  benign branch's modulator while the trigger branch's modulator keeps its own bands;
* an SFNet-style U-Net **decoder** (transposed convs, skip concatenation + 1×1 conv, ResBlocks with MDSF)
  on the benign branch only, predicting a residual ``r``;
* the ε bound (Eq. 3's constraint) is enforced by construction: ``I_p = clip(I + ε·tanh(r), 0, 1)``
  (ℓ∞ ≤ ε, so PSNR(I_p, I) ≥ 20·log10(1/ε)).

SFNet's multi-input (SCM/FAM) and multi-output heads are dropped: SF-I-Net outputs one image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_asfiba.sfnet import BasicConv, DynamicFilter, ResBlock


class SE(nn.Module):
    """Squeeze-and-excitation activations ``S_ψ(x)``: GAP → FC(C→C/r) → ReLU → FC → sigmoid, ``B×C×1×1``."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


def se_fuse(x_t: Tensor, x_b: Tensor, se: SE) -> Tensor:
    """Eq. 2: ``x^f = x^t ⊗ S_ψ(x^b) + x^b`` (channel-wise product)."""
    return x_t * se(x_b) + x_b


class FusedDynamicFilter(nn.Module):
    """An MDSF branch run on a (benign, trigger) pair with SE fusion of both bands (Eq. 2)."""

    def __init__(self, channels: int, kernel_size: int, group: int = 8) -> None:
        super().__init__()
        self.dyn = DynamicFilter(channels, kernel_size, group)
        self.se_low = SE(channels)
        self.se_high = SE(channels)

    def forward(self, xb: Tensor, xt: Tensor) -> tuple[Tensor, Tensor]:
        # the two branches share the decoupler: one call on the stacked pair keeps BN statistics joint
        n = xb.shape[0]
        low, high = self.dyn.decouple(torch.cat([xb, xt], 0))
        lb, lt = low[:n], low[n:]
        hb, ht = high[:n], high[n:]
        lf = se_fuse(lt, lb, self.se_low)
        hf = se_fuse(ht, hb, self.se_high)
        return self.dyn.modulate(lf, hf), self.dyn.modulate(lt, ht)


class FusedResBlock(nn.Module):
    """SFNet ResBlock (with MDSF) on a (benign, trigger) pair; weights shared between the branches."""

    def __init__(self, channels: int, group: int = 8) -> None:
        super().__init__()
        self.block = ResBlock(channels, filter=False)  # conv1, conv2, MCSF (shared)
        self.dyna = FusedDynamicFilter(channels // 2, 3, group)
        self.dyna_2 = FusedDynamicFilter(channels // 2, 5, group)

    def forward(self, xb: Tensor, xt: Tensor) -> tuple[Tensor, Tensor]:
        n = xb.shape[0]
        out = self.block.conv1(torch.cat([xb, xt], 0))
        k3, k5 = out.chunk(2, dim=1)
        b3, t3 = self.dyna(k3[:n], k3[n:])
        b5, t5 = self.dyna_2(k5[:n], k5[n:])
        out = torch.cat([torch.cat([b3, b5], 1), torch.cat([t3, t5], 1)], 0)
        out = self.block.conv2(self.block.mcsf(out)) + torch.cat([xb, xt], 0)
        return out[:n], out[n:]


class FusedStage(nn.Module):
    """``num_res − 1`` plain ResBlocks (run on both branches at once) then one fused MDSF ResBlock."""

    def __init__(self, channels: int, num_res: int) -> None:
        super().__init__()
        self.plain = nn.Sequential(*[ResBlock(channels) for _ in range(num_res - 1)])
        self.last = FusedResBlock(channels)

    def forward(self, xb: Tensor, xt: Tensor) -> tuple[Tensor, Tensor]:
        n = xb.shape[0]
        y = self.plain(torch.cat([xb, xt], 0))
        return self.last(y[:n], y[n:])


def _stage(channels: int, num_res: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(channels, filter=(i == num_res - 1)) for i in range(num_res)])


class SFINet(nn.Module):
    """G_φ(I; I_t): benign ``I`` (``B×3×H×W`` in [0,1], H, W divisible by 8) and trigger ``I_t``
    (``B×3×H×W``, or ``1×3×H×W`` shared by all images) → poisoned ``I_p`` (``B×3×H×W`` in [0,1],
    ``‖I_p − I‖∞ ≤ ε``).

    The trigger branch never reads the benign branch (the fusion only feeds the benign modulator), and in
    eval mode every layer acts per sample, so one shared trigger is run once and broadcast in the fusion
    instead of B times. In train mode pass B triggers: the decouplers' BN statistics span both branches."""

    def __init__(self, base: int = 32, num_res: int = 4, epsilon: float = 4 / 255, in_ch: int = 3) -> None:
        super().__init__()
        if base % 16:
            raise ValueError(f"SFINet: base channels must be a multiple of 16 (MDSF groups of 8), got {base}")
        c1, c2, c3 = base, base * 2, base * 4
        self.epsilon = epsilon
        self.head = BasicConv(in_ch, c1, 3)
        self.enc1 = FusedStage(c1, num_res)
        self.down1 = BasicConv(c1, c2, 3, stride=2)
        self.enc2 = FusedStage(c2, num_res)
        self.down2 = BasicConv(c2, c3, 3, stride=2)
        self.enc3 = FusedStage(c3, num_res)
        self.dec3 = _stage(c3, num_res)
        self.up2 = BasicConv(c3, c2, 4, stride=2, transpose=True)
        self.merge2 = BasicConv(c2 * 2, c2, 1)
        self.dec2 = _stage(c2, num_res)
        self.up1 = BasicConv(c2, c1, 4, stride=2, transpose=True)
        self.merge1 = BasicConv(c1 * 2, c1, 1)
        self.dec1 = _stage(c1, num_res)
        self.tail = BasicConv(c1, in_ch, 3, act=False)

    def residual(self, image: Tensor, trigger: Tensor) -> Tensor:
        """Unbounded residual ``r`` (``B×3×H×W``)."""
        n = image.shape[0]
        f = self.head(torch.cat([image, trigger], 0))
        b1, t1 = self.enc1(f[:n], f[n:])
        f2 = self.down1(torch.cat([b1, t1], 0))
        b2, t2 = self.enc2(f2[:n], f2[n:])
        f3 = self.down2(torch.cat([b2, t2], 0))
        b3, _ = self.enc3(f3[:n], f3[n:])
        d3 = self.dec3(b3)
        d2 = self.dec2(self.merge2(torch.cat([self.up2(d3), b2], 1)))
        d1 = self.dec1(self.merge1(torch.cat([self.up1(d2), b1], 1)))
        return self.tail(d1)

    def forward(self, image: Tensor, trigger: Tensor) -> Tensor:
        return (image + self.epsilon * torch.tanh(self.residual(image, trigger))).clamp(0.0, 1.0)


class ResidualDecoder(nn.Module):
    """D_η: recovers the trigger image from the residual ``I − I_p`` (``B×3×H×W``) → ``B×3×H×W`` in [0,1].

    The residual is divided by ε first so the decoder sees an O(1) signal.
    """

    def __init__(self, base: int = 32, depth: int = 4, epsilon: float = 4 / 255, in_ch: int = 3) -> None:
        super().__init__()
        self.epsilon = epsilon
        layers: list[nn.Module] = [BasicConv(in_ch, base, 3)]
        layers += [ResBlock(base) for _ in range(depth)]
        layers += [BasicConv(base, in_ch, 3, act=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, residual: Tensor) -> Tensor:
        return torch.sigmoid(self.net(residual / self.epsilon))


#: presets: name -> (base, num_res, decoder base, decoder depth)
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "paper": (32, 4, 32, 4),  # ≈1/4 of SFNet's 13.3 M parameters (see README for the count)
    "small": (16, 1, 16, 2),  # CPU preset
}


def build_sfinet(preset: str, epsilon: float) -> tuple[SFINet, ResidualDecoder]:
    if preset not in PRESETS:
        raise ValueError(f"unknown SF-I-Net preset {preset!r}; choose from {', '.join(PRESETS)}")
    base, num_res, dbase, depth = PRESETS[preset]
    return SFINet(base, num_res, epsilon), ResidualDecoder(dbase, depth, epsilon)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
