"""``hyperiqa`` / ``dbcnn`` / ``tres``: pyiqa's architectures (PolyForm Noncommercial 1.0) as bdcore victims.

pyiqa hard-codes backbone downloads (timm's and torchvision's ImageNet builds, DBCNN's SCNN URL). We build with those calls patched
to build random-initialised modules and then load the backbone from a **local path** (``backbone_weights``);
without one we fail fast unless ``allow_random_backbone = true``. Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

from torch import Tensor, nn

from bd_plugin_baiqa.params import PyiqaVictimParams, WadiqamParams
from bd_plugin_baiqa.util import BaiqaError
from bd_plugin_baiqa.victims import iqa_regression_loss
from bdcore.components import VictimBase
from bdcore.context import Context

_NEEDS = {
    "hyperiqa": "an ImageNet ResNet-50 state dict (torchvision/timm keys, e.g. resnet50-0676ba61.pth)",
    "dbcnn": "an ImageNet VGG-16 state dict (torchvision keys, e.g. vgg16-397923af.pth) and `scnn_weights`",
    "tres": "an ImageNet ResNet state dict matching `backbone` (torchvision keys, e.g. resnet18-f37072fd.pth)",
}


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Patch pyiqa's hard-coded backbone downloads into random-initialised builds (no network)."""
    import pyiqa.archs.dbcnn_arch as dbcnn_arch
    import timm
    import torchvision.models as tvm

    real_timm = timm.create_model

    def timm_offline(name: str, *args: Any, **kwargs: Any) -> nn.Module:
        kwargs["pretrained"] = False
        return real_timm(name, *args, **kwargs)

    def tv_offline(builder: Any) -> Any:
        def build(*args: Any, **kwargs: Any) -> nn.Module:
            kwargs.pop("weights", None)
            return builder(*args, weights=None, **kwargs)

        return build

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch("timm.create_model", timm_offline))
        for name in ("vgg16", "resnet18", "resnet34", "resnet50"):
            stack.enter_context(mock.patch.object(tvm, name, tv_offline(getattr(tvm, name))))
        stack.enter_context(mock.patch.object(dbcnn_arch, "load_pretrained_network", lambda *a, **k: None))
        yield


def _load_state(path: Path, sha256: str | None) -> dict[str, Tensor]:
    from bdcore.io.checkpoint import extract_state_dict, load_weights

    if not path.is_file():
        raise BaiqaError(f"backbone weights {path} not found")
    return extract_state_dict(load_weights(path, sha256=sha256))


def _load_into(module: nn.Module, state: dict[str, Tensor], *, strip: str = "", what: str) -> None:
    state = {k[len(strip) :] if strip and k.startswith(strip) else k: v for k, v in state.items()}
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if missing:
        raise BaiqaError(
            f"{what}: {len(missing)} backbone tensors missing or mis-shaped in the file, e.g. {missing[:3]}"
        )
    module.load_state_dict(usable, strict=False)


