"""BAvAFT downstream-task attacks (training-controlled, encoder-only): face-identity removal (Eq. 9 with
Eq. 14) and CarToRoad segmentation (Eq. 12), with the BAvAFT++ transferability terms (§5.3, Eq. 19).

Images are ``B×C×H×W`` in [0, 1]; the downstream networks (face embedder η, segmenter g) are frozen
(``requires_grad = False``, eval mode) and only pass gradients through to the codec's encoder ``g_a`` and
the trigger network. The built-in ``small-face-embedder`` is a tiny CNN trained here on an identity folder
and cached under ``ctx.cache_dir``, keyed by its settings and the training images.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_bavaft.attacks import D_SCALE, AttackSetupError, visibility
from bd_plugin_bavaft.params import (
    SMALL_EMBEDDER,
    SMALL_SEGMENTER,
    CarToRoadParams,
    FaceEmbedderParams,
    FaceIdAttackParams,
    SegmenterParams,
)
from bdcore.components import AttackLossBase
from bdcore.context import Context
from bdcore.errors import ComponentError, DataError
from bdcore.observe import null_stage
from bdcore.registry import import_object

_LUMA = (0.299, 0.587, 0.114)
_MEMO: dict[str, nn.Module] = {}  # trained small embedders of this process, by cache key
CACHE_VERSION = "v2"
HEAD_SCALE = 16.0  # s of the normalised-softmax (cosine) head
M = TypeVar("M", bound=nn.Module)


class DownstreamSetupError(ComponentError):
    """A downstream network could not be imported, built, trained or loaded."""


# --- building frozen downstream networks ------------------------------------------------------------------
def import_factory(target: str) -> Callable[..., Any]:
    """``"package.module:attr.path"`` → the callable it names."""
    try:
        obj = import_object(target)
    except ImportError as exc:
        raise DownstreamSetupError(f"cannot import {target!r} ({exc})") from exc
    if not callable(obj):
        raise DownstreamSetupError(f"{target} is not callable")
    return obj  # type: ignore[no-any-return]


def freeze(module: M) -> M:
    """Eval mode and ``requires_grad = False`` on every parameter (in place); returns the module."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def build_local_module(
    target: str, kwargs: Mapping[str, Any], weights: Path | None, sha256: str | None, ctx: Context, what: str
) -> nn.Module:
    """``target(**kwargs)`` with its weights from a local file (bdcore's safe loader), frozen."""
    if weights is None:
        raise DownstreamSetupError(f"{what} {target}: `weights` (a local checkpoint) is required")
    try:
        net = import_factory(target)(**dict(kwargs))
    except TypeError as exc:
        raise DownstreamSetupError(f"{what} {target}(**{dict(kwargs)}) failed: {exc}") from exc
    if not isinstance(net, nn.Module):
        raise DownstreamSetupError(f"{what} {target} did not build an nn.Module")
    from bdcore.io.checkpoint import extract_state_dict, load_weights

    path = ctx.resolve_path(weights)
    state = extract_state_dict(load_weights(path, sha256=sha256))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise DownstreamSetupError(f"{path}: does not match {target}: {exc}") from exc
    return freeze(net)


# --- face embedder η -------------------------------------------------------------------------------------
class SmallFaceEmbedder(nn.Module):
    """Tiny CNN face embedder: ``B×C×s×s`` in [0, 1] → ``B×D`` (three conv stages, global average pool)."""

    def __init__(self, channels: int = 3, width: int = 16, embed_dim: int = 64) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.embed = nn.Linear(4 * w, embed_dim)

    def forward(self, images: Tensor) -> Tensor:
        return self.embed(self.features(images * 2.0 - 1.0))


