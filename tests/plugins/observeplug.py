"""Test plugin for the event stream: a learnable trigger whose fit reports progress through
``Context.progress``, an observer that records every event, and one that raises on every event."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor, nn

from bdcore import hookimpl
from bdcore.components import TriggerBase
from bdcore.observe.base import ObserverBase

#: Events seen by every ``record`` observer built in this process (cleared by the tests).
RECORDED: list[Any] = []


@attrs.frozen
class FitPatchParams:
    amplitude: float = 0.3


class FitPatch(TriggerBase):
    """A bottom-right square whose brightness is fitted (by plain gradient steps) so that the
    patched corner differs from the clean one by ``amplitude`` on average."""

    learnable = True

    def __init__(self, params: FitPatchParams, ctx: Any) -> None:
        super().__init__(params, ctx)
        self.level = nn.Parameter(torch.zeros(()))

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # type: ignore[override]
        h, w = images.shape[-2:]
        mask = torch.zeros(1, 1, h, w, dtype=images.dtype, device=images.device)
        mask[..., h // 2 :, w // 2 :] = 1.0
        return images + strength * mask * torch.sigmoid(self.level)

    def fit(self, ctx: Any) -> None:
        opt = torch.optim.SGD([self.level], lr=1.0)
        batches = ctx.batches(generator_salt="fit-patch")
        with ctx.progress("patch fit", total=ctx.steps) as bar:
            for step in range(ctx.steps):
                x = next(batches)["input"]
                gap = (self.inject_trigger(x) - x).abs().mean() * 4  # the patch covers a quarter
                loss = (gap - self.params.amplitude) ** 2
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update(step + 1, loss=loss.detach(), gap=gap.detach())


class Record(ObserverBase):
    """Keeps every event (except per-step progress) in :data:`RECORDED`."""

    def on_event(self, event: Any) -> None:
        RECORDED.append(event)

    # overriding these marks the kinds as wanted; on_event above does the work
    def on_run_start(self, event: Any) -> None: ...
    def on_stage_start(self, event: Any) -> None: ...
    def on_scalars(self, event: Any) -> None: ...
    def on_stage_end(self, event: Any) -> None: ...
    def on_eval_rows(self, event: Any) -> None: ...
    def on_images(self, event: Any) -> None: ...
    def on_run_end(self, event: Any) -> None: ...


class Explode(ObserverBase):
    """Raises on every event it is given (and on close)."""

    def on_event(self, event: Any) -> None:
        raise RuntimeError(f"boom on {event.kind}")

    def on_run_start(self, event: Any) -> None: ...
    def on_progress(self, event: Any) -> None: ...
    def on_scalars(self, event: Any) -> None: ...
    def on_message(self, event: Any) -> None: ...
    def on_run_end(self, event: Any) -> None: ...

    def close(self) -> None:
        raise OSError("cannot close")


@hookimpl
def register_triggers(register: Any) -> None:
    register("fit-patch", FitPatch, params=FitPatchParams, summary="Learnable corner patch (tests)")


@hookimpl
def register_observers(register: Any) -> None:
    register("record", Record, summary="Records events (tests)")
    register("explode", Explode, summary="Raises on every event (tests)")
