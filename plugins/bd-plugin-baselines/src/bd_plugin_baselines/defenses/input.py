"""Input-preprocessing defenses: Gaussian blur, Gaussian noise, JPEG, bit-depth squeezing.

Pure batched functions (``B×C×H×W`` float in [0, 1] → same shape, device and dtype)
plus thin :class:`InputTransformDefense` wrappers. These are the test-time
preprocessings of BAvAFT++ Table V (blur σ, noise σ, JPEG quality, bit depth); the
engine's ``sweep`` over the one numeric param of each gives the table's grid.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bd_plugin_baselines.params_defenses import BitSqueezeParams, GaussianBlurParams, GaussianNoiseParams, JpegParams
from bdcore.components import DefenseOutcome, InputTransformDefense
from bdcore.context import Context, DefenseContext
from bdcore.errors import ComponentError


class InputDefenseError(ComponentError):
    """An input defense got something it cannot transform."""


def _check_images(images: Tensor, who: str) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise InputDefenseError(f"{who}: images must be a B×C×H×W tensor, got {getattr(images, 'shape', type(images))}")


def blur_kernel_size(sigma: float, truncate: float = 4.0) -> int:
    """scipy ``gaussian_filter``'s kernel side: ``2·int(truncate·σ + 0.5) + 1``."""
    return 2 * int(truncate * sigma + 0.5) + 1


def gaussian_blur(images: Tensor, sigma: float, *, kernel_size: int | None = None, truncate: float = 4.0) -> Tensor:
    """Separable Gaussian blur (kornia), mirrored borders; ``sigma = 0`` returns a copy.

    Args:
        images: ``B×C×H×W`` in [0, 1].
        sigma: std in pixels.
        kernel_size: odd kernel side; None = :func:`blur_kernel_size` (scipy's rule).
    """
    import kornia

    _check_images(images, "gaussian-blur")
    if sigma <= 0:
        return images.clone()
    k = kernel_size if kernel_size is not None else blur_kernel_size(sigma, truncate)
    # torch's reflect padding needs pad < size: shrink the kernel for tiny images
    k = min(k, 2 * (min(images.shape[-2:]) - 1) + 1)
    out = kornia.filters.gaussian_blur2d(images, (k, k), (float(sigma), float(sigma)), border_type="reflect")
    return out.clamp(0.0, 1.0)


def gaussian_noise(
    images: Tensor, sigma: float, *, generator: torch.Generator | None = None, clamp: bool = True
) -> Tensor:
    """``x + σ·n``, ``n ~ N(0, I)`` drawn from ``generator`` (on the CPU, then moved, so
    a seed gives the same noise on every device); clipped to [0, 1] if ``clamp``."""
    _check_images(images, "gaussian-noise")
    noise = torch.randn(images.shape, generator=generator, dtype=torch.float32, device="cpu")
    out = images + sigma * noise.to(device=images.device, dtype=images.dtype)
    return out.clamp(0.0, 1.0) if clamp else out


def jpeg(images: Tensor, quality: int) -> Tensor:
    """A real JPEG encode/decode round trip (libjpeg through torchvision.io, 4:2:0 chroma;
    byte-identical to PIL's ``save(format="JPEG", quality=q)``, golden-tested).

    Inputs are rounded to 8 bits first (JPEG is an 8-bit codec). 1 or 3 channels.
    """
    from torchvision.io import decode_jpeg, encode_jpeg

    _check_images(images, "jpeg")
    if images.shape[1] not in (1, 3):
        raise InputDefenseError(f"jpeg: needs 1 or 3 channels, got {images.shape[1]}")
    if not 1 <= int(quality) <= 100:
        raise InputDefenseError(f"jpeg: quality must be in 1..100, got {quality}")
    u8 = (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    encoded = encode_jpeg(list(u8.unbind(0)), quality=int(quality))  # the codec takes a list: one call per batch
    decoded = torch.stack(decode_jpeg(encoded))
    return (decoded.to(dtype=images.dtype) / 255.0).to(images.device)


def bit_squeeze(images: Tensor, bits: int) -> Tensor:
    """Colour-depth reduction (feature squeezing, Xu et al. NDSS 2018):
    ``round(x·(2^b − 1)) / (2^b − 1)``."""
    _check_images(images, "bit-squeeze")
    if not 1 <= int(bits) <= 8:
        raise InputDefenseError(f"bit-squeeze: bits must be in 1..8, got {bits}")
    levels = float(2 ** int(bits) - 1)
    return torch.round(images.clamp(0, 1) * levels) / levels


class GaussianBlur(InputTransformDefense):
    """Test-time Gaussian blur of every input."""

    params: GaussianBlurParams

    def transform(self, images: Tensor) -> Tensor:
        p = self.params
        return gaussian_blur(images, p.sigma, kernel_size=p.kernel_size, truncate=p.truncate)


class GaussianNoise(InputTransformDefense):
    """Test-time additive Gaussian noise; seeded from the run seed (one stream per defense)."""

    params: GaussianNoiseParams

    def __init__(self, params: GaussianNoiseParams, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self._generator = self.ctx.generator("gaussian-noise", params.sigma)

    def transform(self, images: Tensor) -> Tensor:
        return gaussian_noise(images, self.params.sigma, generator=self._generator, clamp=self.params.clamp)

    def defend(self, victim: Any, ctx: DefenseContext) -> DefenseOutcome:
        self._generator = self.ctx.generator("gaussian-noise", self.params.sigma)  # restart the stream per run
        return DefenseOutcome(transform=self.transform)


class Jpeg(InputTransformDefense):
    """Test-time JPEG compression at ``quality``."""

    params: JpegParams

    def transform(self, images: Tensor) -> Tensor:
        return jpeg(images, self.params.quality)


class BitSqueeze(InputTransformDefense):
    """Test-time colour-depth reduction to ``bits`` bits per channel."""

    params: BitSqueezeParams

    def transform(self, images: Tensor) -> Tensor:
        return bit_squeeze(images, self.params.bits)
