"""Image operations: take them from kornia (or torch); bdcore adds only what neither offers.

Every operation below is batched (``B×C×H×W``), differentiable unless noted, and runs on any
device. Prefer these to hand-written loops or per-image PIL/OpenCV calls; write your own only
for what none of them does, and say why in a comment (as :mod:`bdcore.ops.blockdct` does).

| operation | use | borders and other defaults |
|---|---|---|
| Gaussian blur | ``kornia.filters.gaussian_blur2d(x, (k, k), (s, s))``; ``sigma`` may be a ``B×2`` tensor (one σ per image) | ``border_type="reflect"`` by default: mirror *without* repeating the edge pixel (numpy ``"reflect"``, scipy ``"mirror"``); needs ``k // 2 < H`` and ``< W`` |
| box and median blur, any kernel | ``kornia.filters.box_blur``, ``median_blur``, ``filter2d(x, kernel)`` | ``border_type="reflect"`` by default; also ``"replicate"``, ``"circular"``, ``"constant"`` (zeros) |
| gradients, edges | ``kornia.filters.sobel``, ``spatial_gradient``, ``laplacian`` | ``sobel`` and ``spatial_gradient`` pad by *replicating* the edge pixel; ``laplacian`` reflects |
| resize | ``kornia.geometry.transform.resize(x, size, antialias=True)`` or ``F.interpolate`` | ``antialias=False`` by default in both: pass ``antialias=True`` when downscaling |
| warps (WaNet, rotations) | ``kornia.geometry.transform.warp_affine``, ``rotate``, ``remap``; ``F.grid_sample`` | ``padding_mode="zeros"`` by default (black borders): pass ``"border"`` or ``"reflection"`` where the border shows |
| colour spaces | ``kornia.color.rgb_to_ycbcr`` (JPEG full range in [0, 1] units, chroma offset 0.5), ``rgb_to_grayscale`` (BT.601 weights) | :mod:`bdcore.ops.blockdct` works in 0..255 units, chroma offset 128 |
| differentiable JPEG | ``kornia.enhance.jpeg_codec_differentiable(x, quality)``, ``quality`` a ``B`` tensor | pads bottom and right to a multiple of 16 by *replicating* the edge, then crops back |
| real JPEG (a defense) | ``torchvision.io.encode_jpeg`` / ``decode_jpeg`` (bd-plugin-baselines' ``jpeg``) | 8-bit, not differentiable |
| SSIM, PSNR, MS-SSIM | :func:`bdcore.metrics.image.ssim` (kornia's SSIM on the valid region, as scikit-image), ``psnr``, ``ms_ssim`` | one value per image (``B``) |
| random augmentation | ``kornia.augmentation`` | draws from torch's *global* RNG: in a seeded component draw the parameters from ``ctx.generator(...)`` and call the functional operation |
| FFT, frequency bands | ``torch.fft``; :func:`bdcore.ops.frequency.low_band_mask` | unshifted frequency grids |
| block DCT (JPEG-style) | :mod:`bdcore.ops.blockdct`: unnormalised DCT-II per ``n×n`` block of full-range YCbCr, 0..255 | neither kornia nor torch offers it |

Padding is where ports of reference code most often differ by a few pixels: pass
``border_type`` / ``padding_mode`` explicitly and name it in the docstring. scipy.ndimage's
default ``mode="reflect"`` *repeats* the edge pixel (numpy's ``"symmetric"``), which no kornia
``border_type`` does; kornia's ``"reflect"`` is scipy's ``"mirror"``. A golden test against
scipy therefore uses ``mode="mirror"`` (and ``truncate = radius / sigma`` for the same Gaussian
kernel), e.g. the test ``bdcore new-plugin`` writes for its defense.
"""
