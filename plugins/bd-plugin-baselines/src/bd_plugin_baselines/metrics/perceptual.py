"""LPIPS (Zhang et al., CVPR 2018) through the ``lpips`` package, with local backbone weights.

The ``lpips`` wheel ships the linear calibration layers but fetches the ImageNet
backbone from torchvision's download server. Here the backbone comes from a local
torchvision checkpoint file (a path, or the torch hub cache), and a missing file is
a clear error naming it. ``random_backbone=True`` keeps lpips' own random backbone
(seeded) — a stand-in for wiring tests and offline smoke runs, not the metric.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from bdcore.errors import ComponentError

#: torchvision's file name of each backbone (what the hub cache holds).
BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


class LpipsWeightsMissing(ComponentError):
    """The LPIPS backbone weight file is not available locally."""


def default_backbone_path(net: str) -> Path:
    """Where torchvision would have cached the backbone: ``<torch cache dir>/checkpoints/<file>``.

    Only the local folder's name is computed (``$TORCH_HOME/hub`` by torch's rule); nothing is fetched.
    """
    from torch.hub import get_dir as torch_cache_dir

    return Path(torch_cache_dir()) / "checkpoints" / BACKBONE_FILES[net]


def _backbone_key_map(model: nn.Module) -> dict[str, str]:
    """lpips' ``net.sliceK.<i>.<param>`` → torchvision's ``features.<i>.<param>``.

    lpips splits ``tv.<net>().features`` into slices keeping each layer's index as its
    child name, so the torchvision key is recovered from that index.
    """
    out = {}
    for slice_name, block in model.net.named_children():
        for idx, layer in block.named_children():
            for pname, _ in layer.named_parameters():
                out[f"net.{slice_name}.{idx}.{pname}"] = f"features.{idx}.{pname}"
    return out


def build_lpips(
    net: str = "alex",
    *,
    version: str = "0.1",
    weights: str | Path | None = None,
    sha256: str | None = None,
    random_backbone: bool = False,
    seed: int = 0,
) -> nn.Module:
    """An eval-mode, frozen ``lpips.LPIPS`` whose backbone is loaded from a local file.

    Raises:
        LpipsWeightsMissing: the backbone file (named in the message) is absent.
    """
    try:
        import lpips
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ComponentError(
            "the lpips metric needs the `lpips` package: pip install 'bd-plugin-baselines[lpips]'"
        ) from exc
    if net not in BACKBONE_FILES:
        raise ComponentError(f"lpips: unknown net {net!r} (choose from {', '.join(BACKBONE_FILES)})")
    path: Path | None = None
    if not random_backbone:
        path = Path(weights).expanduser() if weights is not None else default_backbone_path(net)
        if not path.is_file():
            raise LpipsWeightsMissing(
                f"lpips({net}): backbone weights not found at {path}. Provide torchvision's ImageNet file "
                f"{BACKBONE_FILES[net]!r} (params.weights = 'path/to/{BACKBONE_FILES[net]}', or put it in "
                f"{default_backbone_path(net).parent}); no download is attempted. "
                "For a wiring test only, set random_backbone = true (not the perceptual metric)."
            )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained` deprecation notice
        torch.manual_seed(seed)
        # pnet_rand: lpips must not fetch the backbone; its linear layers load from the wheel
        model = lpips.LPIPS(net=net, version=version, pnet_rand=True, verbose=False)
    if path is not None:
        from bdcore.io.checkpoint import extract_state_dict, load_weights

        state = extract_state_dict(load_weights(path, sha256=sha256))
        mapping = _backbone_key_map(model)
        missing = [tv for tv in mapping.values() if tv not in state]
        if missing:
            raise ComponentError(f"lpips({net}): {path} is not a torchvision {net} checkpoint (missing {missing[:3]})")
        model.load_state_dict({k: state[tv] for k, tv in mapping.items()}, strict=False)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def lpips_distance(model: nn.Module, a: Tensor, b: Tensor) -> Tensor:
    """Per-image LPIPS between ``B×C×H×W`` images in [0, 1] (grey is repeated to RGB), ``B``."""
    if a.shape != b.shape or a.ndim != 4:
        raise ComponentError(f"lpips: expected two B×C×H×W tensors of one shape, got {list(a.shape)}, {list(b.shape)}")
    if a.shape[1] == 1:
        a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
    device = next(model.parameters()).device
    with torch.no_grad():
        d = model(a.float().to(device), b.float().to(device), normalize=True)
    return d.flatten().to(torch.float64)
