"""Test plugin for sweeps: a toy victim whose worker dies once (a lost worker), and host factories.

``fragile-denoiser`` is the toy denoiser; on its ``die_at``-th training step it kills its own
process with SIGKILL, once per ``marker`` file (the first process to get there creates the file,
then dies; a retried task finds it and trains normally).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import attrs

from bdcore import hookimpl
from bdcore.errors import DataError
from bdcore.testing import make_host
from bdcore.testing.toy import DenoiserParams, ToyDenoiser


@attrs.frozen
class FragileParams(DenoiserParams):
    die_at: int = -1
    marker: str = ""
    sleep: float = 0.0  # seconds per training step, to make two cells overlap in time
    fail_at: int = -1  # raise a DataError on this training step (a cell that fails at run time)


class FragileDenoiser(ToyDenoiser):
    def __init__(self, params: FragileParams, ctx: Any) -> None:
        super().__init__(params, ctx)
        self.die_at = params.die_at
        self.marker = Path(params.marker) if params.marker else None
        self.calls = 0
        self.sleep = params.sleep
        self.fail_at = params.fail_at

    def clean_loss(self, batch: dict[str, Any]) -> Any:
        self.calls += 1
        if self.marker is not None and self.calls == self.die_at and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        if self.calls == self.fail_at:
            raise DataError(f"sample {self.calls}: unreadable image (sweepplug fail_at)")
        if self.sleep and self.training:
            time.sleep(self.sleep)
        return super().clean_loss(batch)


@hookimpl
def register_victims(register: Any) -> None:
    register("fragile-denoiser", FragileDenoiser, params=FragileParams, summary="Toy denoiser that dies once (tests)")


def host() -> Any:
    """Plugin host for sweep workers: built-ins, the toy plugin and this one (importable by name)."""
    import sweepplug

    return make_host([sweepplug])


#: A 4-cell × 2-seed grid of toy components (about a second per cell on a CPU).
TOY_SWEEP = """
[run]
name = "toy"
checkpoint_every = {checkpoint_every}
[data]
use = "toy-smooth"
params = {{ count = 12, size = 16 }}
[victim]
use = "{victim}"
params = {victim_params}
[train]
steps = 8
batch_size = 4
lr = 2e-3
[attack]
poison_rate = 0.3
steps = {attack_steps}
batch_size = 4
lr = 5e-3
from_clean = true
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert"
[[metric]]
use = "psnr"
[[metric]]
use = "ssim"
[sweep]
seeds = {seeds}
{extra}
[sweep.axes]
"attack.loss.use" = ["toy-invert", "toy-invert-controlled"]
"attack.trigger.params.size" = [0.25, 0.5]
[sweep.table]
rows = ["loss"]
columns = ["size", "metric"]
models = ["attacked"]
splits = ["poisoned"]
"""


def toy_sweep(
    *,
    seeds: str = "[0, 1]",
    attack_steps: int = 8,
    checkpoint_every: int = 100,
    victim: str = "toy-denoiser",
    victim_params: str = "{ width = 8 }",
    extra: str = "",
) -> str:
    return TOY_SWEEP.format(
        seeds=seeds,
        attack_steps=attack_steps,
        checkpoint_every=checkpoint_every,
        victim=victim,
        victim_params=victim_params,
        extra=extra,
    )


class Collect:
    """A progress display that keeps what it is shown."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.done: list[str] = []

    def event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def finished(self, cell: str, line: str) -> None:
        self.done.append(cell)
