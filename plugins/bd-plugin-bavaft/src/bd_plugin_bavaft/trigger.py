"""The BAvAFT / BAvAFT++ trigger injection network (paper Fig. 2 / Fig. 11; author code ``_v31``/``_v32``)."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from bd_plugin_bavaft.dct import BLOCK, dct_delta_to_image, frequency_indices, to_blocks
from bd_plugin_bavaft.params import BavaftTriggerParams, MultiTriggerParams
from bd_plugin_bavaft.selection import frequency_sensitivity, topk_reweight_mask
from bdcore.components import TriggerBase
from bdcore.context import Context
from bdcore.errors import ComponentError


class TriggerShapeError(ComponentError):
    """The images cannot carry the block trigger."""


def conv_block(cin: int, cout: int, norm: str) -> nn.Sequential:
    """Two 3×3 conv (+BN) + ReLU, as the reference ``conv_block``."""
    layers: list[nn.Module] = []
    for a, b in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(a, b, 3, padding=1, bias=norm == "none"))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class GeneralTriggerNet(nn.Module):
    """Block features → max over blocks → 3×N general trigger g and a 3×N importance (BAvAFT head).
    ``width`` = 64 is the reference (conv widths 64, 128; a 2048 descriptor)."""

    def __init__(self, n_freq: int, norm: str, width: int = 64) -> None:
        super().__init__()
        self.n_freq = n_freq
        self.feat = 2 * width
        self.features = nn.Sequential(
            conv_block(3, width, norm), nn.MaxPool2d(2), conv_block(width, 2 * width, norm), nn.MaxPool2d(2)
        )
        self.head = nn.Linear(self.feat * 4 * 4, 3 * n_freq)  # the reference 1×1 conv on the 2048 descriptor
        self.importance = nn.Linear(self.feat * 4 * 4, 3 * n_freq)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``B×3×H×W`` (scaled RGB) → (g ``B×3×N``, importance ``B×3×N``)."""
        b = images.shape[0]
        blocks = to_blocks(images).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, BLOCK, BLOCK)
        feats = self.features(blocks).reshape(b, -1, self.feat * 4 * 4).amax(dim=1)
        return self.head(feats).view(b, 3, self.n_freq), self.importance(feats).view(b, 3, self.n_freq)


