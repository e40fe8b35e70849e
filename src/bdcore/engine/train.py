"""The training loop: one optimizer step per batch, checkpoints, exact resume.

A checkpoint holds the model(s), the optimizer, the step and the torch RNG state;
batches are a pure function of the step (:func:`bdcore.data.loading.batch_at`), so
a run killed at any point and resumed from its last checkpoint ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bdcore.errors import ContractError, RunError
from bdcore.io.atomic import write_with
from bdcore.spec.model import TrainSettings

BatchFn = Callable[[int], dict[str, Any]]
LossFn = Callable[[dict[str, Any], int], Mapping[str, Tensor]]


def make_optimizer(
    params: Iterable[nn.Parameter], settings: TrainSettings, lr: float | None = None
) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise RunError("nothing to train: no parameter requires grad")
    lr = settings.lr if lr is None else lr
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=settings.weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=settings.weight_decay)


class Checkpointer:
    """Saves and restores training state in a stage's ``.partial`` folder."""

    def __init__(self, folder: Path | None, every: int) -> None:
        self.folder = folder
        self.every = every

    @property
    def file(self) -> Path | None:
        return None if self.folder is None else self.folder / "checkpoint.pt"

    def save(
        self,
        step: int,
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer,
        history: list[dict[str, float]],
        pending: tuple[dict[str, float], int] = ({}, 0),
    ) -> None:
        if self.file is None:
            return
        state = {
            "step": step,
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "aux": {k: m.aux_state_dict() for k, m in modules.items() if hasattr(m, "aux_state_dict")},  # type: ignore[operator]
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "history": history,
            "pending_sums": pending[0],
            "pending_count": pending[1],
        }
        write_with(self.file, lambda p: torch.save(state, p))

    def restore(
        self, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer
    ) -> tuple[int, list[dict[str, float]], tuple[dict[str, float], int]]:
        if self.file is None or not self.file.is_file():
            return 0, [], ({}, 0)
        from bdcore.io.checkpoint import load_weights

        state = load_weights(self.file)
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
            if k in state.get("aux", {}) and hasattr(m, "load_aux_state_dict"):
                m.load_aux_state_dict(state["aux"][k])  # type: ignore[operator]
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        pending = (dict(state.get("pending_sums", {})), int(state.get("pending_count", 0)))
        return int(state["step"]), list(state["history"]), pending


def train_loop(
    *,
    modules: dict[str, nn.Module],
    params: list[nn.Parameter],
    settings: TrainSettings,
    steps: int,
    batch_fn: BatchFn,
    loss_fn: LossFn,
    after_step: Callable[[dict[str, Any]], Mapping[str, float] | None] | None = None,
    checkpointer: Checkpointer | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    lr: float | None = None,
    log_every: int = 10,
) -> list[dict[str, float]]:
    """Run ``steps`` optimizer steps; returns the loss history (means per ``log_every`` steps).

    ``loss_fn(batch, step)`` returns a dict with ``"loss"`` (the tensor to minimise)
    and optional named terms; ``after_step(batch)`` runs auxiliary updates.
    ``progress(done, record)`` is called after every step: ``record`` is empty, except every
    ``log_every`` steps (and at the last) where it is the history record plus ``"lr"``.
    """
    optimizer = make_optimizer(params, settings, lr)
    checkpointer = checkpointer or Checkpointer(None, 1)
    start, history, (sums, count) = checkpointer.restore(modules, optimizer)
    for m in modules.values():
        m.train()
    for step in range(start, steps):
        batch = batch_fn(step)
        terms = loss_fn(batch, step)
        loss = terms.get("loss") if isinstance(terms, Mapping) else None
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            raise ContractError(
                f"the training loss must return a dict with a scalar tensor 'loss', got {type(terms).__name__}"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
        extra = after_step(batch) if after_step is not None else None
        for k, v in terms.items():
            if isinstance(v, Tensor) and v.ndim == 0:
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        for name, value in (extra or {}).items():
            sums[name] = sums.get(name, 0.0) + float(value)
        count += 1
        done = step + 1
        if done % log_every == 0 or done == steps:
            record = {"step": float(done), **{k: v / count for k, v in sums.items()}}
            if not math.isfinite(record.get("loss", 0.0)):
                raise RunError(f"training diverged at step {done}: loss is {record['loss']}")
            history.append(record)
            sums, count = {}, 0
            if progress is not None:
                progress(done, {**record, "lr": float(optimizer.param_groups[0]["lr"])})
        elif progress is not None:
            progress(done, {})
        if done % checkpointer.every == 0 and done < steps:
            checkpointer.save(done, modules, optimizer, history, (sums, count))
    for m in modules.values():
        m.eval()
    return history
