"""Photo→sketch victims: an FCN (Zhang et al., ICMR 2015 line) and a pix2pix cGAN.

Both map a photo ``B×C×H×W`` in [0, 1] to a sketch ``B×1×H×W`` in [0, 1] (sigmoid output).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from bdcore.components import VictimBase
from bdcore.context import Context
from torch import Tensor, nn

from bd_plugin_sketch.params import FCNParams, Pix2PixParams


class SketchFCN(VictimBase):
    """Fully convolutional photo→sketch net: stride-1 convs (no pooling, so any input size and
    pixel-aligned output), ReLU between layers, sigmoid on the 1-channel output."""

    task = "sketch"

    def __init__(self, params: FCNParams | None = None, ctx: Context | None = None) -> None:
        super().__init__()
        self.params = params = params or FCNParams()
        chans = (params.in_channels, *params.widths, 1)
        layers: list[nn.Module] = []
        for i, k in enumerate(params.kernels):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], k, padding=k // 2, padding_mode="replicate"))
            if i < len(params.kernels) - 1:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, photos: Tensor) -> Tensor:
        return torch.sigmoid(self.net(photos))

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = self(batch["input"])
        fn = F.l1_loss if self.params.loss == "l1" else F.mse_loss
        return {"loss": fn(out, batch["target"])}


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=True)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: ``depth`` 4×4 stride-2 conv levels down, transposed convs up, skips."""

    def __init__(self, in_channels: int, base: int, depth: int, max_channels: int, dropout: float) -> None:
        super().__init__()
        ch = [min(base * 2**i, max_channels) for i in range(depth)]
        self.down = nn.ModuleList()
        for i in range(depth):
            if i == 0:
                self.down.append(nn.Conv2d(in_channels, ch[0], 4, 2, 1))
            else:
                norm = _norm(ch[i]) if i < depth - 1 else nn.Identity()  # innermost: 1×1 maps possible
                self.down.append(nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(ch[i - 1], ch[i], 4, 2, 1), norm))
        self.up = nn.ModuleList()
        for i in range(depth):
            cin = ch[i] if i == depth - 1 else 2 * ch[i]
            if i == 0:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(cin, 1, 4, 2, 1)))
            else:
                drop = nn.Dropout(dropout) if dropout > 0 and i >= depth - 3 else nn.Identity()
                self.up.append(
                    nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(cin, ch[i - 1], 4, 2, 1), _norm(ch[i - 1]), drop)
                )

    def forward(self, x: Tensor) -> Tensor:
        feats = []
        h = x
        for d in self.down:
            h = d(h)
            feats.append(h)
        h = feats[-1]
        for i in range(len(self.up) - 1, -1, -1):
            h = self.up[i](h)
            if i > 0:
                h = torch.cat([h, feats[i - 1]], dim=1)
        return torch.sigmoid(h)


class PatchGAN(nn.Module):
    """pix2pix PatchGAN on the concatenated (photo, sketch) pair → ``B×1×h×w`` logits."""

    def __init__(self, in_channels: int, base: int, layers: int) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, 2, 1), nn.LeakyReLU(0.2)]
        prev = base
        for n in range(1, layers):
            nxt = min(base * 2**n, base * 8)
            mods += [nn.Conv2d(prev, nxt, 4, 2, 1), _norm(nxt), nn.LeakyReLU(0.2)]
            prev = nxt
        nxt = min(base * 2**layers, base * 8)
        mods += [nn.Conv2d(prev, nxt, 4, 1, 1), _norm(nxt), nn.LeakyReLU(0.2), nn.Conv2d(nxt, 1, 4, 1, 1)]
        self.net = nn.Sequential(*mods)

    def forward(self, photos: Tensor, sketches: Tensor) -> Tensor:
        return self.net(torch.cat([photos, sketches], dim=1))


class Pix2Pix(VictimBase):
    """Conditional GAN (pix2pix). ``clean_loss`` is the generator loss
    ``λ·L1 + BCE(D(x, G(x)), real)``; the discriminator is updated in :meth:`after_step`
    with its own Adam optimizer (saved with training checkpoints: ``train_state_attrs``)."""

    task = "sketch"
    train_state_attrs = ("_d_opt",)

    def __init__(self, params: Pix2PixParams | None = None, ctx: Context | None = None) -> None:
        super().__init__()
        self.params = params = params or Pix2PixParams()
        self.generator = UNetGenerator(
            params.in_channels, params.base, params.depth, params.max_channels, params.dropout
        )
        self.discriminator = PatchGAN(params.in_channels + 1, params.d_base, params.d_layers)
        self._d_opt: torch.optim.Optimizer | None = None
        self._last: tuple[Tensor, Tensor, Tensor] | None = None

    def forward(self, photos: Tensor) -> Tensor:
        side = 2**self.params.depth
        h, w = photos.shape[-2:]
        ph, pw = (-h) % side, (-w) % side
        if ph or pw:  # pad to a multiple of 2**depth, crop back
            out = self.generator(F.pad(photos, (0, pw, 0, ph), mode="replicate"))
            return out[..., :h, :w]
        return self.generator(photos)  # type: ignore[no-any-return]

    def trainable_parameters(self, phase: Literal["clean", "attack"]) -> list[nn.Parameter]:
        return [p for p in self.generator.parameters() if p.requires_grad]

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        x, y = batch["input"], batch["target"]
        fake = self(x)
        self.discriminator.requires_grad_(False)
        try:
            logits = self.discriminator(x, fake)
        finally:
            self.discriminator.requires_grad_(True)
        adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        l1 = F.l1_loss(fake, y)
        if self.training and torch.is_grad_enabled():
            # bdcore's loop hands after_step the batch *before* poisoning: remember the batch the
            # generator actually trained on (poisoned photos/targets included) for the D update.
            self._last = (x.detach(), y.detach(), fake.detach().float())
        return {"loss": self.params.lambda_l1 * l1 + adv, "l1": l1.detach(), "adv": adv.detach()}

    def discriminator_loss(self, photos: Tensor, real: Tensor, fake: Tensor) -> Tensor:
        """``½·[BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)]``."""
        lr = self.discriminator(photos, real)
        lf = self.discriminator(photos, fake.detach())
        return 0.5 * (
            F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr))
            + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
        )

    def after_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        if self._last is not None:
            x, y, fake = self._last
        else:
            x, y = batch["input"], batch["target"]
            with torch.no_grad():
                fake = self(x)
        self._last = None
        opt = self.discriminator_optimizer()
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = self.discriminator_loss(x, y, fake)
            loss.backward()
        opt.step()
        return {"d_loss": loss.detach()}

    def discriminator_optimizer(self) -> torch.optim.Optimizer:
        """The discriminator's Adam (``d_lr``, betas 0.5/0.999 as pix2pix), made on first use."""
        if self._d_opt is None:
            self._d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=self.params.d_lr, betas=(0.5, 0.999))
        return self._d_opt

    def load_train_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the discriminator's optimizer (made first when the checkpoint holds one)."""
        if state.get("_d_opt") is not None:
            self.discriminator_optimizer()
        super().load_train_state_dict(state)
