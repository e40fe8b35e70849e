"""WaNet (Nguyen & Tran, ICLR 2021): an imperceptible smooth warp.

Official (VinAIResearch/Warping-based_Backdoor_Attack-release ``train.py``):
``ins = U(−1,1)^{1×2×k×k}; ins /= mean|ins|``; ``noise_grid = upsample(ins, H, bicubic,
align_corners=True)``; ``grid = clamp((identity + s·noise/H)·grid_rescale, −1, 1)``;
``grid_sample(x, grid, align_corners=True)``. Noise ("cross") mode adds ``U(−1,1)^{H×W×2}/H``.

The k×k control field is fixed by the trigger's seed (``torch.rand`` on a generator seeded with
``seed``, the same draw as the official ``torch.manual_seed(seed); torch.rand(1, 2, k, k)``) and
kept as a buffer (saved with the artifact). Resolution: the field is upsampled to H×W and the x
(y) displacement is divided by W (H), i.e. about ``s/2`` pixels per unit of field at any size —
exactly the official ``/input_height`` on square images. Strength α scales s (and grid_rescale−1).

Speed: the official code keeps ``identity_grid`` and ``noise_grid`` and, per batch, builds
``grid_temps`` and samples ``grid_temps.repeat(bs, 1, 1, 1)`` in one batched ``grid_sample``. Here
the upsampled field and the identity are built once per (H, W, dtype, device) and the final grid
once per strength too; the batch is sampled in one ``grid_sample`` with that grid broadcast
(``expand``, no copy). Bilinear sampling of [0, 1] images stays in [0, 1], so no clamp pass.

:meth:`WaNet.pseudo_poison` gives the official noise ("cross") samples, the fixed warp plus fresh
noise, which keep their clean labels in WaNet's training (the :class:`~bdcore.protocols.PseudoTrigger`
capability, e.g. the pseudo term of AS-FIBA's Eq. 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_baselines.triggers._common import PatternCache, tensor_key, uniform_strength
from bdcore.components import TriggerBase, as_strength


def wanet_control_field(k: int, generator: torch.Generator | None = None) -> Tensor:
    """The official ``ins``: ``1×2×k×k`` U(−1,1) normalised by its mean absolute value (float32)."""
    ins = torch.rand(1, 2, k, k, generator=generator) * 2 - 1
    return ins / torch.mean(torch.abs(ins))


def wanet_base_grids(field: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """``(identity, displacement)``, both ``1×H×W×2`` (x, y): the identity grid in [−1, 1] and the
    upsampled field divided by (W, H) — the official ``noise_grid / input_height`` on squares."""
    noise = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys = torch.linspace(-1, 1, h, dtype=field.dtype, device=field.device)
    xs = torch.linspace(-1, 1, w, dtype=field.dtype, device=field.device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    identity = torch.stack((xx, yy), 2)[None]
    scale = torch.tensor([1.0 / w, 1.0 / h], dtype=field.dtype, device=field.device)
    return identity, noise * scale


def _grid_from(identity: Tensor, displacement: Tensor, s: float | Tensor, grid_rescale: float | Tensor) -> Tensor:
    return torch.clamp((identity + s * displacement) * grid_rescale, -1, 1)


def wanet_grid(field: Tensor, h: int, w: int, *, s: float | Tensor = 0.5, grid_rescale: float | Tensor = 1.0) -> Tensor:
    """``B×H×W×2`` sampling grid (x, y) in [−1, 1] from the ``1×2×k×k`` control field.

    ``s`` and ``grid_rescale`` may be scalars or per-sample ``B×1×1×1`` tensors.
    """
    identity, displacement = wanet_base_grids(field, h, w)
    return _grid_from(identity, displacement, s, grid_rescale)


def wanet(
    images: Tensor,
    field: Tensor,
    *,
    s: float = 0.5,
    grid_rescale: float = 1.0,
    strength: float | Tensor = 1.0,
    noise: Tensor | None = None,
    base_grids: tuple[Tensor, Tensor] | None = None,
    grid: Tensor | None = None,
) -> Tensor:
    """Warp ``B×C×H×W`` images in [0, 1] with the WaNet field.

    ``noise``: optional ``B×H×W×2`` U(−1,1) draw for the "cross" (noise) mode; it is added as
    ``strength·noise/(W, H)`` on top of the warp grid (official: ``+ ins/input_height``).
    Samples with strength 0 are returned unchanged (exactly). ``base_grids``: the cached
    :func:`wanet_base_grids` of this field and size; ``grid``: the cached ``1×H×W×2`` grid of a
    strength shared by the whole batch (both are caches, derived from ``field``).
    """
    b, _, h, w = images.shape
    st = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    st = st.expand(b, 1, 1, 1)
    if grid is None:
        identity, displacement = base_grids or wanet_base_grids(field.to(images), h, w)
        st0 = uniform_strength(st)
        if st0 is not None:  # one grid for the batch (the common case)
            grid = _grid_from(identity, displacement, s * st0, 1.0 + (grid_rescale - 1.0) * st0)
        else:
            grid = _grid_from(identity, displacement, s * st, 1.0 + (grid_rescale - 1.0) * st)
    if noise is not None:
        scale = torch.tensor([1.0 / w, 1.0 / h], dtype=images.dtype, device=images.device)
        grid = torch.clamp(grid + st * noise.to(images) * scale, -1, 1)
    out = F.grid_sample(images, grid.expand(b, h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
    return torch.where(st == 0, images, out) if bool((st == 0).any()) else out


class WaNet(TriggerBase):
    """Registered ``wanet`` trigger (see :func:`wanet`); ``mode = "noise"`` adds fresh cross noise.

    The base grids are cached per (H, W, dtype, device) and the grid of a batch-wide strength per
    strength value too (a few entries: training draws one strength per batch)."""

    output_in_range = True  # bilinear sampling with zero padding keeps [0, 1] images in [0, 1]

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        if params.seed is not None:
            gen = torch.Generator().manual_seed(params.seed)
        else:
            gen = self.ctx.generator("wanet-field")
        self.register_buffer("field", wanet_control_field(params.k, gen))
        self._base: PatternCache[tuple[Tensor, Tensor]] = PatternCache()
        self._grids: PatternCache[Tensor] = PatternCache(maxsize=8)

    def _warp(self, images: Tensor, strength: Tensor, noise: Tensor | None) -> Tensor:
        p = self.params
        _, _, h, w = images.shape
        key = (h, w, images.dtype, images.device, tensor_key(self.field))
        base = self._base.get(key, lambda: wanet_base_grids(self.field.to(images), h, w))
        grid = None
        st0 = uniform_strength(strength)
        if st0 is not None:
            grid = self._grids.get(
                (*key, st0), lambda: _grid_from(*base, p.s * st0, 1.0 + (p.grid_rescale - 1.0) * st0)
            )
        return wanet(
            images,
            self.field,
            s=p.s,
            grid_rescale=p.grid_rescale,
            strength=strength,
            noise=noise,
            base_grids=base,
            grid=grid,
        )

    def cross_noise(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        """A fresh ``B×H×W×2`` U(−1,1) draw (the official cross-sample noise)."""
        b, _, h, w = images.shape
        dev = generator.device if generator is not None else images.device
        return (torch.rand(b, h, w, 2, generator=generator, device=dev) * 2 - 1).to(images)

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:
        noise = self.cross_noise(images, generator) if self.params.mode == "noise" else None
        return self._warp(images, strength, noise)

    def pseudo_poison(
        self, images: Tensor, generator: torch.Generator | None = None, strength: float | Tensor = 1.0
    ) -> Tensor:
        """WaNet's noise ("cross") sample: the trigger's warp plus a fresh ``B×H×W×2`` U(−1,1) draw
        divided by (W, H) (official ``grid_temps + ins / input_height``), whatever ``mode`` is set.
        ``B×C×H×W`` in [0, 1] → same; ``strength`` scales warp and noise as in :func:`wanet`."""
        s = as_strength(strength, images)
        noise = self.cross_noise(images, generator)
        return self._warp(images, s, noise).clamp(0.0, 1.0)
