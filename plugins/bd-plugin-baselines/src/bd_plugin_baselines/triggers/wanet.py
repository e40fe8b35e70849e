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

:meth:`WaNet.pseudo_poison` gives the official noise ("cross") samples, the fixed warp plus fresh
noise, which keep their clean labels in WaNet's training (the :class:`~bdcore.protocols.PseudoTrigger`
capability, e.g. the pseudo term of AS-FIBA's Eq. 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bdcore.components import TriggerBase, as_strength


def wanet_control_field(k: int, generator: torch.Generator | None = None) -> Tensor:
    """The official ``ins``: ``1×2×k×k`` U(−1,1) normalised by its mean absolute value (float32)."""
    ins = torch.rand(1, 2, k, k, generator=generator) * 2 - 1
    return ins / torch.mean(torch.abs(ins))


def wanet_grid(field: Tensor, h: int, w: int, *, s: float | Tensor = 0.5, grid_rescale: float | Tensor = 1.0) -> Tensor:
    """``B×H×W×2`` sampling grid (x, y) in [−1, 1] from the ``1×2×k×k`` control field.

    ``s`` and ``grid_rescale`` may be scalars or per-sample ``B×1×1×1`` tensors.
    """
    noise = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys = torch.linspace(-1, 1, h, dtype=field.dtype, device=field.device)
    xs = torch.linspace(-1, 1, w, dtype=field.dtype, device=field.device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    identity = torch.stack((xx, yy), 2)[None]
    scale = torch.tensor([1.0 / w, 1.0 / h], dtype=field.dtype, device=field.device)
    grid = (identity + s * noise * scale) * grid_rescale
    return torch.clamp(grid, -1, 1)


def wanet(
    images: Tensor,
    field: Tensor,
    *,
    s: float = 0.5,
    grid_rescale: float = 1.0,
    strength: float | Tensor = 1.0,
    noise: Tensor | None = None,
) -> Tensor:
    """Warp ``B×C×H×W`` images in [0, 1] with the WaNet field.

    ``noise``: optional ``B×H×W×2`` U(−1,1) draw for the "cross" (noise) mode; it is added as
    ``strength·noise/(W, H)`` on top of the warp grid (official: ``+ ins/input_height``).
    Samples with strength 0 are returned unchanged (exactly).
    """
    b, _, h, w = images.shape
    st = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    f = field.to(device=images.device, dtype=images.dtype)
    if st.numel() == 1 or bool((st == st.flatten()[0]).all()):  # one grid for the batch (common case)
        st0 = st.flatten()[:1].view(1, 1, 1, 1)
        grid = wanet_grid(f, h, w, s=s * st0, grid_rescale=1.0 + (grid_rescale - 1.0) * st0).expand(b, h, w, 2)
    else:
        grid = wanet_grid(f, h, w, s=s * st, grid_rescale=1.0 + (grid_rescale - 1.0) * st)
    st = st.expand(b, 1, 1, 1)
    if noise is not None:
        scale = torch.tensor([1.0 / w, 1.0 / h], dtype=images.dtype, device=images.device)
        grid = torch.clamp(grid + st * noise.to(images) * scale, -1, 1)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return torch.where(st == 0, images, out) if bool((st == 0).any()) else out


class WaNet(TriggerBase):
    """Registered ``wanet`` trigger (see :func:`wanet`); ``mode = "noise"`` adds fresh cross noise."""

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        if params.seed is not None:
            gen = torch.Generator().manual_seed(params.seed)
        else:
            gen = self.ctx.generator("wanet-field")
        self.register_buffer("field", wanet_control_field(params.k, gen))

    def cross_noise(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        """A fresh ``B×H×W×2`` U(−1,1) draw (the official cross-sample noise)."""
        b, _, h, w = images.shape
        dev = generator.device if generator is not None else images.device
        return (torch.rand(b, h, w, 2, generator=generator, device=dev) * 2 - 1).to(images)

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:
        p = self.params
        noise = self.cross_noise(images, generator) if p.mode == "noise" else None
        return wanet(images, self.field, s=p.s, grid_rescale=p.grid_rescale, strength=strength, noise=noise)

    def pseudo_poison(
        self, images: Tensor, generator: torch.Generator | None = None, strength: float | Tensor = 1.0
    ) -> Tensor:
        """WaNet's noise ("cross") sample: the trigger's warp plus a fresh ``B×H×W×2`` U(−1,1) draw
        divided by (W, H) (official ``grid_temps + ins / input_height``), whatever ``mode`` is set.
        ``B×C×H×W`` in [0, 1] → same; ``strength`` scales warp and noise as in :func:`wanet`."""
        p = self.params
        s = as_strength(strength, images)
        noise = self.cross_noise(images, generator)
        return wanet(images, self.field, s=p.s, grid_rescale=p.grid_rescale, strength=s, noise=noise).clamp(0.0, 1.0)
