"""The input defenses ``ddnm-sr``, ``ddnm-colorize``, ``two-stage`` (thin wrappers over :mod:`purify`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from bd_plugin_diffpure import purify as P
from bd_plugin_diffpure.errors import DiffpureError
from bd_plugin_diffpure.model import eps_fn, fit_or_load_ddpm, load_unet
from bd_plugin_diffpure.pgd import pgd
from bd_plugin_diffpure.schedule import alphas_cumprod
from bdcore.components import DefenseBase, DefenseOutcome

_MEMO: dict[tuple[str, str], Any] = {}  # in-process reuse of a loaded/fitted prior across a run's defenses


def _collect(dataset: Any, limit: int, device: str) -> tuple[Tensor, Tensor | None]:
    n = min(len(dataset), limit)
    samples = [dataset[i] for i in range(n)]
    x = torch.stack([s["input"] for s in samples]).to(device)
    t = samples[0].get("target")
    y = torch.as_tensor([s["target"] for s in samples]).to(device) if isinstance(t, int) else None
    return x, y


class _DDNMDefense(DefenseBase):
    """Loads or fits the diffusion prior in :meth:`defend`, then returns a batched purification transform."""

    stage: ClassVar[str] = "input"

    def _cache_dir(self) -> Path:
        p = self.params
        if p.cache_dir is not None:
            return self.ctx.resolve_path(p.cache_dir)
        if self.ctx.cache_dir is not None:  # shared by the runs of one output root
            return self.ctx.cache_dir / "diffpure-ddpm"
        if self.ctx.work_dir is not None:
            return Path(self.ctx.work_dir) / "diffpure-ddpm"
        return Path(os.environ.get("BDCORE_CACHE", Path.home() / ".cache" / "bdcore")) / "diffpure"

    def prior(self, defense_ctx: Any) -> Any:
        p = self.params
        dev = self.ctx.device
        if p.model is not None:
            path = self.ctx.resolve_path(p.model)
            key = ("file", str(path))
            if key not in _MEMO:
                _MEMO[key] = load_unet(path, sha256=p.sha256, config=p.unet_config).to(dev).eval()
            return _MEMO[key]
        if defense_ctx is None:
            raise DiffpureError(f"{self.ctx.component}: no `model` given and no clean data to fit a DDPM on")
        images, _ = _collect(defense_ctx.clean_train, p.fit_images, dev)
        fit = {
            "steps": p.fit_steps,
            "batch_size": p.fit_batch_size,
            "lr": p.fit_lr,
            "widths": tuple(p.fit_widths),
            "seed": self.ctx.seed,
        }
        if p.fit_t_max is not None:
            if p.t_start is None or p.t_start > p.fit_t_max:
                raise DiffpureError(f"{self.ctx.component}: fit_t_max = {p.fit_t_max} needs t_start <= fit_t_max")
            fit["t_max"] = p.fit_t_max
        from bd_plugin_diffpure.model import cache_key

        key = ("fit", cache_key(images, fit))
        if key not in _MEMO:
            _MEMO[key] = fit_or_load_ddpm(images, fit, self._cache_dir(), log=self.ctx.log, progress=self.ctx.progress)
        return _MEMO[key]

    def _sampler(self) -> dict[str, Any]:
        p = self.params
        return dict(P._sampler_kwargs(p), batch_size=p.batch_size, add_noise=p.add_noise)

    def make_transform(self, unet: Any, scale: int | None) -> Any:
        raise NotImplementedError

    def choose_scale(self, victim: Any, defense_ctx: Any, eps: Any, acp: Tensor) -> tuple[int, dict[str, float]]:
        p = self.params
        if not getattr(p, "select_scale", False):
            return getattr(p, "scale", 1), {}
        if defense_ctx is None:
            raise DiffpureError(f"{self.ctx.component}: select_scale needs the defender's clean data")
        x, y = _collect(defense_ctx.clean_train, p.select_images, self.ctx.device)
        if y is None:
            raise DiffpureError(f"{self.ctx.component}: select_scale needs integer identity targets (face-id data)")

        def classify(v: Tensor) -> Tensor:
            out = victim.predict(v)
            return out["output"] if isinstance(out, dict) else out

        victim.eval()
        adv = pgd(classify, x, y, eps=p.select_eps / 255, alpha=p.select_alpha / 255, steps=p.select_iters)
        gen_seed = self.ctx.generator(p.seed_salt, "select").initial_seed()

        def at(v: Tensor, s: int) -> Tensor:
            return self.stage_fn(v, s, eps, acp, torch.Generator().manual_seed(gen_seed))

        s, table = P.select_scale(classify, x, y, adv, at, tuple(p.scales), p.max_clean_drop)
        extra = {f"select_s{k}_clean": c for k, (c, _) in table.items()}
        extra.update({f"select_s{k}_adv": a for k, (_, a) in table.items()})
        extra["selected_scale"] = float(s)
        self.ctx.log(f"scale selection: {table} -> {s}")
        return s, extra

    def stage_fn(self, images: Tensor, scale: int, eps: Any, acp: Tensor, gen: torch.Generator) -> Tensor:
        raise NotImplementedError

    def defend(self, victim: Any, ctx: Any) -> DefenseOutcome:
        unet = self.prior(ctx)
        eps = eps_fn(unet)
        acp = alphas_cumprod(int(getattr(unet.config, "num_train_timesteps", None) or 1000)).to(
            self.ctx.device, torch.float32
        )
        scale, extra = self.choose_scale(victim, ctx, eps, acp)
        seed = self.ctx.generator(self.params.seed_salt).initial_seed()

        @torch.no_grad()
        def transform(images: Tensor) -> Tensor:
            # a fresh generator per call: the same batch is purified the same way (deterministic)
            return self.stage_fn(images, scale, eps, acp, torch.Generator().manual_seed(seed))

        return DefenseOutcome(transform=transform, extra=extra)


class DDNMSR(_DDNMDefense):
    """``ddnm-sr``: downscale by s (average pooling) and DDNM super-resolve."""

    def stage_fn(self, images: Tensor, scale: int, eps: Any, acp: Tensor, gen: torch.Generator) -> Tensor:
        return P.purify_sr(images, scale, eps, acp, generator=gen, **self._sampler())


class DDNMColorize(_DDNMDefense):
    """``ddnm-colorize``: grey (channel mean) and DDNM re-colorize."""

    def stage_fn(self, images: Tensor, scale: int, eps: Any, acp: Tensor, gen: torch.Generator) -> Tensor:
        return P.purify_colorize(images, eps, acp, generator=gen, **self._sampler())


class TwoStage(_DDNMDefense):
    """``two-stage``: ``ddnm-sr`` then ``ddnm-colorize`` (Lim, Hong & Lee)."""

    def stage_fn(self, images: Tensor, scale: int, eps: Any, acp: Tensor, gen: torch.Generator) -> Tensor:
        return P.purify_two_stage(images, scale, eps, acp, generator=gen, **self._sampler())
