"""The ``sf-i-net`` trigger: AS-FIBA's learnable frequency-injection network as a bdcore trigger.

``sf_i_net(images, trigger_images, net)`` is the pure function; :class:`SFINetTrigger` holds the network,
the residual decoder D_η and the trigger-image pool (buffers, saved with the stage artifact), trains them
by Eq. 3 in :meth:`fit`, and offers :meth:`pseudo_poison` (Eq. 4) to the ``asfiba`` attack loss.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_asfiba.params import SFINetParams
from bd_plugin_asfiba.sfinet import SFINet, build_sfinet
from bdcore.components import TriggerBase
from bdcore.context import Context, FitContext
from bdcore.errors import ComponentError

#: embedded non-face photographs used as trigger images (faces are excluded: astronaut, grace_hopper)
EMBEDDED_TRIGGERS = ("coffee", "chelsea", "rocket", "motorcycle_left", "china", "flower", "immunohistochemistry")


class SFINetError(ComponentError):
    """Bad SF-I-Net configuration or input."""


def sf_i_net(images: Tensor, trigger_images: Tensor, net: SFINet, strength: Tensor | float = 1.0) -> Tensor:
    """Poison ``B×3×H×W`` images in [0,1] with ``trigger_images`` (``B×3×h×w`` or ``1×3×h×w``, resized to
    H×W bilinearly): ``I + s·(G(I; I_t) − I)``. Sizes that are not multiples of 8 (three scales + 2×2 MCSF)
    are replicate-padded for the network and cropped back. Runs in the network's dtype, returns ``images``'."""
    n, _, h, w = images.shape
    ph, pw = max((-h) % 8, 16 - h), max((-w) % 8, 16 - w)  # ≥ 16 px so the 1/4 scale fits a 5×5 reflect pad
    dtype = next(net.parameters()).dtype
    x = images.to(dtype)
    if ph or pw:
        x = F.pad(x, [0, pw, 0, ph], mode="replicate")
    t = trigger_images.to(dtype)
    if t.shape[-2:] != x.shape[-2:]:
        t = F.interpolate(t, size=x.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    if t.shape[0] == 1 and n > 1 and net.training:  # eval: the net runs a shared trigger once
        t = t.expand(n, -1, -1, -1)
    poisoned = net(x, t)[..., :h, :w].to(images.dtype)
    return images + strength * (poisoned - images)


def _square(arr: np.ndarray, size: int) -> Tensor:
    from bdcore.data.sources import resize_short_side

    img = resize_short_side(arr if arr.ndim == 3 else arr[:, :, None], size)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    h, w = img.shape[:2]
    y0, x0 = (h - size) // 2, (w - size) // 2
    return torch.from_numpy(img[y0 : y0 + size, x0 : x0 + size, :3].copy()).permute(2, 0, 1).float() / 255.0


def load_pool(folder: Path | None, size: int) -> tuple[Tensor, list[str]]:
    """Trigger-image pool ``N×3×size×size`` in [0,1] (centre squares) and the names (cached per folder/size)."""
    pool, names = _load_pool(folder, size)
    return pool.clone(), list(names)


@functools.lru_cache(maxsize=8)
def _load_pool(folder: Path | None, size: int) -> tuple[Tensor, tuple[str, ...]]:
    if folder is None:
        from bdcore.data.embedded import load_scene

        names = list(EMBEDDED_TRIGGERS)
        arrays = [load_scene(n) for n in names]
    else:
        from bd_plugin_asfiba.data import find_images
        from bdcore.data.images import read_image

        files = find_images(folder)
        names = [f.stem for f in files]
        arrays = [read_image(f, 3) for f in files]
    return torch.stack([_square(a, size) for a in arrays]), tuple(names)


def image_loss(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """L_im of Eq. 3 as a batch mean: ``"mse"`` mean (a − b)², ``"l1"`` mean |a − b| (``B×C×H×W`` pair)."""
    return F.mse_loss(a, b) if kind == "mse" else F.l1_loss(a, b)


def visibility_floor(target_psnr: float | None, kind: str) -> float:
    """The per-image floor of the image term for a target PSNR (dB, images in [0,1]): the MSE
    ``10^(−psnr/10)`` for ``"mse"``, the RMS ``10^(−psnr/20)`` for ``"l1"`` (MAE ≤ RMS); 0 for None."""
    if target_psnr is None:
        return 0.0
    return 10.0 ** (-target_psnr / 10.0) if kind == "mse" else 10.0 ** (-target_psnr / 20.0)


def hinged_image_loss(poisoned: Tensor, images: Tensor, kind: str, floor: float) -> Tensor:
    """Image term of Eq. 3 with a visibility floor: mean over images of ``max(L_im(I_p, I), floor)``
    (``B×C×H×W`` pair → scalar). Below the floor an image's term is constant (no gradient), so the
    recovery term alone shapes the residual until ``I_p`` is as visible as the target PSNR allows;
    ``floor = 0`` is the plain term."""
    diff = poisoned - images
    per_image = diff.square().flatten(1).mean(1) if kind == "mse" else diff.abs().flatten(1).mean(1)
    return per_image.clamp_min(floor).mean() if floor > 0 else per_image.mean()


def eq3_loss(
    net: SFINet,
    decoder: torch.nn.Module,
    images: Tensor,
    triggers: Tensor,
    alpha: float,
    kind: str = "mse",
    floor: float = 0.0,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Eq. 3: ``α·L_im(G(I; I_t), I) + (1 − α)·L_im(D_η(I − I_p), I_t)`` (ε bound inside ``net``); the
    image term is floored per image at ``floor`` (see :func:`hinged_image_loss`). ``images`` and
    ``triggers``: ``B×3×H×W`` in [0,1]. Returns the loss and its terms (``image`` is the unfloored L_im)."""
    poisoned = net(images, triggers)
    residual = images - poisoned
    if noise > 0:  # channel noise between G and D_η (steganography noise layer)
        eps = torch.randn(residual.shape, generator=generator, device=residual.device, dtype=residual.dtype)
        residual = residual + noise * eps
    recovered = decoder(residual)
    l_img = hinged_image_loss(poisoned, images, kind, floor)
    l_rec = image_loss(recovered, triggers, kind)
    with torch.no_grad():
        raw = image_loss(poisoned, images, kind)
    return {"loss": alpha * l_img + (1 - alpha) * l_rec, "image": raw, "recover": l_rec}


