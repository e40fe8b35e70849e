"""The stage store: finished stages as content-addressed folders, shared between runs.

A stage's key is a hash of the spec parts it depends on (plus the versions of
bdcore and of the components involved), so a rerun — or another spec that shares
those parts — finds the finished stage and loads it instead of recomputing.

Layout under the output root::

    .stages/<stage>-<key>/           finished (renamed into place atomically)
        tensors.safetensors          weights, trigger state, ...
        stage.json                   metadata (what it depends on, losses, numbers)
    .stages/<stage>-<key>.partial/   an unfinished stage: its training checkpoint
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import attrs

from bdcore.errors import OutputError
from bdcore.io.atomic import make_dir, write_text, write_with, writing
from bdcore.params import in_stage_key


def canonical(obj: Any) -> Any:
    """A JSON-ready canonical form (attrs → dicts, paths → strings, tuples → lists); fields declared
    :func:`bdcore.params.eval_only` are left out (they do not change what a stage trains)."""
    if attrs.has(type(obj)):
        return {
            "__class__": f"{type(obj).__module__}.{type(obj).__qualname__}",
            **{f.name: canonical(getattr(obj, f.name)) for f in attrs.fields(type(obj)) if in_stage_key(f)},
        }
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return repr(obj)


def stage_key(parts: dict[str, Any]) -> str:
    text = json.dumps(canonical(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StageStore:
    """Finished stages under ``root``, one folder per (stage, key). ``create=False`` (planning only:
    ``bdcore sweep --dry-run``) leaves the disk untouched; such a store can only be asked what exists."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = root
        if create:
            make_dir(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}-{key}"

    def partial(self, stage: str, key: str) -> Path:
        return make_dir(self.root / f"{stage}-{key}.partial")

    def discard_partial(self, stage: str, key: str) -> None:
        shutil.rmtree(self.root / f"{stage}-{key}.partial", ignore_errors=True)

    def done(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / "stage.json").is_file()

    def save(self, stage: str, key: str, tensors: dict[str, Any], meta: dict[str, Any]) -> Path:
        """Write a finished stage: into a temporary folder, then rename into place."""
        from safetensors.torch import save_file

        final = self.path(stage, key)
        tmp = self.root / f".{stage}-{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        make_dir(tmp)
        # clone: tied weights share storage, which safetensors refuses to write.
        flat = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items() if hasattr(v, "detach")}
        try:
            write_with(tmp / "tensors.safetensors", lambda p: save_file(flat, str(p)))
            write_text(tmp / "stage.json", json.dumps(canonical({"stage": stage, "key": key, **meta}), indent=2))
            if final.exists():  # another process finished the same stage first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with writing(final):
                    os.replace(tmp, final)
        except OutputError as exc:  # name the stage folder the user will look for, not the temporary one
            shutil.rmtree(tmp, ignore_errors=True)  # a half-written stage must not use up the disk
            raise OutputError(str(exc).replace(str(tmp), str(final))) from exc.__cause__
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.discard_partial(stage, key)
        return final

    def load(self, stage: str, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        from safetensors.torch import load_file

        folder = self.path(stage, key)
        tensors = load_file(str(folder / "tensors.safetensors"))
        meta = json.loads((folder / "stage.json").read_text())
        return tensors, meta


def split_state(prefixed: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of ``prefixed`` under ``prefix.`` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in prefixed.items() if k.startswith(prefix + ".")}


def prefix_state(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in state.items()}
