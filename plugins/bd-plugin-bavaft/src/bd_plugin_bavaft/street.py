"""A small, offline street-scene segmentation set and segmenter for the CarToRoad attack at CPU scale.

``street-scenes`` renders labelled scenes procedurally (no download, no stored images): sky, buildings, trees,
a sidewalk, a road with lane marks and 1–3 cars, textured with three photographs scikit-image ships
(``brick``, ``grass``, ``gravel``). Labels are Cityscapes train ids (road 0, sidewalk 1, building 2,
vegetation 8, sky 10, car 13), so the attack's defaults (Car 13 → Road 0) apply unchanged. Scene ``i`` is a
pure function of (``scene_seed``, split, ``i``, ``size``).

``small-segmenter`` is a two-level U-Net (about 0.1 M parameters at width 16) trained here on those scenes,
with light blur/noise augmentation so that it also segments decoded images; it is cached under the run's cache
directory keyed by its settings, like the built-in face embedder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_bavaft.params import SMALL_SEGMENTER, SegmenterParams, StreetScenesParams
from bdcore.context import Context, derive_seed

#: Cityscapes train ids of the rendered classes.
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, CAR = 0, 1, 2, 8, 10, 13
NUM_CLASSES = 19  # Cityscapes' 19 evaluation classes; the rendered scenes use 6 of them
CACHE_VERSION = "v1"
_MEMO: dict[str, nn.Module] = {}


@functools.cache
def _texture(name: str) -> np.ndarray:
    """A scikit-image grey photograph as float32 in [0, 1] (``brick``, ``grass``, ``gravel``)."""
    import skimage.data

    arr = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
    return arr / 255.0


def _patch(rng: np.random.Generator, name: str, h: int, w: int, zoom: float) -> np.ndarray:
    """A random ``h×w`` crop of a texture, sampled at ``zoom`` texture pixels per image pixel."""
    tex = _texture(name)
    th, tw = tex.shape
    sh, sw = max(1, int(h * zoom)), max(1, int(w * zoom))
    top, left = int(rng.integers(0, th - sh + 1)), int(rng.integers(0, tw - sw + 1))
    rows = top + (np.arange(h) * sh // max(h, 1))
    cols = left + (np.arange(w) * sw // max(w, 1))
    return tex[np.ix_(rows, cols)]


def _tinted(patch: np.ndarray, colour: np.ndarray, contrast: float) -> np.ndarray:
    """``h×w`` texture → ``h×w×3`` colour ``colour·(1 + contrast·(t − mean t))``, clipped to [0, 1]."""
    t = patch - patch.mean()
    return np.clip(colour[None, None, :] * (1.0 + contrast * t[..., None]), 0.0, 1.0)


def render_scene(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: (image ``size×size×3`` float32 in [0, 1], labels ``size×size`` int64)."""
    rng = np.random.default_rng(seed)
    s = size
    img = np.zeros((s, s, 3), dtype=np.float32)
    lab = np.full((s, s), SKY, dtype=np.int64)
    yy = np.arange(s)[:, None] * np.ones((1, s))
    xx = np.ones((s, 1)) * np.arange(s)[None, :]
    # sky: a vertical gradient
    top = np.array([0.30, 0.50, 0.85]) + rng.uniform(-0.08, 0.08, 3)
    low = np.array([0.75, 0.85, 0.95]) + rng.uniform(-0.05, 0.05, 3)
    g = (np.arange(s) / max(s - 1, 1))[:, None, None]
    img[:] = np.clip(top * (1 - g) + low * g, 0, 1)
    horizon = int(rng.integers(int(0.40 * s), int(0.55 * s)))
    # buildings: rectangles standing on the horizon, brick texture in a facade colour, dark windows
    x = int(rng.integers(-s // 8, s // 8))
    while x < s:
        w = int(rng.integers(s // 6, s // 3))
        h = int(rng.integers(s // 6, max(s // 6 + 1, horizon - 1)))
        x0, x1, y0 = max(0, x), min(s, x + w), max(0, horizon - h)
        if x1 > x0 and horizon > y0:
            colour = np.array(
                [(0.70, 0.62, 0.52), (0.55, 0.55, 0.58), (0.62, 0.36, 0.30), (0.80, 0.78, 0.70)][int(rng.integers(4))]
            ) + rng.uniform(-0.06, 0.06, 3)
            img[y0:horizon, x0:x1] = _tinted(_patch(rng, "brick", horizon - y0, x1 - x0, 2.0), colour, 1.2)
            lab[y0:horizon, x0:x1] = BUILDING
            step = max(3, s // 16)
            win = ((yy - y0) % step < step // 2) & ((xx - x0) % step < step // 2) & (yy >= y0 + 1) & (yy < horizon - 2)
            win &= (xx >= x0 + 1) & (xx < x1 - 1)
            img[win] = img[win] * 0.35 + np.array([0.10, 0.14, 0.22]) * 0.65
        x += w + int(rng.integers(0, s // 10))
    # trees: leafy ellipses in front of the buildings
    for _ in range(int(rng.integers(0, 3))):
        cx, cy = rng.uniform(0, s), horizon - rng.uniform(s / 12, s / 5)
        rx, ry = rng.uniform(s / 14, s / 7), rng.uniform(s / 12, s / 6)
        m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        m &= yy < horizon
        colour = np.array([0.22, 0.45, 0.18]) + rng.uniform(-0.06, 0.06, 3)
        img[m] = _tinted(_patch(rng, "grass", s, s, 1.0), colour, 1.5)[m]
        lab[m] = VEGETATION
    # sidewalk below the horizon, then the road down to the bottom
    walk = horizon + int(rng.integers(2, max(3, s // 12)))
    img[horizon:walk] = _tinted(_patch(rng, "gravel", walk - horizon, s, 1.0), np.array([0.72, 0.70, 0.66]), 0.6)
    lab[horizon:walk] = SIDEWALK
    road_colour = np.array([0.33, 0.33, 0.35]) + rng.uniform(-0.05, 0.05, 3)
    img[walk:] = _tinted(_patch(rng, "gravel", s - walk, s, 1.5), road_colour, 0.8)
    lab[walk:] = ROAD
    mark_y = walk + (s - walk) // 2
    dash = max(3, s // 10)
    marks = (np.abs(yy - mark_y) < max(1, s // 64)) & ((xx + int(rng.integers(dash))) % (2 * dash) < dash)
    img[marks] = 0.9  # lane marks are road in Cityscapes
    # cars: farther ones first (occlusion), size grows towards the bottom of the image
    bottoms = np.sort(rng.uniform(walk + s / 10, s - 1, int(rng.integers(1, 4))))
    for yb in bottoms:
        depth = (yb - walk) / max(s - walk, 1)
        cw = (0.22 + 0.30 * depth) * s
        ch = 0.42 * cw
        cx0 = rng.uniform(-0.1 * cw, s - 0.9 * cw)
        body = (xx >= cx0) & (xx < cx0 + cw) & (yy >= yb - 0.6 * ch) & (yy < yb - 0.15 * ch)
        cabin = (xx >= cx0 + 0.2 * cw) & (xx < cx0 + 0.8 * cw) & (yy >= yb - ch) & (yy < yb - 0.55 * ch)
        r = 0.14 * cw
        wheels = np.zeros_like(body)
        for wx in (cx0 + 0.22 * cw, cx0 + 0.78 * cw):
            wheels |= (xx - wx) ** 2 + (yy - (yb - r)) ** 2 <= r * r
        colour = rng.uniform(0.05, 0.95, 3)
        colour[int(rng.integers(3))] = rng.uniform(0.6, 1.0)  # saturated paint
        shade = 1.0 - 0.25 * ((yy - (yb - ch)) / max(ch, 1)).clip(0, 1)
        img[body] = np.clip(colour[None, :] * shade[body][:, None], 0, 1)
        img[cabin] = np.clip(colour * 0.5 + np.array([0.15, 0.20, 0.28]) * 0.5, 0, 1)
        glass = (
            cabin & (yy >= yb - 0.92 * ch) & (yy < yb - 0.62 * ch) & (xx >= cx0 + 0.26 * cw) & (xx < cx0 + 0.74 * cw)
        )
        img[glass] = np.array([0.12, 0.16, 0.24])
        img[wheels] = 0.06
        car = body | cabin | wheels
        lab[car] = CAR
    img += rng.normal(0.0, 0.01, img.shape)  # sensor noise
    return np.clip(img, 0.0, 1.0).astype(np.float32), lab


def scene_seed(base: int, split: str, index: int) -> int:
    return derive_seed(base, "street-scene", split, index)


class StreetScenesSplit(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """``n`` rendered scenes: samples ``{"input": 3×s×s, "target": the same image (a codec reconstructs its
    input), "labels": s×s int64, "index"}``; no randomness at read time (a scene is its own augmentation)."""

    def __init__(self, n: int, split: str, size: int, seed: int) -> None:
        self.n, self.split, self.size, self.seed = n, split, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        img, lab = render_scene(scene_seed(self.seed, self.split, index), self.size)
        x = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        return {"input": x, "target": x.clone(), "labels": torch.from_numpy(lab), "index": index}

    def get(self, index: int, seed: int | None) -> dict[str, Any]:  # noqa: ARG002 - no augmentation
        return self[index]


class StreetScenes:
    """The ``street-scenes`` data source: ``{"train", "test"}`` of :class:`StreetScenesSplit`."""

    def __init__(self, params: StreetScenesParams | None = None, ctx: Context | None = None) -> None:
        self.params = params or StreetScenesParams()
        self.ctx = ctx or Context()

    def splits(self) -> dict[str, StreetScenesSplit]:
        p = self.params
        return {
            "train": StreetScenesSplit(p.train, "train", p.size, p.scene_seed),
            "test": StreetScenesSplit(p.test, "test", p.size, p.scene_seed),
        }


# --- the built-in segmenter --------------------------------------------------------------------------------
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class SmallSegmenter(nn.Module):
    """Two-level U-Net: ``B×3×H×W`` in [0, 1] (H, W multiples of 4) → logits ``B×classes×H×W``."""

    def __init__(self, width: int = 16, classes: int = NUM_CLASSES) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.mid = _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.dec2, self.dec1 = _block(6 * w, 2 * w), _block(3 * w, w)
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, images: Tensor) -> Tensor:
        e1 = self.enc1(images * 2.0 - 1.0)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, size=e2.shape[-2:], mode="bilinear", align_corners=False), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False), e1], 1))
        return self.head(d1)


def segmenter_settings(p: SegmenterParams) -> dict[str, Any]:
    """What a trained small segmenter depends on (the scenes are a function of these too)."""
    return {
        "version": CACHE_VERSION,
        "width": p.width,
        "scenes": p.train_scenes,
        "size": p.train_size,
        "scene_seed": p.scene_seed,
        "steps": p.train_steps,
        "batch": p.train_batch,
        "lr": p.train_lr,
        "seed": p.train_seed,
    }


def render_batch(n: int, split: str, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` scenes of a split → (images ``n×3×s×s``, labels ``n×s×s``)."""
    data = StreetScenesSplit(n, split, size, seed)
    samples = [data[i] for i in range(n)]
    return torch.stack([s["input"] for s in samples]), torch.stack([s["labels"] for s in samples])


def _degrade(x: Tensor, gen: torch.Generator) -> Tensor:
    """Light blur and noise on half of the images (decoded images are smoother and noisier than renders)."""
    import kornia

    b = x.shape[0]
    sigma = (0.3 + 0.9 * torch.rand(b, generator=gen)).to(x.dtype)
    blurred = kornia.filters.gaussian_blur2d(x, (5, 5), torch.stack([sigma, sigma], -1), border_type="reflect")
    noisy = blurred + 0.03 * torch.rand(b, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    keep = (torch.rand(b, generator=gen) < 0.5).view(-1, 1, 1, 1)
    return torch.where(keep, x, noisy.clamp(0, 1))


def train_small_segmenter(
    settings: Mapping[str, Any], log: Callable[[str], None] | None = None
) -> tuple[SmallSegmenter, float]:
    """Train a :class:`SmallSegmenter` with pixel cross-entropy on rendered training scenes.

    Returns:
        the segmenter (eval mode) and its pixel accuracy on 32 rendered held-out scenes (0–1).
    """
    images, labels = render_batch(
        int(settings["scenes"]), "segmenter-train", int(settings["size"]), int(settings["scene_seed"])
    )
    gen = torch.Generator().manual_seed(int(settings["seed"]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings["seed"]))
        net = SmallSegmenter(int(settings["width"]))
    opt = torch.optim.Adam(net.parameters(), lr=float(settings["lr"]))
    steps, batch = int(settings["steps"]), min(int(settings["batch"]), images.shape[0])
    net.train()
    for step in range(steps):
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
        x, y = images[idx], labels[idx]
        flip = (torch.rand(batch, generator=gen) < 0.5).view(-1, 1, 1)
        x = torch.where(flip.unsqueeze(1), x.flip(-1), x)
        y = torch.where(flip, y.flip(-1), y)
        loss = F.cross_entropy(net(_degrade(x, gen)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log is not None and (step % 100 == 0 or step == steps - 1):
            log(f"{SMALL_SEGMENTER} step {step}/{steps} loss {loss.item():.3f}")
    net.eval()
    test_x, test_y = render_batch(32, "segmenter-test", int(settings["size"]), int(settings["scene_seed"]))
    with torch.no_grad():
        acc = float((net(test_x).argmax(1) == test_y).float().mean())
    return net, acc


def _cache_dir(p: SegmenterParams, ctx: Context) -> Path:
    if p.cache_dir is not None:
        return ctx.resolve_path(p.cache_dir)
    if ctx.cache_dir is not None:
        return Path(ctx.cache_dir) / "bavaft-segmenter"
    if ctx.work_dir is not None:
        return Path(ctx.work_dir) / "bavaft-segmenter"
    return Path(os.environ.get("BDCORE_CACHE", Path.home() / ".cache" / "bdcore")) / "bavaft-segmenter"


def small_segmenter(p: SegmenterParams, ctx: Context) -> nn.Module:
    """The built-in segmenter: from ``weights``, else trained on rendered street scenes (or reused from the
    cache ``<cache>/small-segmenter-<key>.safetensors``)."""
    from bd_plugin_bavaft.downstream import DownstreamSetupError, freeze
    from bdcore.io.checkpoint import load_weights

    net = SmallSegmenter(p.width)
    if p.weights is not None:
        try:
            net.load_state_dict(load_weights(ctx.resolve_path(p.weights), sha256=p.sha256))
        except RuntimeError as exc:
            raise DownstreamSetupError(f"{p.weights}: not a {SMALL_SEGMENTER} of width {p.width} ({exc})") from exc
        return freeze(net)
    settings = segmenter_settings(p)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    if key in _MEMO:
        return _MEMO[key]
    path = _cache_dir(p, ctx) / f"{SMALL_SEGMENTER}-{key}.safetensors"
    if path.is_file():
        ctx.log(f"reusing cached {SMALL_SEGMENTER} {path}")
        net.load_state_dict(load_weights(path))
    else:
        from safetensors.torch import save_file

        net, acc = train_small_segmenter(settings, log=ctx.log)
        ctx.log(f"{SMALL_SEGMENTER}: pixel accuracy {acc:.3f} on 32 held-out rendered scenes")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        save_file({k: t.contiguous() for k, t in net.state_dict().items()}, str(tmp))
        tmp.replace(path)
    _MEMO[key] = freeze(net)
    return _MEMO[key]
