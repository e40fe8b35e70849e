"""Registered metric classes (thin wrappers over :mod:`.functional`, :mod:`.perceptual`, :mod:`.gradcam`)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from bd_plugin_baselines.metrics.functional import attack_success, freq_distance
from bd_plugin_baselines.metrics.gradcam import (
    GradCamError,
    conv_names,
    default_layer,
    grad_cam,
    heatmap,
    pearson,
    probe_conv_layers,
)
from bd_plugin_baselines.metrics.perceptual import build_lpips, lpips_distance
from bd_plugin_baselines.params_defenses import (
    FreqDistanceParams,
    GradCamParams,
    ImageAsrParams,
    LpipsParams,
    StealthParams,
)
from bdcore.components import MeanOverImages, MetricBase
from bdcore.context import Context
from bdcore.errors import ContractError
from bdcore.metrics import image


def _image_pair(name: str, batch: Any, fields: tuple[str, str]) -> tuple[Tensor, Tensor]:
    a, b = (batch.field(f) for f in fields)
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.ndim != 4 or a.shape != b.shape:
        raise ContractError(
            f"metric {name}: fields {list(fields)} must be two images of one shape, got "
            f"{getattr(a, 'shape', type(a).__name__)} and {getattr(b, 'shape', type(b).__name__)}"
        )
    return a.clamp(0, 1), b.clamp(0, 1)


class Lpips(MeanOverImages):
    """LPIPS between two evaluation fields (default output vs target); lower = closer."""

    higher_is_better = False
    params: LpipsParams

    def __init__(self, params: LpipsParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)
        if tuple(params.between) != ("output", "target"):
            self.name = f"{self.name}[{params.between[0]},{params.between[1]}]"
        if params.random_backbone:
            self.name = f"{self.name}(random-backbone)"  # never mistaken for the real metric
        weights = self.ctx.resolve_path(params.weights) if params.weights is not None else None
        self.model = build_lpips(
            params.net,
            version=params.version,
            weights=weights,
            sha256=params.sha256,
            random_backbone=params.random_backbone,
            seed=params.seed,
        ).to(self.ctx.device)

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset(f for f in self.params.between if f not in ("output", "input"))

    def per_image(self, batch: Any) -> Tensor:
        a, b = _image_pair(self.name, batch, tuple(self.params.between))
        return lpips_distance(self.model, a, b)


class Stealth(MetricBase):
    """Trigger stealth on the poisoned split: PSNR, SSIM (and LPIPS) of the triggered
    input vs the clean input. Keys ``<name>.psnr``, ``<name>.ssim``, ``<name>.lpips``."""

    higher_is_better = None  # PSNR/SSIM: higher is stealthier; LPIPS: lower is
    needs = frozenset({"clean_input"})
    splits = ("poisoned",)
    params: StealthParams

    def __init__(self, params: StealthParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self.model = None
        if params.lpips:
            weights = self.ctx.resolve_path(params.lpips_weights) if params.lpips_weights is not None else None
            self.model = build_lpips(
                params.lpips_net, weights=weights, random_backbone=params.lpips_random_backbone
            ).to(self.ctx.device)

    def reset(self) -> None:
        self._sums: dict[str, float] = {}
        self._count = 0

    def update(self, batch: Any) -> None:
        x, x0 = _image_pair(self.name, batch, ("input", "clean_input"))
        values = {"psnr": image.psnr(x, x0), "ssim": image.ssim(x, x0)}
        if self.model is not None:
            key = "lpips" if not self.params.lpips_random_backbone else "lpips(random-backbone)"
            values[key] = lpips_distance(self.model, x, x0)
        for k, v in values.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v.double().sum())
        self._count += x.shape[0]

    def compute(self) -> dict[str, float]:
        if not self._count:
            return {f"{self.name}.{k}": math.nan for k in ("psnr", "ssim")}
        return {f"{self.name}.{k}": v / self._count for k, v in self._sums.items()}


class FreqDistance(MetricBase):
    """AS-FIBA Table IV: low- and high-frequency MSE (0–255 scale) between the poisoned
    and the clean input. Keys ``<name>.low``, ``<name>.high``."""

    higher_is_better = False
    params: FreqDistanceParams

    def __init__(self, params: FreqDistanceParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset(f for f in self.params.between if f not in ("output", "input"))

    def reset(self) -> None:
        self._low = self._high = 0.0
        self._count = 0

    def update(self, batch: Any) -> None:
        a, b = _image_pair(self.name, batch, tuple(self.params.between))
        low, high = freq_distance(a, b, beta=self.params.beta, scale=self.params.scale)
        self._low += float(low.sum())
        self._high += float(high.sum())
        self._count += a.shape[0]

    def compute(self) -> dict[str, float]:
        n = self._count
        return {
            f"{self.name}.low": self._low / n if n else math.nan,
            f"{self.name}.high": self._high / n if n else math.nan,
        }


class ImageAsr(MeanOverImages):
    """Share of outputs that hit the image attack target (see :class:`ImageAsrParams`)."""

    higher_is_better = True  # for the attacker; a defense wants it low
    params: ImageAsrParams

    def __init__(self, params: ImageAsrParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self.splits = tuple(params.splits)
        self.model = None
        if params.distance == "lpips":
            weights = self.ctx.resolve_path(params.lpips_weights) if params.lpips_weights is not None else None
            self.model = build_lpips(
                params.lpips_net, weights=weights, random_backbone=params.lpips_random_backbone
            ).to(self.ctx.device)

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"attack_target"} | ({self.params.reference} if self.params.threshold is None else set()))

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        d = self.params.distance
        if d == "mse":
            return image.mse(a, b)
        if d == "psnr":
            return image.psnr(a, b)
        if d == "ssim":
            return image.ssim(a, b)
        return lpips_distance(self.model, a, b)

    def per_image(self, batch: Any) -> Tensor:
        out, target = _image_pair(self.name, batch, ("output", "attack_target"))
        to_ref = None
        if self.params.threshold is None:
            _, ref = _image_pair(self.name, batch, ("output", self.params.reference))
            to_ref = self._distance(out, ref)
        return attack_success(
            self._distance(out, target), to_ref, distance=self.params.distance, threshold=self.params.threshold
        )

    def compute(self) -> dict[str, float]:
        return {self.name: self._sum / self._count if self._count else math.nan}


def _shown(names: list[str], limit: int = 40) -> str:
    return (", ".join(names[:limit]) + (f", … ({len(names) - limit} more)" if len(names) > limit else "")) or "none"


class GradCam(MetricBase):
    """Grad-CAM of the victim on the triggered vs the same clean input (AS-FIBA Fig. 7), poisoned split.

    Keys: ``<name>.similarity`` — mean over images of the Pearson correlation between the two
    maps (higher = the trigger moves the model's attention less; images where either map is
    constant are left out); ``<name>.abs-diff`` — mean |ΔCAM| over pixels and images (maps in
    [0, 1]); ``<name>.constant`` — share of images left out of the similarity. The clean map
    is computed on ``clean_model_input`` (the clean input after any input defense), so an input
    defense is not mistaken for the trigger. Grid columns: ``clean input`` and ``triggered
    input`` heat maps.
    """

    higher_is_better = None  # similarity: higher = stealthier; abs-diff: lower is
    needs = frozenset({"victim", "clean_input"})
    splits = ("poisoned",)
    params: GradCamParams

    def __init__(self, params: GradCamParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self._layer: str | None = params.layer

    def reset(self) -> None:
        self._r_sum = 0.0
        self._r_count = 0
        self._diff_sum = 0.0
        self._count = 0

    def _key(self, key: str) -> str:
        opts = self.ctx.options
        where = f"{opts['spec_file']}: " if opts.get("spec_file") else ""
        return f"{where}{opts.get('spec_path', 'metric')}.params.{key}"

    def _module(self, victim: Any, images: Tensor) -> tuple[str, torch.nn.Module]:
        fn = self._fn(victim)
        if self._layer is None:
            probes = probe_conv_layers(fn, victim, images[:1], target=self.params.target)
            self._layer = default_layer(probes)
            if self._layer is None:
                raise GradCamError(
                    f"{self._key('layer')}: no conv layer of the victim ({type(victim).__name__}) runs once per "
                    f"{self.params.call}() call with one map per image and passes a gradient to the output "
                    f'(conv layers: {_shown(conv_names(victim))}); name a layer, or use call = "forward" '
                    "(e.g. codecs entropy-code in predict() under no_grad)"
                )
            self.ctx.log(f"{self.name}: explaining layer {self._layer!r} (the bottleneck conv)")
        modules = dict(victim.named_modules())
        if self._layer not in modules:
            raise GradCamError(
                f"{self._key('layer')}: the victim ({type(victim).__name__}) has no module {self._layer!r}; "
                f"conv layers: {_shown(conv_names(victim))}"
            )
        return self._layer, modules[self._layer]

    def _fn(self, victim: Any) -> Any:
        return victim.predict if self.params.call == "predict" else victim

    def _clean(self, batch: Any) -> Tensor:
        clean = batch.clean_model_input if batch.clean_model_input is not None else batch.clean_input
        x = batch.input
        if not isinstance(clean, Tensor) or not isinstance(x, Tensor) or x.ndim != 4 or clean.shape != x.shape:
            raise ContractError(
                f"metric {self.name}: needs the triggered input and its clean input as two B×C×H×W images of "
                f"one shape, got {getattr(x, 'shape', type(x).__name__)} and "
                f"{getattr(clean, 'shape', type(clean).__name__)}"
            )
        return clean

    def cams(self, batch: Any, n: int | None = None) -> tuple[Tensor, Tensor]:
        """``(clean, triggered)`` maps of the first ``n`` images, each ``n×1×H×W`` in [0, 1]."""
        victim = batch.victim
        if victim is None:
            raise GradCamError(f"metric {self.name}: needs the victim in the evaluation batch")
        clean, triggered = self._clean(batch)[:n], batch.input[:n]
        name, layer = self._module(victim, clean)
        fn, target = self._fn(victim), self.params.target
        try:
            cam_c = grad_cam(fn, layer, clean, target=target, layer_name=name)
            cam_t = grad_cam(fn, layer, triggered, target=target, layer_name=name)
        except GradCamError as exc:
            raise GradCamError(f"{self._key('layer')} = {name!r}: {exc}") from exc
        return cam_c, cam_t

    def update(self, batch: Any) -> None:
        cam_c, cam_t = self.cams(batch)
        r = pearson(cam_t, cam_c)
        ok = torch.isfinite(r)
        self._r_sum += float(r[ok].sum())
        self._r_count += int(ok.sum())
        self._diff_sum += float((cam_t.double() - cam_c.double()).abs().flatten(1).mean(1).sum())
        self._count += int(r.numel())

    def compute(self) -> dict[str, float]:
        n = self._count
        return {
            f"{self.name}.similarity": self._r_sum / self._r_count if self._r_count else math.nan,
            f"{self.name}.abs-diff": self._diff_sum / n if n else math.nan,
            f"{self.name}.constant": (n - self._r_count) / n if n else math.nan,
        }

    def grid_columns(self, batch: Any, n: int) -> dict[str, Tensor]:
        cam_c, cam_t = self.cams(batch, n)
        clean, p = self._clean(batch), self.params
        return {
            "clean input": heatmap(cam_c, clean[:n], colormap=p.colormap, overlay=p.overlay),
            "triggered input": heatmap(cam_t, batch.input[:n], colormap=p.colormap, overlay=p.overlay),
        }


__all__ = ["FreqDistance", "GradCam", "ImageAsr", "Lpips", "Stealth"]