class PyiqaVictim(VictimBase):
    """A pyiqa NR-IQA net as a victim: ``predict`` (eval mode, ``test_crops`` uniform 224 crops) → ``B``
    scores; ``clean_loss`` = L1/MSE to the MOS (TReS adds its returned consistency term)."""

    task: ClassVar[str] = "iqa"
    arch: ClassVar[str] = ""

    def __init__(self, params: PyiqaVictimParams | None = None, ctx: Context | None = None) -> None:
        super().__init__()
        self.params = params or PyiqaVictimParams()
        self.ctx = ctx or Context()
        p = self.params
        if p.backbone_weights is None and p.weights is None and not p.allow_random_backbone:
            raise BaiqaError(
                f"{self.arch}: set `backbone_weights` to a local file — {_NEEDS[self.arch]} — "
                "(or `weights` for a full checkpoint, or allow_random_backbone = true); nothing is downloaded"
            )
        with no_downloads():
            self.net = self.build()
        if p.backbone_weights is not None:
            self.load_backbone(_load_state(self.ctx.resolve_path(p.backbone_weights), p.backbone_sha256))
        if p.weights is not None:
            from bdcore.io.checkpoint import extract_state_dict, load_weights

            state = extract_state_dict(load_weights(self.ctx.resolve_path(p.weights)))
            self.net.load_state_dict(state)

    def build(self) -> nn.Module:
        raise NotImplementedError

    def load_backbone(self, state: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def forward(self, images: Tensor) -> Any:
        return self.net(images)

    def predict(self, inputs: Tensor) -> Tensor:
        was = self.training
        self.net.eval()
        try:
            out = self.net(inputs)
        finally:
            self.net.train(was)
        return out.reshape(inputs.shape[0], -1).mean(dim=1)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = self.net(batch["input"])
        extra = None
        if isinstance(out, tuple):
            out, extra = out
        loss = iqa_regression_loss(out.reshape(-1), batch["target"], self.params.loss)
        if extra is not None:
            loss = loss + extra
        return {"loss": loss}


class HyperIqa(PyiqaVictim):
    """pyiqa ``HyperNet`` (HyperIQA, Su et al. CVPR 2020); inputs are 224×224 patches in training."""

    arch = "hyperiqa"

    def build(self) -> nn.Module:
        from pyiqa.archs.hypernet_arch import HyperNet

        return HyperNet(
            base_model_name=self.params.backbone or "resnet50", num_crop=self.params.test_crops, pretrained=False
        )

    def load_backbone(self, state: dict[str, Tensor]) -> None:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        _load_into(self.net.base_model, state, what="hyperiqa backbone")


class Dbcnn(PyiqaVictim):
    """pyiqa ``DBCNN`` (Zhang et al. TCSVT 2020): VGG-16 + SCNN, bilinear pooling."""

    arch = "dbcnn"

    def build(self) -> nn.Module:
        from pyiqa.archs.dbcnn_arch import DBCNN

        if self.params.scnn_weights is None and not self.params.allow_random_backbone:
            raise BaiqaError("dbcnn: set `scnn_weights` to a local SCNN state dict (scnn.pkl); nothing is downloaded")
        net = DBCNN(pretrained=False)
        if self.params.scnn_weights is not None:
            state = _load_state(self.ctx.resolve_path(self.params.scnn_weights), None)
            _load_into(net.features2, state, strip="features.", what="dbcnn scnn")
        return net

    def load_backbone(self, state: dict[str, Tensor]) -> None:
        _load_into(self.net.features1, state, strip="features.", what="dbcnn vgg16")


class Tres(PyiqaVictim):
    """pyiqa ``TReS`` (Golestaneh et al. WACV 2022); BAIQA uses the ResNet-18 variant (default here)."""

    arch = "tres"

    def build(self) -> nn.Module:
        from pyiqa.archs.tres_arch import TReS

        return TReS(network=self.params.backbone or "resnet18", test_sample=self.params.test_crops, pretrained=False)

    def load_backbone(self, state: dict[str, Tensor]) -> None:
        _load_into(self.net.model, state, what="tres backbone")


class Wadiqam(VictimBase):
    """WaDIQaM-NR (Bosse, Maniry, Müller, Wiegand, Samek, *Deep Neural Networks for No-Reference and
    Full-Reference Image Quality Assessment*, TIP 2018), pyiqa's layers: ten 3×3 conv layers (VGG-like,
    32→512 maps, five max-pools) on 32×32 patches, a patch-quality FC branch and a patch-weight FC branch
    (ReLU + ε); image score = Σ wᵢqᵢ / Σ wᵢ. The paper trains it from scratch, so no weights are needed.

    Patches: every non-overlapping 32×32 patch of the input (the bottom/right remainder is ignored) in
    training and test alike — pyiqa draws its training patches with the global RNG; here the engine's
    seeded crops are the augmentation. ``predict(images)`` (``B×3×H×W`` in [0, 1], H, W ≥ 32) → ``B``.
    """

    task: ClassVar[str] = "iqa"
    patch: ClassVar[int] = 32

    def __init__(self, params: WadiqamParams | None = None, ctx: Context | None = None) -> None:  # noqa: ARG002
        super().__init__()
        from pyiqa.archs.wadiqam_arch import WaDIQaM

        self.params = p = params or WadiqamParams()
        self.net = WaDIQaM(metric_type="NR", pretrained=False, weighted_average=p.weighted_average)

    def forward(self, images: Tensor) -> Tensor:
        b, c, h, w = images.shape
        k = self.patch
        if h < k or w < k:
            raise ValueError(f"wadiqam: images of {h}×{w} are smaller than one {k}×{k} patch")
        tiles = images[:, :, : h // k * k, : w // k * k].unfold(2, k, k).unfold(3, k, k)  # B×C×h'×w'×k×k
        n = tiles.shape[2] * tiles.shape[3]
        feats = self.net.features(tiles.permute(0, 2, 3, 1, 4, 5).reshape(b * n, c, k, k)).reshape(b, n, -1)
        q = self.net.fc_q(feats).squeeze(-1)
        if self.params.weighted_average:
            wts = self.net.fc_w(feats).squeeze(-1) + self.net.eps
            z = (q * wts).sum(dim=1) / wts.sum(dim=1)
        else:
            z = q.mean(dim=1)
        return self.params.score_offset + self.params.score_scale * z

    def predict(self, inputs: Tensor) -> Tensor:
        return self(inputs)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"loss": iqa_regression_loss(self(batch["input"]), batch["target"], self.params.loss)}