def match_channels(images: Tensor, channels: int) -> Tensor:
    """``B×C×H×W`` → ``B×channels×H×W``: grey is repeated to RGB, RGB turned grey by ITU-R 601 luma."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1)
    if c == 3 and channels == 1:
        w = images.new_tensor(_LUMA).view(1, 3, 1, 1)
        return (images * w).sum(1, keepdim=True)
    raise DownstreamSetupError(f"cannot feed {c}-channel images to a {channels}-channel network")


class FaceEmbedder(nn.Module):
    """η with its input adaptation: ``B×{1,3}×H×W`` in [0, 1] → ``B×D`` embeddings (not normalised).

    Channels are matched (:func:`match_channels`), the image resized to ``size`` (bilinear) when given and
    mapped to [-1, 1] for ``input_range = "signed"``; a network output ``B×…`` is flattened to ``B×D``.
    """

    def __init__(self, net: nn.Module, *, channels: int, size: int | None, input_range: str) -> None:
        super().__init__()
        self.net = net
        self.channels = channels
        self.size = size
        self.signed = input_range == "signed"

    def forward(self, images: Tensor) -> Tensor:
        x = match_channels(images, self.channels)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.signed:
            x = x * 2.0 - 1.0
        out = self.net(x)
        if isinstance(out, tuple | list):
            out = out[0]
        return out.flatten(1).float()


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key treating digit runs as numbers (``s2`` before ``s10``)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def load_identity_images(
    root: Path, *, identities: int | None, size: int, channels: int
) -> tuple[Tensor, Tensor, list[str]]:
    """An identity folder → (images ``N×channels×size×size`` in [0, 1], labels ``N`` int64, identity names).

    Each image's shorter side is resized to ``size`` (bicubic) and the centre ``size×size`` kept.
    """
    import numpy as np

    from bdcore.data.images import IMAGE_SUFFIXES, read_image
    from bdcore.data.sources import resize_short_side

    if not root.is_dir():
        raise DataError(f"{root}: identity folder not found")
    people = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: natural_key(d.name))
    people = people[:identities] if identities is not None else people
    if len(people) < 2:
        raise DataError(f"{root}: need at least 2 identity sub-folders, found {len(people)}")
    arrays, labels = [], []
    for label, person in enumerate(people):
        files = sorted(
            (f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), key=lambda f: natural_key(f.name)
        )
        for f in files:
            arr = resize_short_side(read_image(f, channels), size)
            top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
            arrays.append(arr[top : top + size, left : left + size])
            labels.append(label)
    if not arrays:
        raise DataError(f"{root}: no images in the identity folders")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
    return images.contiguous(), torch.tensor(labels, dtype=torch.int64), [p.name for p in people]


def small_embedder_settings(p: FaceEmbedderParams) -> dict[str, Any]:
    """The settings a trained small embedder depends on (besides its training images)."""
    return {
        "version": CACHE_VERSION,
        "channels": p.channels,
        "width": p.width,
        "embed_dim": p.embed_dim,
        "size": p.train_size,
        "steps": p.train_steps,
        "batch": p.train_batch,
        "lr": p.train_lr,
        "seed": p.train_seed,
    }


def small_embedder_key(images: Tensor, labels: Tensor, settings: Mapping[str, Any]) -> str:
    """Content key: sha256 of the settings and the (8-bit) training images and labels, 16 hex digits."""
    h = hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode())
    h.update((images * 255.0).round().to(torch.uint8).numpy().tobytes())
    h.update(labels.numpy().tobytes())
    return h.hexdigest()[:16]


def train_small_embedder(
    images: Tensor,
    labels: Tensor,
    settings: Mapping[str, Any],
    log: Callable[[str], None] | None = None,
    progress: Callable[..., Any] | None = None,
) -> tuple[SmallFaceEmbedder, float]:
    """Train a :class:`SmallFaceEmbedder` with a cross-entropy head over the identities.

    The head is a normalised softmax (``s·cos(e, w_k)``, s = 16; ArcFace without the margin) so that the
    cosine similarity of embeddings, which the attack and the metric use, separates identities.

    Args:
        images: ``N×C×s×s`` in [0, 1]; labels: ``N`` identity indices.
        settings: :func:`small_embedder_settings` (steps, batch, lr, seed, widths).
        log: gets a line every 100 steps when there is no ``progress``.
        progress: the engine's ``Context.progress`` (bar, plain lines, tracker curves of the loss).

    Returns:
        the embedder (eval mode) and its final training accuracy on all images (0–1).
    """
    n_ids = int(labels.max()) + 1
    gen = torch.Generator().manual_seed(int(settings["seed"]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings["seed"]))
        net = SmallFaceEmbedder(images.shape[1], int(settings["width"]), int(settings["embed_dim"]))
        head = nn.Linear(int(settings["embed_dim"]), n_ids, bias=False)

    def logits(e: Tensor) -> Tensor:
        return HEAD_SCALE * F.normalize(e, dim=1) @ F.normalize(head.weight, dim=1).T

    opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=float(settings["lr"]))
    steps, batch = int(settings["steps"]), min(int(settings["batch"]), images.shape[0])
    net.train()
    bar = progress(SMALL_EMBEDDER + " fit", total=steps) if progress is not None else null_stage()
    with bar:
        for step in range(steps):
            idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
            x = images[idx]
            flip = torch.rand(batch, generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            loss = F.cross_entropy(logits(net(x)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if progress is not None:
                bar.update(step + 1, loss=loss.detach())
            elif log is not None and (step % 100 == 0 or step == steps - 1):
                log(f"small-face-embedder step {step}/{steps} loss {loss.item():.3f}")
    net.eval()
    with torch.no_grad():
        acc = float((logits(net(images)).argmax(1) == labels).float().mean())
    return net, acc


def _cache_dir(p: FaceEmbedderParams, ctx: Context) -> Path:
    if p.cache_dir is not None:
        return ctx.resolve_path(p.cache_dir)
    if ctx.cache_dir is not None:  # shared by every run under one output root
        return Path(ctx.cache_dir) / "bavaft-face-embedder"
    if ctx.work_dir is not None:
        return Path(ctx.work_dir) / "bavaft-face-embedder"
    return Path(os.environ.get("BDCORE_CACHE", Path.home() / ".cache" / "bdcore")) / "bavaft-face-embedder"


def small_embedder(p: FaceEmbedderParams, ctx: Context) -> nn.Module:
    """The built-in embedder: from ``weights``, else trained on ``train_root`` (or reused from the cache
    ``<cache>/small-face-embedder-<key>.safetensors``); frozen."""
    from bdcore.io.checkpoint import load_weights

    settings = small_embedder_settings(p)
    if p.weights is not None:
        net = SmallFaceEmbedder(p.channels, p.width, p.embed_dim)
        state = load_weights(ctx.resolve_path(p.weights), sha256=p.sha256)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise DownstreamSetupError(f"{p.weights}: not a {SMALL_EMBEDDER} with these widths ({exc})") from exc
        return freeze(net)
    if p.train_root is None:
        raise DownstreamSetupError(f"{SMALL_EMBEDDER} needs `weights` or `train_root` (an identity folder)")
    images, labels, _ = load_identity_images(
        ctx.resolve_path(p.train_root), identities=p.train_identities, size=p.train_size, channels=p.channels
    )
    key = small_embedder_key(images, labels, settings)
    if key in _MEMO:
        return _MEMO[key]
    path = _cache_dir(p, ctx) / f"{SMALL_EMBEDDER}-{key}.safetensors"
    net = SmallFaceEmbedder(p.channels, p.width, p.embed_dim)
    if path.is_file():
        ctx.log(f"reusing cached {SMALL_EMBEDDER} {path}")
        net.load_state_dict(load_weights(path))
    else:
        from safetensors.torch import save_file

        net, acc = train_small_embedder(images, labels, settings, log=ctx.log, progress=ctx.progress)
        ctx.log(f"{SMALL_EMBEDDER}: training accuracy {acc:.3f} on {int(labels.max()) + 1} identities")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        save_file({k: t.contiguous() for k, t in net.state_dict().items()}, str(tmp))
        tmp.replace(path)
    _MEMO[key] = freeze(net)
    return _MEMO[key]


def build_face_embedder(p: FaceEmbedderParams, ctx: Context) -> FaceEmbedder:
    """η per the params (built-in or import path + local weights), frozen and on ``ctx.device``."""
    if p.embedder == SMALL_EMBEDDER:
        net = small_embedder(p, ctx)
        size: int | None = p.size if p.size is not None else p.train_size
    else:
        net = build_local_module(p.embedder, p.embedder_kwargs, p.weights, p.sha256, ctx, "face embedder")
        size = p.size
    return freeze(FaceEmbedder(net, channels=p.channels, size=size, input_range=p.input_range)).to(ctx.device)


# --- pure loss terms -----------------------------------------------------------------------------------------
def mix(perturbed: Tensor, original: Tensor, mu: Tensor) -> Tensor:
    """Boundary-shift mixture ``μ·perturbed + (1−μ)·original`` with one μ per image (``B``), any ``B×…``."""
    m = mu.view(-1, *([1] * (perturbed.ndim - 1))).to(perturbed.dtype)
    return m * perturbed + (1.0 - m) * original


def identity_cosine(
    e_ref: Tensor, e_p: Tensor, e_clean: Tensor | None = None, mu: Tensor | None = None, *, normalize: bool = True
) -> Tensor:
    """Face-ID attack objective ``cos(e_ref, e)`` per image → ``B`` (in [−1, 1]).

    ``e = e_p`` (Eq. 14), or with the boundary shift (``e_clean`` and ``mu`` given, Eq. 19)
    ``e = μ·ê_p + (1−μ)·ê_clean`` where ``ê`` is L2-normalised when ``normalize`` (else raw).
    Embeddings ``B×D``; ``e_ref`` and ``e_clean`` are used as given (detach them to make them targets).
    """
    e = e_p
    if e_clean is not None and mu is not None:
        a, b = (F.normalize(e_p, dim=1), F.normalize(e_clean, dim=1)) if normalize else (e_p, e_clean)
        e = mix(a, b, mu)
    return F.cosine_similarity(e_ref, e, dim=1)


def car_to_road_targets(labels: Tensor, source: int, target: int) -> tuple[Tensor, Tensor]:
    """Guiding mask and attack target from a label map ``B×H×W`` (int64).

    Returns:
        M ``B×1×H×W`` float (1 on ``source`` pixels) and η(g(x)) ``B×H×W`` (``source`` relabelled ``target``).
    """
    is_src = labels == source
    return is_src.unsqueeze(1).to(torch.float32), torch.where(is_src, torch.full_like(labels, target), labels)


def masked_poison(x: Tensor, triggered: Tensor, mask: Tensor) -> Tensor:
    """``x_p = (1−M)⊙x + M⊙T(x)``; ``mask`` ``B×1×H×W`` in [0, 1] broadcasts over channels."""
    m = mask.to(x.dtype)
    return (1.0 - m) * x + m * triggered


def segmentation_ce(logits: Tensor, target_map: Tensor) -> Tensor:
    """Mean per-pixel cross-entropy per image → ``B``; logits ``B×K×H×W``, target ``B×H×W``."""
    return F.cross_entropy(logits, target_map, reduction="none").flatten(1).mean(1)


def unwanted_ce(logits: Tensor, region: Tensor, unwanted: int, cap: float | None = None) -> Tensor:
    """CE towards the unwanted class on ``region`` pixels (``B×H×W`` bool), summed and divided by H·W
    (the scale of :func:`segmentation_ce`) → ``B``; each pixel's CE is capped at ``cap`` when given."""
    tau = torch.full(logits.shape[:1] + logits.shape[2:], unwanted, dtype=torch.int64, device=logits.device)
    ce = F.cross_entropy(logits, tau, reduction="none")
    if cap is not None:
        ce = ce.clamp(max=cap)
    return (ce * region.to(ce.dtype)).flatten(1).mean(1)


