"""Top-K frequency selection with reweighting (BAvAFT++ Algorithm 1) and the preprocessing
sensitivity of each trigger frequency (BAvAFT++ Eq. 17)."""

from __future__ import annotations

import torch
from torch import Tensor

from bd_plugin_bavaft.dct import image_to_dct


def reweight_factors(k: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """``src_i = ((K−1−i)/(K−1) + 1/2)^{1/2}`` for rank i = 0 … K−1 (paper Alg. 1; √1.5 … √0.5)."""
    i = torch.arange(k, dtype=torch.float64)
    src = ((k - 1 - i) / max(k - 1, 1) + 0.5).sqrt() if k > 1 else torch.ones(1, dtype=torch.float64)
    return src.to(dtype=dtype, device=device)


def topk_reweight_mask(importance: Tensor, k: int, *, reweight: bool = True, largest_kept: bool = False) -> Tensor:
    """Multiplier ``M`` (same shape as ``importance``, ``…×N``) so that ``mT·M`` is Algorithm 1's output.

    With ``largest_kept=False`` (BAvAFT++: importance = sensitivity I), the N−K entries with the
    **largest** I become 0 and the K kept ones, ranked by ascending I, are scaled by
    :func:`reweight_factors`. With ``largest_kept=True`` (BAvAFT's learned head) the K largest are kept.
    ``reweight=False`` gives a 0/1 mask.
    """
    n = importance.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    order = torch.argsort(importance, dim=-1, descending=largest_kept, stable=True)
    per_rank = torch.zeros(n, dtype=importance.dtype, device=importance.device)
    per_rank[:k] = reweight_factors(k, dtype=importance.dtype, device=importance.device) if reweight else 1.0
    mask = torch.zeros_like(importance)
    return mask.scatter(-1, order, per_rank.expand_as(importance).contiguous())


def _jpeg(images: Tensor, quality: Tensor) -> Tensor:
    import kornia

    return kornia.enhance.jpeg_codec_differentiable(images.clamp(0, 1), quality)


def preprocess_sample(
    images: Tensor, kind: str, generator: torch.Generator | None, *, per_image: bool = True
) -> Tensor:
    """One random preprocessing ``t(x|α)`` from BAvAFT++ (degrees from code ``_v32``), batched, [0, 1].

    ``blur``: 5×5 Gaussian, σ ~ U(0.4, 1.0); ``noise``: σ ~ U(0.04, 0.1); ``jpeg``: quality ∈ {10, …, 90};
    ``identity``. One degree per image, or (``per_image=False``) one degree and one noise field for the
    whole batch so that each image's result does not depend on the batch it sits in.
    """
    import kornia

    b = images.shape[0]
    dev = images.device
    u = torch.rand(b if per_image else 1, generator=generator, device="cpu").to(dev).expand(b)
    if kind == "blur":
        sigma = (0.4 + 0.6 * u).to(images.dtype)
        return kornia.filters.gaussian_blur2d(images, (5, 5), torch.stack([sigma, sigma], -1), border_type="reflect")
    if kind == "noise":
        sigma = (0.04 + 0.06 * u).view(-1, 1, 1, 1).to(images.dtype)
        shape = images.shape if per_image else (1, *images.shape[1:])
        noise = torch.randn(shape, generator=generator, device="cpu", dtype=images.dtype).to(dev)
        return images + sigma * noise
    if kind == "jpeg":
        q = (10 * torch.randint(1, 10, (b if per_image else 1,), generator=generator, device="cpu")).expand(b)
        q = q.to(dev, images.dtype)
        return _jpeg(images, q)
    if kind == "identity":
        return images
    raise ValueError(f"unknown preprocessing {kind!r}")


def frequency_sensitivity(
    pseudo_poisoned: Tensor,
    injected: Tensor,
    indices: Tensor,
    *,
    kinds: tuple[str, ...] = ("blur", "noise", "jpeg"),
    generator: torch.Generator | None = None,
    tiny: float = 1e-6,
    clean: Tensor | None = None,
) -> Tensor:
    """Eq. 17: ``I = Π_t Inverse-OR(Σ_patches |(DCT(t(x̃_p)) − DCT(x̃_p)) / (OR(g)⊙w)|)``.

    The numerator is the change of the whole image's coefficients, which the image content dominates
    (``README``: it ranks slots almost inversely to how much of a trigger there survives). With ``clean`` = x
    (ours) the numerator is the change of the trigger's own coefficients instead,
    ``(DCT(t(x̃_p)) − DCT(t(x))) − (DCT(x̃_p) − DCT(x))``, with one draw of t for x̃_p and x.

    Args:
        pseudo_poisoned: ``B×3×H×W`` x̃_p in [0, 1] (all N frequencies active).
        injected: ``B×3×gh×gw×N`` the injected coefficients OR(g)⊙w at the N slots.
        indices: ``N`` raster positions of the slots.
        clean: ``B×3×H×W`` x, for the trigger-only numerator; None = Eq. 17 as written.
    Returns:
        ``B×3×N`` sensitivity (higher = more fragile). Both DCTs on the same 0–255 scale (the
        code's 255× scale bug is avoided, methods.md §2.2).
    """
    b = pseudo_poisoned.shape[0]
    images = pseudo_poisoned if clean is None else torch.cat([pseudo_poisoned, clean])
    coeffs = image_to_dct(images, quantize=False).flatten(-2)[..., indices]
    base = coeffs[:b] if clean is None else coeffs[:b] - coeffs[b:]
    sens = torch.ones(b, 3, injected.shape[-1], dtype=base.dtype, device=base.device)
    denom = injected.abs().clamp_min(tiny)
    for kind in kinds:
        # one degree / noise field for the whole batch (x̃_p and x alike)
        moved = image_to_dct(preprocess_sample(images, kind, generator, per_image=False), quantize=False)
        moved = moved.flatten(-2)[..., indices]
        after = moved[:b] if clean is None else moved[:b] - moved[b:]
        rel = ((after - base).abs() / denom).sum(dim=(2, 3))
        sens = sens * rel
    return sens
