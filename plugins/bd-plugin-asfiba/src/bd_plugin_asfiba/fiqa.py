"""SDD-FIQA (Ou et al., CVPR 2021; Tencent/TFace ``quality``): IR-50 backbone + a linear quality head.

Module names follow TFace so its checkpoint (``SDD_FIQA_checkpoints_r50.pth``) loads after stripping
``module.``. Input: ``B×3×H×W`` RGB in [0,1] (aligned faces), resized to 112×112 and mapped to [-1,1].
"""

from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn


class BottleneckIR(nn.Module):
    def __init__(self, cin: int, depth: int, stride: int) -> None:
        super().__init__()
        if cin == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, depth, 3, 1, 1, bias=False),
            nn.BatchNorm2d(depth),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IR50Quality(nn.Module):
    """IR-50 (units 3/4/14/3 at 64/128/256/512) with the ``Qua`` head: Flatten → PReLU → Dropout → Linear(25088, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        blocks = []
        for cin, depth, n in ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)):
            blocks += [BottleneckIR(cin, depth, 2)] + [BottleneckIR(depth, depth, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*blocks)
        self.output_layer = nn.Sequential(
            nn.Flatten(), nn.PReLU(512 * 7 * 7), nn.Dropout(0.5), nn.Linear(512 * 7 * 7, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


def sdd_fiqa_score(model: IR50Quality, images: Tensor) -> Tensor:
    """``B×3×H×W`` in [0,1] → ``B`` quality scores (model in eval mode)."""
    model.eval()
    x = (
        images
        if images.shape[-2:] == (112, 112)
        else F.interpolate(images, size=(112, 112), mode="bilinear", align_corners=False, antialias=True)
    )
    return model((x.float() - 0.5) / 0.5).flatten()


def load_sdd_fiqa(path: Path, sha256: str | None = None) -> IR50Quality:
    from bdcore.io.checkpoint import extract_state_dict, load_weights

    model = IR50Quality()
    state = {k.removeprefix("module."): v for k, v in extract_state_dict(load_weights(path, sha256=sha256)).items()}
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown or any(k not in state for k in own if not k.endswith("num_batches_tracked")):
        raise ValueError(f"{path}: not an SDD-FIQA IR-50 checkpoint (e.g. unexpected {unknown[:1]})")
    own.update(state)
    model.load_state_dict(own)
    return model.eval()