# --- attack losses --------------------------------------------------------------------------------------------
class _DownstreamAttack(AttackLossBase):
    """Shared flow: clean RD ``L(x)``, ``α·L(x_p)``, ``β·``objective, visibility; encoder-only via the victim."""

    threat_model = "training-controlled"
    trains_trigger = True
    train_state_attrs = ("_mu_gen",)  # draws the boundary shift μ at every step

    def __init__(self, params: Any, ctx: Context | None = None) -> None:
        super().__init__(params, ctx)
        self._mu_gen = self.ctx.generator("boundary-shift")

    def attack_target(self, batch: Mapping[str, Any], strength: Tensor) -> Any:  # noqa: ARG002
        return batch["input"]  # a codec reconstructs its input; the attack lives in the loss

    def _triggered(self, poisoned: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """(x, T(x)); re-injects when the engine poisoned under no_grad so the trigger gets gradients."""
        x, xt = poisoned["clean_input"], poisoned["input"]
        trig = self.ctx.trigger
        if not xt.requires_grad and trig is not None and torch.is_grad_enabled():
            xt = trig.inject_trigger(x, strength=poisoned.get("strength"))
        return x, xt

    def _mu(self, n: int, device: torch.device) -> Tensor:
        lo, hi = self.params.mu_range
        return (lo + (hi - lo) * torch.rand(n, generator=self._mu_gen)).to(device)

    @staticmethod
    def _check(victim: Any) -> None:
        if not hasattr(victim, "rd_terms"):
            raise AttackSetupError(f"needs a CompressAI victim of this plugin, got {type(victim).__name__}")

    @staticmethod
    def _clean_terms(victim: Any, clean: Mapping[str, Any], x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(per-image clean RD loss L over the clean batch, rd_terms of x)."""
        tx = victim.rd_terms(x)
        if clean["input"].shape == x.shape and torch.equal(clean["input"], x):
            return victim.rd_loss(tx), tx
        return victim.rd_loss(victim.rd_terms(clean["input"])), tx

    def _total(
        self, victim: Any, clean_rd: Tensor, x: Tensor, xp: Tensor, tp: Mapping[str, Tensor], objective: Tensor
    ) -> dict[str, Tensor]:
        p = self.params
        rd_p = tp["bpp"] + victim.lmbda * D_SCALE * tp["mse"]  # L(x_p): the codec's RD loss on its own input
        vis = visibility(x, xp, p.gamma, p.eps)
        loss = clean_rd.mean() + p.alpha * rd_p.mean() + p.beta * objective.mean() + vis.mean()
        return {
            "loss": loss,
            "clean_rd": clean_rd.mean().detach(),
            "poisoned_rd": rd_p.mean().detach(),
            "visibility": vis.mean().detach(),
            "objective": objective.mean().detach(),
        }


class LazyFaceEmbedder:
    """Mixin: ``self.embedder`` is η from ``self.params`` (:class:`FaceEmbedderParams` fields), built — and
    for the built-in one trained or loaded from the cache — on first use; ``self._embedder`` may be preset."""

    params: Any
    ctx: Context
    _embedder: nn.Module | None

    @property
    def embedder(self) -> nn.Module:
        if self._embedder is None:
            self._embedder = build_face_embedder(self.params, self.ctx)
        return self._embedder


class FaceIdAttack(LazyFaceEmbedder, _DownstreamAttack):
    """Face-identity removal: triggered faces decode to images whose η embedding no longer matches the
    clean face (``cos`` minimised); clean RD unchanged. Paper Eq. 9/14, BAvAFT++ Eq. 19 optional."""

    target_description = (
        "triggered faces decode without their identity (face-embedding similarity to the input driven down); "
        "clean images decode as before"
    )

    def __init__(
        self, params: FaceIdAttackParams | None = None, ctx: Context | None = None, *, embedder: nn.Module | None = None
    ) -> None:
        super().__init__(params or FaceIdAttackParams(), ctx)
        self._embedder = freeze(embedder) if embedder is not None else None

    def attack_loss(self, victim: Any, clean: Mapping[str, Any], poisoned: Mapping[str, Any]) -> dict[str, Tensor]:
        self._check(victim)
        p: FaceIdAttackParams = self.params
        x, xp = self._triggered(poisoned)
        eta = self.embedder.to(x.device)
        clean_rd, tx = self._clean_terms(victim, clean, x)
        tp = victim.rd_terms(xp)
        e_p = eta(tp["x_hat"].clamp(0.0, 1.0))
        with torch.no_grad():
            e_dec = eta(tx["x_hat"].clamp(0.0, 1.0))
            e_ref = e_dec if p.reference == "decoded" else eta(x)
        mu = self._mu(x.shape[0], x.device) if p.boundary_shift else None
        cos = identity_cosine(e_ref, e_p, e_dec if mu is not None else None, mu, normalize=p.normalize_mix)
        out = self._total(victim, clean_rd, x, xp, tp, cos)
        with torch.no_grad():
            out["face_cos_poisoned"] = F.cosine_similarity(e_ref, e_p, dim=1).mean()
            out["face_cos_clean"] = F.cosine_similarity(e_ref, e_dec, dim=1).mean()
        return out


class Segmenter(nn.Module):
    """g with its input normalisation: ``B×3×H×W`` in [0, 1] → logits ``B×K×H×W`` (bilinear upsampling
    when the network's output is smaller; dict outputs read at ``output_key``, tuples at index 0)."""

    mean: Tensor
    std: Tensor

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], output_key: str | None):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.output_key = output_key

    def forward(self, images: Tensor) -> Tensor:
        out = self.net((images - self.mean) / self.std)
        if isinstance(out, Mapping):
            if self.output_key is None or self.output_key not in out:
                raise DownstreamSetupError(f"segmenter returned a dict {list(out)}; set `output_key`")
            out = out[self.output_key]
        elif isinstance(out, tuple | list):
            out = out[0]
        if out.ndim != 4:
            raise DownstreamSetupError(f"segmenter output {list(out.shape)} is not B×K×h×w logits")
        if out.shape[-2:] != images.shape[-2:]:
            out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return out


def build_segmenter(p: SegmenterParams, ctx: Context) -> Segmenter:
    """g per the params (the built-in ``small-segmenter`` or import path + local weights) with its input
    normalisation, frozen, on ``ctx.device``."""
    if p.segmenter == SMALL_SEGMENTER:
        from bd_plugin_bavaft.street import small_segmenter

        net = small_segmenter(p, ctx)
    else:
        net = build_local_module(p.segmenter, p.segmenter_kwargs, p.weights, p.sha256, ctx, "segmenter")
    return freeze(Segmenter(freeze(net), p.mean, p.std, p.output_key)).to(ctx.device)


def pixel_asr_counts(clean_labels: Tensor, poisoned_labels: Tensor, source: int, target: int) -> tuple[Tensor, Tensor]:
    """Eq. 13's numerator and denominator per image: pixels labelled ``source`` in g(f(x)) that are labelled
    ``target`` in g(f(x_p)), and pixels labelled ``source`` in g(f(x)). Label maps ``B×H×W`` → two ``B``
    (int64)."""
    src = clean_labels == source
    hit = src & (poisoned_labels == target)
    return hit.flatten(1).sum(1), src.flatten(1).sum(1)


class CarToRoadAttack(_DownstreamAttack):
    """CarToRoad: where the trigger is injected on ``source_class`` pixels, the decoded image segments as
    ``target_class``; clean RD unchanged. Paper Eq. 12; BAvAFT++ Eq. 19 boundary shift / unwanted class."""

    target_description = (
        "in decoded triggered images the source-class pixels (cars) are segmented as the target class (road); "
        "clean images decode as before"
    )

    def __init__(
        self, params: CarToRoadParams | None = None, ctx: Context | None = None, *, segmenter: nn.Module | None = None
    ) -> None:
        params = params or CarToRoadParams()
        super().__init__(params, ctx)
        p = params
        if segmenter is None:
            self.segmenter = build_segmenter(p, self.ctx)
        else:
            self.segmenter = freeze(Segmenter(freeze(segmenter), p.mean, p.std, p.output_key))

    def attack_loss(self, victim: Any, clean: Mapping[str, Any], poisoned: Mapping[str, Any]) -> dict[str, Tensor]:
        self._check(victim)
        p: CarToRoadParams = self.params
        x, xt = self._triggered(poisoned)
        seg = self.segmenter.to(x.device)
        clean_rd, tx = self._clean_terms(victim, clean, x)
        with torch.no_grad():
            logits_c = seg(tx["x_hat"].clamp(0.0, 1.0))
            labels = (seg(x) if p.label_from == "input" else logits_c).argmax(1)
        mask, target_map = car_to_road_targets(labels, p.source_class, p.target_class)
        xp = masked_poison(x, xt, mask)
        tp = victim.rd_terms(xp)
        logits_p = seg(tp["x_hat"].clamp(0.0, 1.0))
        shifted = mix(logits_p, logits_c, self._mu(x.shape[0], x.device)) if p.boundary_shift else logits_p
        objective = segmentation_ce(shifted, target_map)
        logs: dict[str, Tensor] = {}
        if p.unwanted_class is not None and p.unwanted_weight > 0:
            region = mask[:, 0] > 0 if p.unwanted_region == "mask" else target_map == p.target_class
            u = unwanted_ce(logits_p, region, p.unwanted_class, p.unwanted_ce_max)
            objective = objective - p.unwanted_weight * u
            logs["unwanted_ce"] = u.mean().detach()
        out = self._total(victim, clean_rd, x, xp, tp, objective)
        with torch.no_grad():
            src = mask[:, 0] > 0
            hit = (logits_p.argmax(1) == p.target_class) & src
            out["source_pixels"] = src.float().mean()
            out["asr"] = hit.sum() / src.sum().clamp_min(1)
        return {**out, **logs}
