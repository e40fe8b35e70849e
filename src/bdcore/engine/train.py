"""The training loop: one optimizer step per batch, mixed precision, checkpoints, exact resume.

A checkpoint holds all training state (:class:`Checkpointer`); batches are a pure
function of the step (:func:`bdcore.data.loading.batch_at`), so a run killed at any
point and resumed from its last checkpoint ends with the same weights as an
uninterrupted one.
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
from bdcore.precision import Fp32Islands, MixedPrecision, channels_last_batch, compile_children, has_conv, uncompile
from bdcore.spec.model import TrainSettings
from bdcore.state import load_owned_states, owned_states, rng_states, set_rng_states

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
    """Saves and restores training state in a stage's ``.partial`` folder.

    A checkpoint (``checkpoint.pt``, loadable with ``torch.load(weights_only=True)``) holds everything
    the rest of the stage depends on:

    * ``modules``: every trained module's ``state_dict()`` (victim, trigger, attack);
    * ``optimizer``: the engine's optimizer; ``scaler``: its ``GradScaler`` (``16-mixed``);
    * ``owned``: every component's own training state (:class:`bdcore.protocols.Resumable`: private
      optimizers and schedulers, generators, counters), from the modules, their submodules and the
      other owners (an attack loss);
    * ``rng``: the global random streams (torch CPU and CUDA, NumPy, Python);
    * ``loader``: the position of the batch stream and what fixes its order (size, batch size, seed);
    * ``step``, the loss ``history`` and the partial sums of the current logging window.
    """

    FORMAT = 2

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
        *,
        owners: Mapping[str, Any] | None = None,
        precision: MixedPrecision | None = None,
        loader: Any = None,
    ) -> None:
        if self.file is None:
            return
        state = {
            "format": self.FORMAT,
            "step": step,
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "owned": owned_states({**modules, **(owners or {})}),
            "optimizer": optimizer.state_dict(),
            "scaler": precision.state_dict() if precision is not None else {},
            "rng": rng_states(),
            "loader": loader.state_dict() if callable(getattr(loader, "state_dict", None)) else None,
            "history": history,
            "pending_sums": pending[0],
            "pending_count": pending[1],
        }
        write_with(self.file, lambda p: torch.save(state, p))

    def restore(
        self,
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer,
        *,
        owners: Mapping[str, Any] | None = None,
        precision: MixedPrecision | None = None,
        loader: Any = None,
    ) -> tuple[int, list[dict[str, float]], tuple[dict[str, float], int]]:
        if self.file is None or not self.file.is_file():
            return 0, [], ({}, 0)
        from bdcore.io.checkpoint import load_weights

        state = load_weights(self.file)
        if state.get("format") != self.FORMAT:
            raise RunError(
                f"{self.file}: a checkpoint of an older bdcore (it lacks the state an exact resume needs); "
                "run without --resume to start this stage again"
            )
        check = getattr(loader, "check_state", None)
        why = check(state["loader"]) if callable(check) and state.get("loader") else None
        if why:
            raise RunError(f"{self.file}: cannot resume: the data changed since the checkpoint ({why})")
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
        missing = load_owned_states({**modules, **(owners or {})}, state["owned"])
        if missing:
            raise RunError(f"{self.file}: the checkpoint has no training state for {', '.join(missing)}")
        optimizer.load_state_dict(state["optimizer"])
        if precision is not None:
            precision.load_state_dict(state.get("scaler") or {})
        set_rng_states(state["rng"])
        pending = (dict(state.get("pending_sums", {})), int(state.get("pending_count", 0)))
        return int(state["step"]), list(state["history"]), pending


def _accumulate(sums: dict[str, Any], name: str, value: Tensor | float) -> None:
    """Add a logged term without a host sync per step (tensors stay on their device until logged)."""
    if isinstance(value, Tensor):
        value = value.detach()
        value = value.to(torch.float32 if value.device.type == "mps" else torch.float64)
    sums[name] = sums[name] + value if name in sums else value


def train_loop(
    *,
    modules: dict[str, nn.Module],
    params: list[nn.Parameter],
    settings: TrainSettings,
    steps: int,
    batch_fn: BatchFn,
    loss_fn: LossFn,
    after_step: Callable[[dict[str, Any]], Mapping[str, float | Tensor] | None] | None = None,
    checkpointer: Checkpointer | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    lr: float | None = None,
    log_every: int = 10,
    owners: Mapping[str, Any] | None = None,
) -> list[dict[str, float]]:
    """Run ``steps`` optimizer steps; returns the loss history (means per ``log_every`` steps).

    ``loss_fn(batch, step)`` returns a dict with ``"loss"`` (the tensor to minimise)
    and optional named terms; it runs under the precision of ``settings`` (autocast).
    ``after_step(batch)`` runs auxiliary updates, in float32. ``batch_fn(step)`` gives the
    batch of a step; when it has ``state_dict``/``check_state`` (a
    :class:`bdcore.data.loader.StepLoader`) its position is checkpointed and checked on resume.
    ``owners``: components beyond ``modules`` whose training state is checkpointed (an attack
    loss, a trigger that is not trained) and whose ``keep_fp32`` parts run in float32.
    ``progress(done, record)`` is called after every step: ``record`` is empty, except every
    ``log_every`` steps (and at the last) where it is the history record plus ``"lr"``.
    """
    optimizer = make_optimizer(params, settings, lr)
    checkpointer = checkpointer or Checkpointer(None, 1)
    first = optimizer.param_groups[0]["params"][0]
    precision = MixedPrecision(settings.precision, first.device.type)
    everything = {**modules, **(owners or {})}
    nets = [m for m in everything.values() if isinstance(m, nn.Module)]
    layout = [m for m in modules.values() if settings.channels_last and has_conv(m)]
    for m in layout:
        m.to(memory_format=torch.channels_last)
    start, history, (sums, count) = checkpointer.restore(
        modules, optimizer, owners=owners, precision=precision, loader=batch_fn
    )
    compiled = compile_children(modules.values()) if settings.compile else []
    for m in modules.values():
        m.train()
    # undone after the loop; if a step raises they stay, harmless: the wrapper is a no-op outside autocast
    islands = Fp32Islands(nets if precision.enabled else [])
    for step in range(start, steps):
        batch = batch_fn(step)
        if layout:
            batch = channels_last_batch(batch)
        with precision.autocast():
            terms = loss_fn(batch, step)
        loss = terms.get("loss") if isinstance(terms, Mapping) else None
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            raise ContractError(
                f"the training loss must return a dict with a scalar tensor 'loss', got {type(terms).__name__}"
            )
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss)
        precision.step(optimizer, params, settings.grad_clip)
        extra = after_step(batch) if after_step is not None else None
        for k, v in terms.items():
            if isinstance(v, Tensor) and v.ndim == 0:
                _accumulate(sums, k, v)
        for name, value in (extra or {}).items():
            _accumulate(sums, name, value if isinstance(value, Tensor) else float(value))
        count += 1
        done = step + 1
        if done % log_every == 0 or done == steps:
            record = {"step": float(done), **{k: float(v) / count for k, v in sums.items()}}
            if not math.isfinite(record.get("loss", 0.0)):
                raise RunError(f"training diverged at step {done}: loss is {record['loss']}")
            history.append(record)
            sums, count = {}, 0
            if progress is not None:
                progress(done, {**record, "lr": float(optimizer.param_groups[0]["lr"])})
        elif progress is not None:
            progress(done, {})
        if done % checkpointer.every == 0 and done < steps:
            pending = ({k: float(v) for k, v in sums.items()}, count)
            checkpointer.save(
                done, modules, optimizer, history, pending, owners=owners, precision=precision, loader=batch_fn
            )
    islands.remove()
    uncompile(compiled)
    for m in layout:
        m.to(memory_format=torch.contiguous_format)
    for m in modules.values():
        m.eval()
    return history
