"""Fine-pruning (Liu et al., RAID 2018), task-generic: prune the output channels of any
named conv layer that are least active on clean data, then optionally fine-tune.

Channels are masked with :func:`torch.nn.utils.prune.custom_from_mask` (weight and bias),
so they stay zero during the optional fine-tuning; the mask is then made permanent
(:func:`torch.nn.utils.prune.remove`) so the defended victim has an ordinary state dict.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from bd_plugin_baselines.defenses._data import clean_subset, subset_batches
from bd_plugin_baselines.params_defenses import FinePruningParams
from bdcore.components import DefenseBase, DefenseOutcome
from bdcore.context import DefenseContext
from bdcore.errors import ComponentError

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class PruningError(ComponentError):
    """The layer to prune is missing or is not a convolution."""


def find_conv(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    """The named conv module, or the last ``nn.Conv2d`` (in ``named_modules`` order) when None."""
    if layer is None:
        convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise PruningError("fine-pruning: the victim has no nn.Conv2d; name a conv layer with `layer`")
        return convs[-1]
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n, m in modules.items() if isinstance(m, _CONV)]
        raise PruningError(f"fine-pruning: no module named {layer!r}; conv layers: {', '.join(names) or 'none'}")
    module = modules[layer]
    if not isinstance(module, _CONV):
        raise PruningError(f"fine-pruning: {layer!r} is a {type(module).__name__}, not a convolution")
    return layer, module


def _out_dim(module: nn.Module) -> int:
    return 1 if isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d) else 0


def channel_activation(
    model: nn.Module, module: nn.Module, inputs: Iterable[Tensor], *, rank_by: str = "relu"
) -> Tensor:
    """Mean activation per output channel of ``module`` over ``inputs`` (``C`` float64).

    ``rank_by``: ``relu`` (mean ReLU output), ``abs`` (mean |output|) or ``raw``.
    """
    total: Tensor | None = None
    count = 0

    def hook(_m: nn.Module, _inp: Any, out: Tensor) -> None:
        nonlocal total, count
        a = out.detach().double()
        a = a.clamp_min(0) if rank_by == "relu" else a.abs() if rank_by == "abs" else a
        dims = [d for d in range(a.ndim) if d != 1]
        s = a.sum(dim=dims)
        total = s if total is None else total + s
        count += a.numel() // a.shape[1]

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x in inputs:
                predict = getattr(model, "predict", model)
                predict(x)
    finally:
        handle.remove()
        model.train(was_training)
    if total is None:
        raise PruningError("fine-pruning: the chosen layer never ran on the calibration batches")
    return total / max(count, 1)


def channels_to_prune(activation: Tensor, rate: float) -> Tensor:
    """Indices of the ``floor(rate·C)`` channels with the lowest activation (ties by index)."""
    k = math.floor(rate * activation.numel() + 1e-9)
    order = torch.sort(activation, stable=True).indices
    return order[:k]


def prune_channels(module: nn.Module, channels: Tensor) -> None:
    """Zero the output channels ``channels`` of a conv (weight and bias) with a persistent mask."""
    dim = _out_dim(module)
    mask = torch.ones_like(module.weight)
    index = [slice(None)] * mask.ndim
    index[dim] = channels
    mask[tuple(index)] = 0
    prune.custom_from_mask(module, "weight", mask)
    if getattr(module, "bias", None) is not None:
        bmask = torch.ones_like(module.bias)
        bmask[channels] = 0
        prune.custom_from_mask(module, "bias", bmask)


def make_permanent(module: nn.Module) -> None:
    for name in ("weight", "bias"):
        if prune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            prune.remove(module, name)


class FinePruning(DefenseBase):
    """Prune ``rate`` of a conv layer's output channels (lowest clean activation), then
    fine-tune ``finetune_steps`` steps on clean data (0 = pruning only)."""

    stage = "model"
    params: FinePruningParams

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:
        p = self.params
        defended = copy.deepcopy(victim)
        name, module = find_conv(defended, p.layer)
        subset = clean_subset(ctx, p.fraction, "fine-pruning")
        batches = subset_batches(ctx, subset, "fine-pruning-calib")
        inputs = (b["input"] for b in itertools.islice(batches, p.calib_batches))
        act = channel_activation(defended, module, inputs, rank_by=p.rank_by)
        pruned = channels_to_prune(act, p.rate)
        if pruned.numel():
            prune_channels(module, pruned)
        if p.finetune_steps > 0:
            defended.train()
            ctx.trainer.train(defended, subset_batches(ctx, subset, "fine-pruning"), p.finetune_steps, p.lr)
        make_permanent(module)
        defended.eval()
        ctx.ctx.log(f"fine-pruning {name}: pruned {pruned.numel()}/{act.numel()} channels")
        return DefenseOutcome(
            victim=defended,
            extra={"pruned_channels": float(pruned.numel()), "layer_channels": float(act.numel())},
        )
