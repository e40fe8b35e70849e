"""The diffusion prior: a diffusers ``UNet2DModel`` (ε-prediction, DDPM linear schedule).

Either loaded from a local diffusers folder (``config.json`` + weights) / a state-dict checkpoint,
or trained here as a small DDPM on the run's clean training images and cached on disk under a key
of (data, params) so every defense of a run — and later runs — reuse it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_diffpure.errors import DiffpureError
from bd_plugin_diffpure.schedule import alphas_cumprod
from bdcore.observe import null_stage


def small_unet(size: int, channels: int = 3, widths: tuple[int, ...] = (32, 64, 64), attention: bool = False) -> Any:
    """A tiny UNet2DModel (≈1 M params at widths (32, 64, 64)); ``size`` must be divisible by 2^(len−1)."""
    from diffusers import UNet2DModel

    n = len(widths)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=1,
        block_out_channels=tuple(widths),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=min(32, math.gcd(*widths)),
    )


def load_unet(path: Path, *, sha256: str | None = None, config: dict[str, Any] | None = None) -> Any:
    """Load a UNet2DModel from a local diffusers folder or a ``.pt``/``.safetensors`` state dict.

    A folder (``config.json`` + weights) is read by hand — ``from_config`` and a local state dict — so no
    call can reach the Hub; a file needs ``config`` (the UNet2DModel kwargs) and is read with ``bdcore``'s ``load_weights``.
    """
    from diffusers import UNet2DModel

    if path.is_dir():  # a local diffusers folder, read by hand so nothing can reach the Hub
        cfg_file = path / "config.json"
        weights = [path / n for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")]
        found = [w for w in weights if w.is_file()]
        if not cfg_file.is_file() or not found:
            raise DiffpureError(f"{path}: not a diffusers UNet folder (need config.json and {weights[0].name})")
        model = UNet2DModel.from_config(json.loads(cfg_file.read_text()))
        if found[0].suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(found[0]))
        else:
            state = torch.load(found[0], map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model
    if not path.is_file():
        raise DiffpureError(f"{path}: diffusion weights not found (give a diffusers folder or a state-dict file)")
    from bdcore.io.checkpoint import extract_state_dict, load_weights

    if config is None:
        cfg_file = path.with_suffix(".json")
        if not cfg_file.is_file():
            raise DiffpureError(f"{path}: a state-dict checkpoint needs the UNet config ({cfg_file} or `unet_config`)")
        config = json.loads(cfg_file.read_text())
    model = UNet2DModel(**config)
    model.load_state_dict(extract_state_dict(load_weights(path, sha256=sha256)))
    return model


def eps_fn(unet: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """Wrap a UNet2DModel as ``(x, t) → ε`` (first C channels if it predicts 2C, e.g. learned σ)."""

    def f(x: Tensor, t: Tensor) -> Tensor:
        out = unet(x, t).sample
        return out[:, : x.shape[1]]

    return f


def cache_key(images: Tensor, params: dict[str, Any]) -> str:
    """sha256 of the training images (uint8-quantised, so float noise does not change it) and the params."""
    h = hashlib.sha256()
    q = (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    h.update(str(tuple(q.shape)).encode())
    h.update(q.numpy().tobytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def train_ddpm(
    images: Tensor,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    widths: tuple[int, ...] = (32, 64, 64),
    attention: bool = False,
    flip: bool = True,
    num_train_timesteps: int = 1000,
    t_max: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    progress: Callable[..., Any] | None = None,
) -> Any:
    """Train a small ε-prediction DDPM on ``images`` (``N×C×H×W`` in [0, 1]); returns the UNet (eval mode).

    Loss: MSE(ε̂(√ᾱ_t x0 + √(1−ᾱ_t) ε, t), ε) with t uniform (Ho et al. 2020); AdamW, cosine lr decay.
    ``t_max``: sample t only in [0, t_max] — a purification-only prior (for ``t_start ≤ t_max``) that trains
    several times faster on a CPU; None trains every t (needed for DDNM from pure noise).
    ``progress``: the engine's ``Context.progress`` (a bar, plain lines and tracker curves of the
    loss); without it, ``log`` gets a line every 100 steps.
    """
    if images.ndim != 4 or images.shape[0] < 1:
        raise DiffpureError(f"DDPM fit needs N×C×H×W images, got {list(images.shape)}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dev = images.device
    unet = small_unet(images.shape[-1], images.shape[1], widths, attention).to(dev)
    acp = alphas_cumprod(num_train_timesteps).to(dev, torch.float32)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr * 0.05)
    data = images * 2 - 1
    unet.train()
    t0 = time.time()
    bar = progress("ddpm fit", total=steps) if progress is not None else null_stage()
    with bar:
        for step in range(steps):
            idx = torch.randint(0, data.shape[0], (batch_size,), generator=gen).to(dev)
            x0 = data[idx]
            if flip:
                fl = (torch.rand(batch_size, generator=gen) < 0.5).to(dev)
                x0 = torch.where(fl.view(-1, 1, 1, 1), x0.flip(-1), x0)
            t = torch.randint(
                0, (t_max + 1) if t_max is not None else num_train_timesteps, (batch_size,), generator=gen
            )
            t = t.to(dev)
            noise = torch.randn(x0.shape, generator=gen).to(dev)
            a = acp[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
            loss = F.mse_loss(unet(xt, t).sample, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                bar.update(step + 1, loss=loss.detach())
            elif log is not None and (step % 100 == 0 or step == steps - 1):
                log(f"ddpm step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f}s)")
    unet.eval()
    return unet


def fit_or_load_ddpm(
    images: Tensor,
    params: dict[str, Any],
    cache_dir: Path,
    log: Callable[[str], None] | None = None,
    progress: Callable[..., Any] | None = None,
) -> Any:
    """Train (``train_ddpm(**params)``) or reuse a cached small DDPM saved as a diffusers folder."""
    folder = cache_dir / f"ddpm-{cache_key(images, params)}"
    if (folder / "config.json").is_file():
        if log:
            log(f"reusing cached DDPM {folder}")
        return load_unet(folder).to(images.device).eval()
    unet = train_ddpm(images, log=log, progress=progress, **params)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".tmp")
    unet.save_pretrained(str(tmp))
    tmp.rename(folder)
    return unet


def iter_images(batches: Iterator[dict[str, Any]], limit: int) -> Tensor:
    """Collect up to ``limit`` images from an iterator of batches (for the DDPM fit)."""
    out: list[Tensor] = []
    n = 0
    for b in batches:
        out.append(b["input"])
        n += b["input"].shape[0]
        if n >= limit:
            break
    return torch.cat(out)[:limit]
