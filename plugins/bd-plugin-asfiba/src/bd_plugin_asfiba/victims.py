"""Face-restoration victims: a small residual U-Net, an RRDB (ESRGAN-style) restorer, and an adapter for
any installed restoration ``nn.Module``. All map ``B×C×H×W`` LQ in [0,1] to a same-size restored image."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_asfiba.params import RestorationModuleParams, RRDBRestorerParams, UNetRestorerParams
from bdcore.components import VictimBase
from bdcore.context import Context
from bdcore.errors import ComponentError
from bdcore.registry import import_object as registry_import


def _block(cin: int, cout: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [
            nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
    return nn.Sequential(*layers)


def _pad_to(x: Tensor, multiple: int) -> tuple[Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, [0, pw, 0, ph], mode="replicate")
    return x, h, w


class UNetRestorer(VictimBase):
    """Residual U-Net: ``out = x + U(x)``; any H×W (replicate-padded to a multiple of 2^depth)."""

    task: ClassVar[str] = "restoration"

    def __init__(self, params: UNetRestorerParams | None = None, ctx: Context | None = None) -> None:
        super().__init__()
        p = params or UNetRestorerParams()
        self.depth = p.depth
        chans = [p.base * 2**i for i in range(p.depth + 1)]
        self.inc = _block(p.channels, chans[0], p.blocks)
        self.downs = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
                _block(chans[i + 1], chans[i + 1], p.blocks),
            )
            for i in range(p.depth)
        )
        self.ups = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(p.depth))
        self.dec = nn.ModuleList(_block(chans[i] * 2, chans[i], p.blocks) for i in range(p.depth))
        self.out = nn.Conv2d(chans[0], p.channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        xp, h, w = _pad_to(x, 2**self.depth)
        skips = [self.inc(xp)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for i in reversed(range(self.depth)):
            y = self.dec[i](torch.cat([self.ups[i](y), skips.pop()], 1))
        return (xp + self.out(y))[..., :h, :w]


class ResidualDenseBlock(nn.Module):
    """ESRGAN's 5-conv residual dense block (growth ``gc``, residual scale 0.2)."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5))
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(self.act(y))
        return x + 0.2 * y


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.rdbs = nn.Sequential(*[ResidualDenseBlock(nf, gc) for _ in range(3)])

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.rdbs(x)


class RRDBRestorer(VictimBase):
    """RRDB-Net at scale 1 (ESRGAN body without the upsampler; BFR inputs are pre-resized):
    ``out = x + conv(body(conv(x)))``."""

    task: ClassVar[str] = "restoration"

    def __init__(self, params: RRDBRestorerParams | None = None, ctx: Context | None = None) -> None:
        super().__init__()
        p = params or RRDBRestorerParams()
        self.first = nn.Conv2d(p.channels, p.nf, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(p.nf, p.gc) for _ in range(p.nb)])
        self.trunk = nn.Conv2d(p.nf, p.nf, 3, padding=1)
        self.last = nn.Sequential(
            nn.Conv2d(p.nf, p.nf, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(p.nf, p.channels, 3, padding=1),
        )
        nn.init.zeros_(self.last[-1].weight)
        nn.init.zeros_(self.last[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        f = self.first(x)
        return x + self.last(f + self.trunk(self.body(f)))


class RestorationModuleError(ComponentError):
    """The wrapped restoration module could not be imported, built or loaded."""


def import_object(target: str) -> Any:
    """``"package.module:attr"`` → the attribute (raises :class:`RestorationModuleError`)."""
    try:
        return registry_import(target)
    except ImportError as exc:
        raise RestorationModuleError(f"restoration-module: cannot import {target!r} ({exc})") from exc


class RestorationModule(VictimBase):
    """Wraps any installed restoration network (GFP-GAN, CodeFormer, ...) given its import path and a
    local checkpoint (``weights_only=True``). Inputs/outputs stay in [0,1]; ``input_range="signed"``
    converts to and from [-1,1] around the wrapped module."""

    task: ClassVar[str] = "restoration"

    def __init__(self, params: RestorationModuleParams, ctx: Context | None = None) -> None:
        super().__init__()
        self.p = params
        cls = import_object(params.target)
        try:
            self.net = cls(**params.kwargs)
        except TypeError as exc:
            raise RestorationModuleError(
                f"restoration-module: {params.target}(**{params.kwargs}) failed: {exc}"
            ) from exc
        if not isinstance(self.net, nn.Module):
            raise RestorationModuleError(f"restoration-module: {params.target} did not build an nn.Module")
        if params.checkpoint is not None:
            from bdcore.io.checkpoint import extract_state_dict, load_weights

            path = (ctx or Context()).resolve_path(params.checkpoint)
            obj = load_weights(path, sha256=params.sha256)
            if params.key is not None:
                if not isinstance(obj, dict) or params.key not in obj:
                    raise RestorationModuleError(f"{path}: no key {params.key!r} in the checkpoint")
                obj = obj[params.key]
            state = extract_state_dict(obj)
            state = {k.removeprefix("module."): v for k, v in state.items()}
            try:
                self.net.load_state_dict(state, strict=params.strict)
            except RuntimeError as exc:
                raise RestorationModuleError(f"{path}: does not match {params.target}: {exc}") from exc

    def forward(self, x: Tensor) -> Tensor:
        signed = self.p.input_range == "signed"
        out = self.net(x * 2 - 1 if signed else x, **self.p.forward_kwargs)
        if isinstance(out, tuple | list):
            out = out[self.p.output_index]
        if not isinstance(out, Tensor) or out.shape != x.shape:
            shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise RestorationModuleError(f"{self.p.target}: output {shape} does not match the input {list(x.shape)}")
        return (out + 1) / 2 if signed else out
