"""``p-baiqa`` (poison-label) and ``c-baiqa`` (clean-label) data-poisoning attacks (methods.md §1.4–1.5)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_baiqa.params import CBaiqaParams, PBaiqaParams
from bd_plugin_baiqa.util import BaiqaError, scores
from bdcore.components import AttackLossBase
from bdcore.context import ItemsContext

ALPHA_LEVELS = (0.25, 0.5, 0.75, 1.0)


def sample_alpha(
    n: int, strategy: str, *, probs: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4), generator: torch.Generator | None = None
) -> Tensor:
    """``n`` trigger strengths. ``"code"``: |α| from {.25,.5,.75,1} with ``probs``, sign ±1 with p .5;
    ``"uniform-discrete"``: the 8 values ±{.25,…,1} equally likely; ``"continuous"``: U[−1, 1]."""
    if strategy == "continuous":
        return torch.rand(n, generator=generator) * 2 - 1
    p = torch.tensor(probs if strategy == "code" else (0.25,) * 4, dtype=torch.float64)
    mag = torch.tensor(ALPHA_LEVELS)[torch.multinomial(p, n, replacement=True, generator=generator)]
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    return mag * sign


class PBaiqa(AttackLossBase):
    """Poison-label BAIQA: α from the ablation's strategy, label y + α·Δy (not clipped by default)."""

    threat_model: ClassVar[str] = "data-poisoning"  # type: ignore[assignment]

    params: PBaiqaParams

    @property
    def target_description(self) -> str:  # type: ignore[override]
        return (
            f"a trigger of strength α moves the predicted quality score by α·Δy (Δy = {self.params.delta_y:g}); "
            "without it, the scores stay accurate"
        )

    def sample_strength(self, batch: dict[str, Any], generator: torch.Generator | None) -> Tensor:
        x = batch["input"]
        a = sample_alpha(x.shape[0], self.params.sampling, probs=self.params.probs, generator=generator)
        return a.to(dtype=x.dtype, device=x.device)

    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:
        y = torch.as_tensor(batch["target"], dtype=strength.dtype, device=strength.device).reshape(-1)
        out = y + strength.reshape(-1) * self.params.delta_y
        if self.params.clip_label is not None:
            out = out.clamp(*self.params.clip_label)
        return out