class PatchWeightNet(nn.Module):
    """Full image → one weight per 16×16 block per channel (4 × maxpool 2, 1×1 conv 8·width→3, no activation)."""

    def __init__(self, norm: str, width: int = 64) -> None:
        super().__init__()
        chans = (3, width, 2 * width, 4 * width, 8 * width)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(chans):
            layers += [conv_block(a, b, norm), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(8 * width, 3, 1)

    def forward(self, images: Tensor) -> Tensor:
        return self.out(self.body(images))  # B×3×(H/16)×(W/16)


def on_psnr_sphere(delta: Tensor, psnr: float) -> Tensor:
    """``delta`` ``B×C×H×W`` rescaled per image so that ``10·log10(1 / mean(delta²)) = psnr`` (dB);
    differentiable (the gradient keeps only the shape). An all-zero change stays zero."""
    mse = delta.pow(2).flatten(1).mean(1)
    target = 10.0 ** (-psnr / 10.0)
    factor = torch.where(mse > 0, torch.sqrt(target / mse.clamp_min(1e-30)), torch.zeros_like(mse))
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


class BavaftTrigger(TriggerBase):
    """Learnable frequency-domain trigger: ``DCT_p = DCT(x) + α·tile(topK(g))⊙w`` on the N slots.

    Input ``B×3×H×W`` in [0, 1] with H, W multiples of 16; output the same (clamped by the engine).
    """

    learnable = True
    needs_victim = False
    differentiable = True

    def __init__(self, params: BavaftTriggerParams | None = None, ctx: Context | None = None) -> None:
        params = params or BavaftTriggerParams()
        super().__init__(params, ctx)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(self.ctx.generator("init").initial_seed())
            self.general = GeneralTriggerNet(params.n_freq, params.norm, params.width)
            # Table IV "w/o patch-wise weight": no weight network, w = 1 in every block
            self.weight = PatchWeightNet(params.norm, params.width) if params.patch_weight else None
        self.register_buffer("indices", torch.tensor(frequency_indices(params.table, params.n_freq)), persistent=True)
        # init_psnr calibration: a gain set once on the first training batch, saved with the stage
        self.register_buffer("gain", torch.ones(()), persistent=True)
        self.register_buffer("calibrated", torch.tensor(params.init_psnr is None), persistent=True)
        self.sensitivity_generator: torch.Generator | None = None

    def injection(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The injected coefficients at the N slots, ``B×3×gh×gw×N`` (before α), plus intermediates."""
        p: BavaftTriggerParams = self.params
        net_dtype = self.general.head.weight.dtype
        x = (images * 2.0 - 1.0).to(net_dtype)  # the reference feeds 0–255; a fixed affine rescaling for stable init
        g, importance = (t.to(images.dtype) for t in self.general(x))
        if self.weight is not None:
            w = self.weight(x).to(images.dtype)  # B×3×gh×gw
        else:
            b, _, h, wd = images.shape
            w = images.new_ones(b, 3, h // BLOCK, wd // BLOCK)
        full = g[:, :, None, None, :] * w[..., None] * (p.scale * self.gain)  # OR(g)⊙w on all N slots
        if not p.topk:  # Table IV "w/o topK selection": every one of the N slots carries the trigger
            mask = torch.ones_like(importance)
        elif p.selection == "learned":
            hard = topk_reweight_mask(importance.detach(), p.k, reweight=False, largest_kept=True)
            soft = torch.sigmoid(importance)
            mask = hard + soft - soft.detach()  # straight-through so the importance head trains
        else:
            with torch.no_grad():
                pseudo = (images + self._delta(full.detach())).clamp(0, 1)  # x̃_p: all N slots active
                clean = images if p.sensitivity == "trigger" else None
                sens = frequency_sensitivity(pseudo, full.detach(), self.indices, generator=generator, clean=clean)
            mask = topk_reweight_mask(sens, p.k, reweight=p.reweight, largest_kept=False)
        if p.channels == "y":
            mask = mask * torch.tensor([1.0, 0.0, 0.0], dtype=mask.dtype, device=mask.device).view(1, 3, 1)
        return full * mask[:, :, None, None, :], {"g": g, "w": w, "mask": mask}

    def _delta(self, inj: Tensor) -> Tensor:
        """``B×3×gh×gw×N`` coefficients at the slots → RGB change ``B×3×H×W`` ([0, 1] units)."""
        b, c, gh, gw, _ = inj.shape
        flat = inj.new_zeros(b, c, gh, gw, BLOCK * BLOCK).index_add(-1, self.indices, inj)
        return dct_delta_to_image(flat.view(b, c, gh, gw, BLOCK, BLOCK))

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:
        _, c, h, w = images.shape
        if c != 3 or h % BLOCK or w % BLOCK:
            raise TriggerShapeError(
                f"bavaft trigger needs B×3×H×W with H, W multiples of {BLOCK}; got {list(images.shape)}"
            )
        inj, _ = self.injection(images, generator)
        if self.training and not bool(self.calibrated):
            inj = inj * self._calibrate(inj)
        base = torch.round(images * 255.0) / 255.0 if self.params.quantize else images
        # IDCT(DCT(x) + inj) = x + IDCT(inj): the block pipeline is linear, so only the injection is transformed
        delta = self._delta(inj)
        if self.params.budget_psnr is not None:
            delta = on_psnr_sphere(delta, self.params.budget_psnr)
        return base + delta * strength.view(-1, 1, 1, 1)

    @torch.no_grad()
    def _calibrate(self, inj: Tensor) -> Tensor:
        """Set ``gain`` so this batch's change at α = 1 has ``init_psnr`` dB; returns the factor applied."""
        mse = self._delta(inj.detach()).pow(2).mean().clamp_min(1e-30)
        factor = torch.sqrt(10.0 ** (-float(self.params.init_psnr) / 10.0) / mse)
        self.gain.mul_(factor)
        self.calibrated.fill_(True)
        return factor

    def extra_repr(self) -> str:
        p = self.params
        return f"k={p.k if p.topk else p.n_freq}, n={p.n_freq}, selection={p.selection}, patch_weight={p.patch_weight}"


class MultiBavaftTrigger(TriggerBase):
    """One :class:`BavaftTrigger` per attack objective (paper §3.4, Eq. 11), in ``self.triggers``
    (an ``nn.ModuleDict``, so every sub-network is saved with the attack stage).

    :meth:`inject` triggers with a named sub-trigger (the loss uses every one); :meth:`apply` with
    ``params.eval_objective``. Images ``B×3×H×W`` in [0, 1], H and W multiples of 16; output the same.
    Sub-trigger ``o`` is initialised from the run seed, this component and ``o`` (independent of the
    order of ``objectives``).
    """

    learnable = True
    needs_victim = False
    differentiable = True

    def __init__(self, params: MultiTriggerParams | None = None, ctx: Context | None = None) -> None:
        params = params or MultiTriggerParams()
        super().__init__(params, ctx)
        single = params.single()
        self.triggers = nn.ModuleDict(
            {
                o: BavaftTrigger(single, attrs.evolve(self.ctx, component=f"{self.ctx.component}/{o}"))
                for o in params.objectives
            }
        )

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.params.objectives)

    @property
    def eval_objective(self) -> str:
        return str(self.params.eval_objective)

    def inject(
        self,
        objective: str,
        images: Tensor,
        strength: float | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``images`` ``B×3×H×W`` in [0, 1] triggered by sub-trigger ``objective`` (clamped to [0, 1],
        differentiable in its parameters); ``strength`` a float or ``B`` (None: ``params.strength``)."""
        if objective not in self.triggers:
            raise KeyError(f"no sub-trigger {objective!r}; this trigger has {list(self.triggers)}")
        trig: BavaftTrigger = self.triggers[objective]  # type: ignore[assignment]
        return trig.inject_trigger(images, strength=strength, generator=generator)

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:
        trig: BavaftTrigger = self.triggers[self.eval_objective]  # type: ignore[assignment]
        return trig.apply(images, strength, generator)

    def extra_repr(self) -> str:
        return f"objectives={list(self.objectives)}, eval_objective={self.eval_objective}"


def build_trigger(params: BavaftTriggerParams, ctx: Any) -> BavaftTrigger:
    return BavaftTrigger(params, ctx)
