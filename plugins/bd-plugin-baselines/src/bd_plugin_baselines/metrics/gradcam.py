"""Grad-CAM (Selvaraju et al., ICCV 2017) for image-output and score-output victims, batched.

``CAM = ReLU(Σ_k w_k A_k)`` with ``w_k`` the spatial mean of ``∂y/∂A_k``, where ``A`` is the
``B×K×h×w`` output of one layer and ``y`` one scalar per image (:data:`TARGETS`); the map is
upsampled bilinearly to the input size and min-max normalised per image to [0, 1] — the same
post-processing as jacobgil/pytorch-grad-cam, the field's reference implementation.

Written here rather than calling pytorch-grad-cam because its ``BaseCAM`` puts the model in eval
mode, zeroes and accumulates the parameters' ``.grad`` (``loss.backward``) and post-processes each
image in a numpy/OpenCV loop; a metric must leave the victim exactly as it found it and run
batched on the victim's device. The tests compare both on the same model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bdcore.errors import ComponentError

Target = Literal["output-mean", "output-l2"]
#: the scalar explained per image: the mean of the output over all its values (pixels and
#: channels; a score output is the score itself), or the output's L2 norm.
TARGETS: tuple[Target, ...] = ("output-mean", "output-l2")

#: the module types the default layer is chosen from
CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


class GradCamError(ComponentError):
    """The layer is missing or unusable, or the output does not depend differentiably on it."""


def main_output(pred: Any, who: str) -> Tensor:
    """A ``predict``/``forward`` result → its main output (a tensor, or a dict's ``"output"``)."""
    if isinstance(pred, Tensor):
        return pred
    if isinstance(pred, Mapping) and isinstance(pred.get("output"), Tensor):
        return pred["output"]
    raise GradCamError(f"{who}: the victim must return a tensor or a dict with 'output', got {type(pred).__name__}")


def explained_scalar(output: Tensor, target: Target, batch: int) -> Tensor:
    """One scalar per image (``B``) from the victim's output (``B`` scores or ``B×…``)."""
    if output.shape[0] != batch:
        raise GradCamError(f"the victim's output has {output.shape[0]} rows for {batch} images")
    flat = output.reshape(batch, -1)
    if target == "output-mean":
        return flat.mean(dim=1)
    if target == "output-l2":
        return flat.norm(dim=1)
    raise GradCamError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")


def conv_names(model: nn.Module) -> list[str]:
    """Names (``named_modules`` order) of the model's ``Conv2d`` / ``ConvTranspose2d`` layers."""
    return [name for name, m in model.named_modules() if isinstance(m, CONV_TYPES)]


def cam_from(activations: Tensor, gradients: Tensor, size: tuple[int, int]) -> Tensor:
    """The Grad-CAM formula on given activations and gradients.

    Args:
        activations: ``A``, ``B×K×h×w``.
        gradients: ``∂y/∂A``, same shape.
        size: ``(H, W)`` of the input.

    Returns:
        ``B×1×H×W`` in [0, 1]: ``ReLU(Σ_k mean_ij(∂y/∂A_k)·A_k)`` upsampled bilinearly
        (half-pixel centres, as OpenCV's ``INTER_LINEAR``) and min-max normalised per image; a
        map that is constant (all zero after the ReLU, or zero gradients) stays all zero.
    """
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = (weights * activations).sum(dim=1, keepdim=True).relu()
    if tuple(cam.shape[-2:]) != tuple(size):
        cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    lo = cam.amin(dim=(2, 3), keepdim=True)
    span = cam.amax(dim=(2, 3), keepdim=True) - lo
    return torch.where(span > 0, (cam - lo) / span.clamp_min(torch.finfo(cam.dtype).tiny), torch.zeros_like(cam))


@contextmanager
def _capture(layer: nn.Module) -> Iterator[list[Tensor]]:
    """Replace ``layer``'s output by a leaf copy that requires grad, for the duration.

    The leaf cuts the graph above the layer (nothing upstream is differentiated) and works even
    when no parameter requires grad; the copy passed on keeps the leaf safe from in-place
    operations that follow the layer (``LeakyReLU(inplace=True)``).
    """
    leaves: list[Tensor] = []

    def hook(module: nn.Module, args: Any, out: Any) -> Tensor:
        if not isinstance(out, Tensor) or out.ndim != 4:
            shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise GradCamError(f"the layer's output must be a B×K×h×w tensor, got {shape}")
        leaf = out.detach().requires_grad_(True)
        leaves.append(leaf)
        return leaf.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield leaves
    finally:
        handle.remove()


def grad_cam(
    fn: Callable[[Tensor], Any],
    layer: nn.Module,
    images: Tensor,
    *,
    target: Target = "output-mean",
    layer_name: str = "layer",
) -> Tensor:
    """Grad-CAM maps of ``fn`` (e.g. ``victim.predict``) at ``layer`` for a batch.

    Gradients are enabled locally (evaluation runs under ``no_grad``) and taken with
    ``torch.autograd.grad`` with respect to the layer's output only, so no parameter's
    ``.grad`` is touched; the model's parameters, buffers and train/eval mode are left as
    they are (the caller decides the mode, as for every metric).

    Args:
        fn: ``B×C×H×W`` → the victim's output (``B`` scores, ``B×…`` images/logits, or a
            dict with ``"output"``).
        layer: a module that runs exactly once per call of ``fn`` and outputs ``B×K×h×w``.
        images: ``B×C×H×W``.
        target: the scalar explained per image (:data:`TARGETS`).
        layer_name: for messages.

    Returns:
        ``B×1×H×W`` in [0, 1] (see :func:`cam_from`), float32 (float64 for a float64 model).
    """
    with torch.enable_grad(), _capture(layer) as leaves:
        out = main_output(fn(images), "grad-cam")
        if len(leaves) != 1:
            raise GradCamError(
                f"layer {layer_name!r} ran {len(leaves)} times in one forward pass; "
                "Grad-CAM needs a layer that runs exactly once"
            )
        if leaves[0].shape[0] != images.shape[0]:
            raise GradCamError(
                f"layer {layer_name!r} outputs {leaves[0].shape[0]} maps for {images.shape[0]} images (does the "
                "victim cut images into patches?); Grad-CAM needs one map per image"
            )
        y = explained_scalar(out, target, images.shape[0])
        if not y.requires_grad:
            raise GradCamError(
                "the victim's output does not depend differentiably on the input "
                '(its predict() may run under no_grad, e.g. real entropy coding): use call = "forward"'
            )
        (grad,) = torch.autograd.grad(y.sum(), leaves[0], allow_unused=True)
    activations = leaves[0].detach()
    if grad is None:
        raise GradCamError(f"the victim's output does not depend on layer {layer_name!r}")
    # images are independent in the model (eval mode): the gradient of the sum is per image
    dtype = torch.promote_types(activations.dtype, torch.float32)  # half precision → float32
    return cam_from(activations.to(dtype), grad.to(dtype), (images.shape[-2], images.shape[-1]))


@attrs.frozen
class LayerProbe:
    """What one conv layer did in a probing forward/backward pass."""

    name: str
    order: int  # execution order of its (first) call
    calls: int
    area: int  # h·w of its output
    per_image: bool  # one output row per input image (not per patch)
    connected: bool  # the output depends on it (gradient not None)
    nonzero: bool  # … with a nonzero gradient


def probe_conv_layers(
    fn: Callable[[Tensor], Any], model: nn.Module, images: Tensor, *, target: Target
) -> list[LayerProbe]:
    """Run ``fn`` once on ``images`` with every conv layer of ``model`` observed.

    Each conv output ``o`` is passed on as ``o + d`` with ``d`` a zero leaf: ``∂y/∂d = ∂y/∂o``
    while the graph through all layers stays intact (unlike :func:`_capture`'s cut).
    """
    names = {m: n for n, m in model.named_modules() if isinstance(m, CONV_TYPES)}
    calls: dict[str, list[tuple[int, Tensor]]] = {}
    counter = iter(range(1 << 30))

    def hook(module: nn.Module, args: Any, out: Any) -> Any:
        if not isinstance(out, Tensor) or out.ndim != 4:
            return None
        d = torch.zeros_like(out, requires_grad=True)
        calls.setdefault(names[module], []).append((next(counter), d))
        return out + d

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.enable_grad():
            y = explained_scalar(main_output(fn(images), "grad-cam"), target, images.shape[0])
            ds = [d for seen in calls.values() for _, d in seen]
            grads = torch.autograd.grad(y.sum(), ds, allow_unused=True) if y.requires_grad and ds else [None] * len(ds)
    finally:
        for h in handles:
            h.remove()
    by_d = {id(d): g for d, g in zip(ds, grads, strict=True)}
    probes = []
    for name, seen in calls.items():
        order, d = seen[0]
        g = by_d[id(d)]
        probes.append(
            LayerProbe(
                name=name,
                order=order,
                calls=len(seen),
                area=int(d.shape[-2] * d.shape[-1]),
                per_image=d.shape[0] == images.shape[0],
                connected=g is not None,
                nonzero=g is not None and bool(g.detach().abs().amax() > 0),
            )
        )
    return sorted(probes, key=lambda p: p.order)


def default_layer(probes: list[LayerProbe]) -> str | None:
    """The bottleneck: among conv layers that run once, output one map per image and that the
    output depends on (with a nonzero gradient if any has one), the one with the smallest
    spatial output; ties → the last to run (the deepest). None if there is no such layer."""
    usable = [p for p in probes if p.calls == 1 and p.per_image and p.connected]
    if any(p.nonzero for p in usable):
        usable = [p for p in usable if p.nonzero]
    if not usable:
        return None
    return min(usable, key=lambda p: (p.area, -p.order)).name


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Per-image Pearson correlation of two ``B×…`` maps (``B`` float64; NaN where either is constant)."""
    x = a.reshape(a.shape[0], -1).double()
    z = b.reshape(b.shape[0], -1).double()
    x = x - x.mean(dim=1, keepdim=True)
    z = z - z.mean(dim=1, keepdim=True)
    den = x.norm(dim=1) * z.norm(dim=1)
    r = (x * z).sum(dim=1) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan")))


def colormap_table(name: str, device: torch.device | str = "cpu") -> Tensor:
    """A matplotlib colormap sampled at 256 levels: ``256×3`` float in [0, 1]."""
    import matplotlib
    import numpy as np

    table = matplotlib.colormaps[name].resampled(256)(np.arange(256))[:, :3]
    return torch.as_tensor(table, dtype=torch.float32, device=device)


def heatmap(cam: Tensor, images: Tensor | None = None, *, colormap: str = "jet", overlay: float = 0.0) -> Tensor:
    """Colour ``B×1×H×W`` maps in [0, 1] with a matplotlib colormap, optionally blended over images.

    Returns ``B×3×H×W`` in [0, 1]: ``(1 − overlay)·colormap(cam) + overlay·image`` (a grey image
    is repeated over the three channels); ``overlay = 0`` gives the heat map alone.
    """
    table = colormap_table(colormap, cam.device)
    idx = cam[:, 0].clamp(0, 1).mul(255).round().long()
    heat = table[idx].permute(0, 3, 1, 2)
    if images is None or overlay == 0:
        return heat
    img = images.to(heat.dtype).clamp(0, 1)
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    if img.shape[1] != 3 or img.shape[-2:] != heat.shape[-2:]:
        raise GradCamError(f"cannot overlay a {list(heat.shape)} heat map on images of shape {list(images.shape)}")
    return (1 - overlay) * heat + overlay * img


__all__ = [
    "CONV_TYPES",
    "TARGETS",
    "GradCamError",
    "LayerProbe",
    "cam_from",
    "colormap_table",
    "conv_names",
    "default_layer",
    "explained_scalar",
    "grad_cam",
    "heatmap",
    "main_output",
    "pearson",
    "probe_conv_layers",
]