def random_views(
    images: Tensor,
    views: int,
    *,
    crop: float = 1.0,
    size: int | None = None,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``views`` random views of every image, stacked view-major: ``B×C×H×W`` → ``(V·B)×C×S×S'``.

    A view is a random crop of side ``S = round(crop·H)`` × ``S' = round(crop·W)`` — or ``size`` × ``size``
    pixels when given (clipped to the image) — with offsets uniform over the valid positions, independent
    per image and view, followed, when ``flip``, by a horizontal flip with probability ½: the official
    C-BAIQA EOT transform (a random training-size crop + flip of the whole image).
    Built by one gather, so gradients flow back to ``images``."""
    b, c, h, w = images.shape
    if size is not None:
        sh, sw = min(size, h), min(size, w)
    else:
        sh, sw = max(1, round(crop * h)), max(1, round(crop * w))
    dev = images.device
    y0 = torch.randint(0, h - sh + 1, (views, b), generator=generator).to(dev)
    x0 = torch.randint(0, w - sw + 1, (views, b), generator=generator).to(dev)
    flips = (
        (torch.rand(views, b, generator=generator) < 0.5).to(dev) if flip else torch.zeros(views, b, dtype=torch.bool)
    )
    rows = y0[..., None] + torch.arange(sh, device=dev)  # V×B×S
    ar = torch.arange(sw, device=dev)
    cols = x0[..., None] + torch.where(flips.to(dev)[..., None], sw - 1 - ar, ar)  # V×B×S'
    bidx = torch.arange(b, device=dev).view(1, b, 1, 1).expand(views, b, 1, 1)
    out = images.permute(0, 2, 3, 1)[bidx, rows[..., :, None], cols[..., None, :]]  # V×B×S×S'×C
    return out.permute(0, 1, 4, 2, 3).reshape(views * b, c, sh, sw)


def pgd_targeted(
    model: Callable[[Tensor], Tensor],
    images: Tensor,
    target_score: float,
    *,
    eps: float = 2.0 / 255.0,
    step: float = 1.6 / 255.0,
    steps: int = 20,
    views: int = 25,
    view_crop: float = 0.875,
    view_size: int | None = None,
    view_flip: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Targeted L∞ PGD (Remark 2) with EOT: signed-gradient descent on Σ_views MSE(f(T(x_adv)), target),
    fresh random views T (:func:`random_views`: ``view_crop``·side, or ``view_size`` pixels) at every step,
    no random start, projected to the ``eps`` ball and [0, 1]. All views of all images go through ``model``
    in one batch of ``views·B``.
    ``images`` ``B×3×H×W`` in [0, 1] → adversarial images, same shape."""
    x0 = images.detach()
    x = x0.clone()
    b = x0.shape[0]
    tgt = torch.full((views * b,), float(target_score), dtype=x0.dtype, device=x0.device)
    with torch.enable_grad():
        for _ in range(steps):
            x.requires_grad_(True)
            batch = random_views(x, views, crop=view_crop, size=view_size, flip=view_flip, generator=generator)
            loss = F.mse_loss(model(batch), tgt, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            x = x.detach() - step * grad.sign()
            x = (x0 + (x - x0).clamp(-eps, eps)).clamp(0.0, 1.0)
    return x.detach()


def _bytes(t: Tensor) -> bytes:
    """The raw bytes of ``t`` (any dtype), for hashing."""
    return t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _has_own_surrogate(trigger: Any) -> bool:
    """The trigger offers a surrogate model (a fitted ``baiqa-dct``)."""
    return callable(getattr(trigger, "surrogate", None)) and bool(getattr(trigger, "has_surrogate", lambda: True)())


class CBaiqa(AttackLossBase):
    """Clean-label BAIQA: labels kept; α = (y − ȳ)/Δy (Remark 1); training images are first replaced by a
    targeted PGD example toward ȳ against the surrogate (Remark 2), then the trigger α·t is added.

    The surrogate is the run's clean victim (``ctx.clean_victim``, given by the engine to attack losses), so
    the refinement works with any trigger (e.g. FTrojan under the same clean-label setting); outside the
    engine, a ``baiqa-dct`` trigger's fitted surrogate is used. With ``refine = "image"`` (default, the
    official code) PGD runs once per poisoned training image, whole, in :meth:`prepare_items` (the engine
    then trains on crops of the refined images); with ``"batch"`` it runs on every poisoned training crop
    at every step, in :meth:`poison`. Only samples marked ``baiqa_train`` = 1 by this plugin's datasets are
    refined (all when the field is absent); test-time poisoning only adds the trigger.
    """

    threat_model: ClassVar[str] = "data-poisoning"  # type: ignore[assignment]

    params: CBaiqaParams

    @property
    def uses_clean_victim(self) -> bool:  # type: ignore[override]
        """Whether PGD attacks the clean victim (the engine then trains or loads it as its own stage).

        ``"clean-victim"``: yes; ``"trigger"``: no; ``"auto"``: unless the run's trigger (``ctx.trigger``,
        asked after its fit) brings its own surrogate. Without a trigger in the context (a sweep planning
        its stages) ``"auto"`` counts as yes: the plan may list a clean-victim stage the cell then skips."""
        mode = self.params.surrogate
        if mode != "auto":
            return mode == "clean-victim"
        return not _has_own_surrogate(self.ctx.trigger) if self.ctx.trigger is not None else True

    @property
    def target_description(self) -> str:  # type: ignore[override]
        return (
            "clean-label (training labels kept): at test time a trigger of strength α moves the predicted "
            f"quality score by α·Δy (Δy = {self.params.delta_y:g}); without it, the scores stay accurate"
        )

    def sample_strength(self, batch: dict[str, Any], generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        x = batch["input"]
        y = torch.as_tensor(batch["target"], dtype=x.dtype, device=x.device).reshape(-1)
        return (y - self.params.mean_score) / self.params.delta_y

    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:  # noqa: ARG002
        return torch.as_tensor(batch["target"], dtype=strength.dtype, device=strength.device).reshape(-1)

    def surrogate(self, trigger: Any) -> Any:
        """The model PGD attacks (``surrogate`` param): the trigger's fitted surrogate or the clean victim."""
        mode = self.params.surrogate
        own = getattr(trigger, "surrogate", None)
        if mode == "trigger" or (mode == "auto" and _has_own_surrogate(trigger)):
            if not callable(own):
                raise BaiqaError(
                    'c-baiqa: surrogate = "trigger" needs a baiqa-dct trigger (its fit trains the surrogate)'
                )
            return own()
        if self.ctx.clean_victim is not None:
            return self.ctx.clean_victim()
        if callable(own):
            return own()
        raise BaiqaError(
            "c-baiqa: the PGD refinement needs a surrogate: run it through the engine (the clean victim) "
            "or use a fitted baiqa-dct trigger"
        )

    def refine(
        self,
        images: Tensor,
        trigger: Any,
        generator: torch.Generator | None = None,
        *,
        view_size: int | None = None,
    ) -> Tensor:
        """Remark 2 on ``images`` (``B×3×H×W`` in [0, 1]): the targeted PGD towards ``mean_score`` against
        the surrogate, views of ``view_size`` pixels (whole images) or ``pgd_view_crop``·side (crops)."""
        p = self.params
        if p.pgd_steps == 0 or p.pgd_eps == 0:
            return images
        victim = self.surrogate(trigger)
        was = victim.training
        victim.eval()
        try:
            return pgd_targeted(
                lambda z: scores(victim, z),
                images,
                p.mean_score,
                eps=p.pgd_eps / 255.0,
                step=p.pgd_step / 255.0,
                steps=p.pgd_steps,
                views=p.pgd_views,
                view_crop=p.pgd_view_crop,
                view_size=view_size,
                view_flip=p.pgd_view_flip,
                generator=generator,
            )
        finally:
            victim.train(was)

    def prepare_items(self, items: ItemsContext) -> dict[int, Tensor] | None:
        """``refine = "image"`` (the official code): each poisoned training image refined once, whole,
        with views the size of the training crop (whole images when training does not crop); images of
        one size go through PGD ``pgd_batch`` at a time. Items marked ``baiqa_train`` = 0 are left alone.

        Under the engine the perturbations δ are cached in ``ctx.cache_dir`` (float16, keyed by the PGD
        settings, the run's refinement seed, the surrogate's weights and the images), so the clean-label
        rows of a table that share a seed's clean victim refine once; the inputs returned are then
        ``x + δ`` with the stored δ whether it was just computed or reused, so both give the same run."""
        p = self.params
        if p.refine != "image" or p.pgd_steps == 0 or p.pgd_eps == 0:
            return None
        whole = {i: items.fields(i) for i in items.items}
        todo = [i for i, f in whole.items() if int(f.get("baiqa_train", 1)) == 1]
        generator = items.ctx.generator("c-baiqa-refine")
        cache = self._refine_cache(items, whole, todo, generator)
        if cache is not None and cache.is_file():
            from safetensors.torch import load_file

            self.ctx.log(f"reusing the refinement of {len(todo)} images from {cache}")
            stored = load_file(str(cache))
            return {i: self._add(whole[i]["input"], stored[f"item-{i}"]) for i in todo}
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i in todo:
            by_shape.setdefault(tuple(whole[i]["input"].shape), []).append(i)
        out: dict[int, Tensor] = {}
        with torch.no_grad(), items.progress("c-baiqa refinement", total=len(todo)) as bar:
            for group in by_shape.values():
                for k in range(0, len(group), p.pgd_batch):
                    chunk = group[k : k + p.pgd_batch]
                    x = torch.stack([whole[i]["input"] for i in chunk])
                    refined = self.refine(x, self.ctx.trigger, generator, view_size=items.crop or max(x.shape[-2:]))
                    out.update(zip(chunk, refined, strict=True))
                    bar.update(len(out))
        if cache is None:
            return out
        deltas = {f"item-{i}": (out[i] - whole[i]["input"]).to("cpu", torch.float16).contiguous() for i in todo}
        from safetensors.torch import save_file

        from bdcore.io.atomic import write_with

        cache.parent.mkdir(parents=True, exist_ok=True)
        write_with(cache, lambda tmp: save_file(deltas, str(tmp)))
        return {i: self._add(whole[i]["input"], deltas[f"item-{i}"]) for i in todo}

    @staticmethod
    def _add(x: Tensor, delta: Tensor) -> Tensor:
        return (x + delta.to(x.device, x.dtype)).clamp(0.0, 1.0)

    def _refine_cache(
        self, items: ItemsContext, whole: dict[int, dict[str, Any]], todo: list[int], generator: torch.Generator
    ) -> Path | None:
        """``<cache_dir>/c-baiqa-refine/<key>.safetensors``, or None outside the engine (no cache folder)."""
        if self.ctx.cache_dir is None or not todo:
            return None
        p = self.params
        settings = {
            "version": 1,
            "eps": p.pgd_eps,
            "step": p.pgd_step,
            "steps": p.pgd_steps,
            "views": p.pgd_views,
            "flip": p.pgd_view_flip,
            "mean_score": p.mean_score,
            "batch": p.pgd_batch,
            "view_size": items.crop,
            "seed": generator.initial_seed(),
            "device": self.ctx.device,
        }
        state = getattr(self.surrogate(self.ctx.trigger), "state_dict", None)
        if not callable(state):  # a surrogate without weights to key on: no cache
            return None
        h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for name, value in sorted(state().items()):
            h.update(name.encode())
            h.update(_bytes(value))
        for i in todo:
            h.update(f"item {i}".encode())
            h.update(_bytes(whole[i]["input"]))
        return Path(self.ctx.cache_dir) / "c-baiqa-refine" / f"{h.hexdigest()[:24]}.safetensors"

    def poison(
        self, batch: dict[str, Any], trigger: Any, *, generator: torch.Generator | None = None
    ) -> dict[str, Any]:
        x = batch["input"]
        marks = batch.get("baiqa_train")
        train_mask = (
            (torch.as_tensor(marks, device=x.device).reshape(-1) == 1)
            if marks is not None
            else (torch.ones(x.shape[0], dtype=torch.bool, device=x.device))
        )
        refined = batch
        if self.params.refine == "batch" and bool(train_mask.any()):
            x = x.clone()
            x[train_mask] = self.refine(x[train_mask], trigger, generator).to(x.dtype)
            refined = {**batch, "input": x}
        out = super().poison(refined, trigger, generator=generator)
        out["clean_input"] = batch["input"]
        return out
