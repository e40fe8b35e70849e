"""``manifest.json`` (versions, seeds, git sha, device) and ``spec.resolved.toml``."""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

from bdcore._version import __version__
from bdcore.io.atomic import write_text
from bdcore.plugins import PluginHost
from bdcore.spec.structure import LoadedSpec

LIBRARIES = ("torch", "torchvision", "numpy", "kornia", "compressai", "pyiqa", "lpips", "diffusers", "scipy")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def git_sha(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_manifest(
    loaded: LoadedSpec, host: PluginHost, device: str, status: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    import torch

    return {
        "bdcore": __version__,
        "status": status,
        "spec": str(loaded.file.resolve()),
        "overrides": list(loaded.overrides),
        "name": loaded.name,
        "seed": loaded.spec.run.seed,
        "device": device,
        "device_name": torch.cuda.get_device_name()
        if device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_sha": git_sha(loaded.file.resolve().parent),
        "libraries": {k: v for k in LIBRARIES if (v := _version(k)) is not None},
        "plugins": [p.describe() for p in host.loaded],
        "plugin_failures": [f.describe() for f in host.failures],
        "components": {r.path: r.component.describe() for r in loaded.components()},
        **(extra or {}),
    }


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    write_text(run_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str))


def resolved_spec(loaded: LoadedSpec) -> dict[str, Any]:
    """The spec with every default filled in (params unstructured from their classes)."""
    from bdcore.spec.converter import make_converter

    conv = make_converter()
    out: dict[str, Any] = conv.unstructure(loaded.spec)

    def params(r: Any) -> dict[str, Any]:
        return _drop_none(conv.unstructure(r.params)) if r is not None else {}

    out["data"]["params"] = params(loaded.data)
    out["victim"]["params"] = params(loaded.victim)
    if loaded.attack is not None and out.get("attack"):
        out["attack"]["trigger"]["params"] = params(loaded.trigger)
        out["attack"]["loss"]["params"] = params(loaded.attack)
    by_path = {r.path: r for r in loaded.metrics}
    for i, m in enumerate(out.get("metric", [])):
        r = by_path.get(f"metric[{i}]")
        if r is not None:
            m["params"] = params(r)
    by_path = {r.path: r for r in loaded.observers}
    for i, o in enumerate(out.get("run", {}).get("observers", [])):
        r = by_path.get(f"run.observers[{i}]")
        if r is not None:
            o["params"] = params(r)
    return _drop_none(out)


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [_drop_none(v) for v in obj]
    if attrs.has(type(obj)):
        return _drop_none(attrs.asdict(obj))
    return obj


def write_resolved_spec(run_dir: Path, loaded: LoadedSpec) -> None:
    import tomli_w

    text = "# The spec as bdcore ran it, every default filled in.\n" + tomli_w.dumps(resolved_spec(loaded))
    write_text(run_dir / "spec.resolved.toml", text)