class SFINetTrigger(TriggerBase):
    """SF-I-Net trigger; ``fit`` trains G_φ and D_η by Eq. 3 on the run's benign LQ faces."""

    learnable: ClassVar[bool] = True
    needs_victim: ClassVar[bool] = False
    differentiable: ClassVar[bool] = True

    def __init__(self, params: SFINetParams | None = None, ctx: Context | None = None) -> None:
        p = params or SFINetParams()
        super().__init__(p, ctx)
        self.net, self.decoder = build_sfinet(p.preset, p.epsilon)
        folder = None if p.trigger_dir is None else self.ctx.resolve_path(p.trigger_dir)
        pool, names = load_pool(folder, p.pool_size)
        key = p.trigger_image
        matches = [i for i, n in enumerate(names) if n == key or n == Path(key).stem]
        if not matches:
            raise SFINetError(f"sf-i-net: trigger_image {key!r} is not in the pool ({', '.join(names)})")
        if len(names) < 2:
            raise SFINetError("sf-i-net: the trigger pool needs at least 2 images (1 trigger + pseudo triggers)")
        idx = matches[0]
        self.register_buffer("trigger_image", pool[idx : idx + 1].clone())
        self.register_buffer("pseudo_pool", torch.cat([pool[:idx], pool[idx + 1 :]]).clone())
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.pool_names = names
        self.fit_stats: dict[str, float] = {}
        if p.weights is not None:
            from bdcore.io.checkpoint import extract_state_dict, load_weights

            state = extract_state_dict(load_weights(self.ctx.resolve_path(p.weights), sha256=p.sha256))
            missing, _ = self.load_state_dict(state, strict=False)
            if any(k.startswith("net.") for k in missing):
                raise SFINetError(f"{p.weights}: not an SF-I-Net ({p.preset}) state dict; missing e.g. {missing[0]}")
            self.fitted.fill_(True)

    # -------------------------------------------------------------- injection
    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:
        self.net.eval()  # BN of the decouplers uses its running statistics outside fit
        return sf_i_net(images, self.trigger_image, self.net, strength)

    def pseudo_poison(
        self, images: Tensor, generator: torch.Generator | None = None, strength: Tensor | float = 1.0
    ) -> Tensor:
        """Eq. 4: ``G(I; I'_t)`` with a pseudo trigger drawn per image from the pool (``B×3×H×W`` → same)."""
        self.net.eval()
        idx = torch.randint(len(self.pseudo_pool), (images.shape[0],), generator=generator)
        return sf_i_net(images, self.pseudo_pool[idx.to(self.pseudo_pool.device)], self.net, strength).clamp(0, 1)

    # -------------------------------------------------------------- training (Eq. 3)
    def _trigger_batch(self, n: int, h: int, w: int, gen: torch.Generator) -> Tensor:
        """Random crops (≥ half the pool side) of random pool images, flipped at random, resized to H×W."""
        pool = torch.cat([self.trigger_image, self.pseudo_pool])
        s = pool.shape[-1]
        idx = torch.randint(len(pool), (n,), generator=gen)
        side = torch.randint(s // 2, s + 1, (n,), generator=gen)
        out = []
        for i in range(n):  # n crops of different sizes: cheap, once per step
            k = int(side[i])
            y0, x0 = (int(torch.randint(s - k + 1, (1,), generator=gen)) for _ in range(2))
            crop = pool[int(idx[i]), :, y0 : y0 + k, x0 : x0 + k]
            if bool(torch.rand((), generator=gen) < 0.5):
                crop = crop.flip(-1)
            out.append(F.interpolate(crop[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True))
        return torch.cat(out)

    def fit(self, ctx: FitContext) -> None:
        p: SFINetParams = self.params
        if bool(self.fitted):
            ctx.ctx.log("sf-i-net: weights given, skipping fit")
            return
        steps = p.steps if p.steps is not None else ctx.steps
        if steps <= 0:
            raise SFINetError("sf-i-net: needs fit steps > 0 (set [attack] fit_steps or params.steps) or weights")
        device = ctx.ctx.device
        self.to(device)
        params = list(self.net.parameters()) + list(self.decoder.parameters())
        opt = torch.optim.Adam(params, lr=p.lr)
        gen = ctx.ctx.generator("sf-i-net", "triggers")
        batches = ctx.batches(generator_salt="sf-i-net")
        floor = visibility_floor(p.target_psnr, p.loss)
        self.net.train()
        self.decoder.train()
        t0, seen = time.perf_counter(), 0
        terms: dict[str, Tensor] = {}
        with ctx.ctx.progress("sf-i-net fit", total=steps) as bar:  # the engine's progress and trackers
            for step in range(steps):
                images = next(batches)["input"].to(device)
                triggers = self._trigger_batch(images.shape[0], *images.shape[-2:], gen).to(device)
                terms = eq3_loss(self.net, self.decoder, images, triggers, p.alpha, p.loss, floor, p.channel_noise, gen)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                opt.step()
                seen += images.shape[0]
                bar.update(step + 1, **{k: v.detach() for k, v in terms.items()})
        last = {k: float(v.detach()) for k, v in terms.items()}
        self.fit_stats = {**last, "images_per_s": seen / max(time.perf_counter() - t0, 1e-9)}
        self.net.eval()
        self.decoder.eval()
        self.fitted.fill_(True)

    def extra_repr(self) -> str:
        return f"preset={self.params.preset}, epsilon={self.params.epsilon:.5f}, pool={len(self.pool_names)}"
