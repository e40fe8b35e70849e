"""The ``tensorboard`` observer: scalars, image grids, the spec and the run's HPARAMS row.

Writes event files with ``torch.utils.tensorboard.SummaryWriter`` into
``<log_dir>/[<group>/]<run folder name>`` (see :class:`bdcore.observe.params.TensorBoardParams`).
Tags:

* ``<stage>/<term>``: training and fit scalars (``clean-victim/loss``, ``attack/backdoor``,
  ``attack/lr``, ``trigger-fit/sf-i-net fit/loss``, ``defense/fine-pruning/train/loss``), at
  the step they were logged;
* ``eval/<model>/<split>/<metric>``: every result row (step 0);
* ``<grid tag>/<column>``: the report's image grid, one image set per column;
* text ``spec`` (the resolved spec as TOML), ``run`` (versions, plugins, run folder) and
  ``status`` at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bdcore.context import Context
from bdcore.observe.base import ObserverBase
from bdcore.observe.events import EvalRows, Images, RunEnded, RunStarted, Scalars, StageEnded
from bdcore.observe.extras import require_module
from bdcore.observe.flatten import flatten, row_tag
from bdcore.observe.params import TensorBoardParams


def _toml(spec: Any) -> str:
    import tomli_w

    try:
        return tomli_w.dumps(dict(spec))
    except (TypeError, ValueError):
        return json.dumps(spec, indent=2, default=str)


def _markdown_code(text: str, lang: str) -> str:
    # TensorBoard renders text summaries as Markdown: a fenced block keeps the layout.
    return f"```{lang}\n{text}\n```"


class TensorBoardObserver(ObserverBase):
    """Logs a run to TensorBoard event files."""

    def __init__(self, params: TensorBoardParams, ctx: Context) -> None:
        require_module("tensorboard", extra="tensorboard", who='observer "tensorboard"')
        self.params = params
        self.ctx = ctx
        self.writer: Any = None
        self.log_dir: Path | None = None
        self._hparams: dict[str, Any] = {}
        self._metric_tags: list[str] = []

    def on_run_start(self, event: RunStarted) -> None:
        from torch.utils.tensorboard import SummaryWriter

        base = self.params.log_dir or (event.tracking_root or event.out_root) / "tensorboard"
        self.log_dir = base / event.group / event.run_dir.name if event.group else base / event.run_dir.name
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=max(1, round(self.params.flush_seconds)))
        self.writer.add_text("spec", _markdown_code(_toml(event.spec), "toml"))
        manifest = event.manifest
        summary = {
            "name": event.name,
            "run_dir": str(event.run_dir),
            "group": event.group,
            "bdcore": manifest.get("bdcore"),
            "seed": manifest.get("seed"),
            "device": manifest.get("device"),
            "git_sha": manifest.get("git_sha"),
            "plugins": {p["plugin"]: f"{p['distribution']} {p['version']}" for p in manifest.get("plugins", [])},
            "libraries": manifest.get("libraries", {}),
        }
        self.writer.add_text("run", _markdown_code(json.dumps(summary, indent=2, default=str), "json"))
        if self.params.hparams:
            self._hparams = {
                k: (v if isinstance(v, bool | int | float | str) else str(v)) for k, v in flatten(event.spec).items()
            }

    def on_scalars(self, event: Scalars) -> None:
        # One event with every term of the step, not one add_scalar (and one event) per term:
        # the trainer pays this every log_every steps, and building protobufs is most of it.
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=f"{event.stage}/{k}", simple_value=float(v)) for k, v in event.values.items()]
        self.writer.file_writer.add_summary(Summary(value=values), event.step)

    def on_stage_end(self, event: StageEnded) -> None:
        if "/" not in event.stage and event.status == "done":
            self.writer.add_scalar(f"time/{event.stage}", event.seconds, 0)
        self.writer.flush()  # a finished stage's curve is on disk, whatever flush_seconds says

    def on_eval_rows(self, event: EvalRows) -> None:
        for row in event.rows:
            tag = row_tag(row)
            self.writer.add_scalar(tag, float(row["value"]), 0)
            if tag not in self._metric_tags:
                self._metric_tags.append(tag)

    def on_images(self, event: Images) -> None:
        if not self.params.images:
            return
        for label, images in event.columns.items():
            imgs = images.detach().float().clamp(0, 1).cpu()
            if imgs.shape[1] == 1:
                imgs = imgs.expand(-1, 3, -1, -1)
            self.writer.add_images(f"{event.tag}/{label}", imgs, event.step, dataformats="NCHW")

    def on_run_end(self, event: RunEnded) -> None:
        if self.writer is None:
            return
        text = f"{event.status} after {event.seconds:.1f} s" + (f": {event.error}" if event.error else "")
        self.writer.add_text("status", text)
        if self._hparams and self._metric_tags:
            from torch.utils.tensorboard.summary import hparams

            # Written into this run's own folder (not add_hparams' extra sub-run), so the
            # HPARAMS table's metric columns read the eval/... scalars logged above.
            for summary in hparams(self._hparams, dict.fromkeys(self._metric_tags, 0.0)):
                self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
