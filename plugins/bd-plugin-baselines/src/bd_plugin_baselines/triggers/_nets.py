"""Small fully-convolutional U-Nets shared by the learnable triggers (any H, W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class SmallUNet(nn.Module):
    """U-Net with ``depth`` AvgPool downsamplings and bilinear upsampling (LIRA's CIFAR UNet, slimmed).

    ``B×cin×H×W`` → ``B×cout×H×W`` (H, W need not be multiples of 2^depth: sizes are matched).
    """

    def __init__(self, cin: int, cout: int, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(cin, chans[0])] + [_block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([_block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for i, blk in enumerate(self.down):
            if i > 0:
                skips.append(h)
                h = F.avg_pool2d(h, 2, ceil_mode=True)
            h = blk(h)
        for blk in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = blk(torch.cat([h, skip], 1))
        return self.head(h)
