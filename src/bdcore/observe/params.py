"""Params of the built-in observers (no tensorboard or mlflow import: ``bdcore check`` stays fast)."""

from __future__ import annotations

from pathlib import Path

import attrs
from attrs import validators as v


@attrs.frozen
class TensorBoardParams:
    """``log_dir``: the folder of event files (default: ``tensorboard`` in the output root);
    each run writes into ``<log_dir>/<run folder name>``, or ``<log_dir>/<group>/<run folder
    name>`` inside a group (a sweep), so ``tensorboard --logdir runs/tensorboard`` shows every
    run side by side. ``flush_seconds``: how often events reach the disk (live curves).
    ``images``: log the report's image grid. ``hparams``: write the resolved spec and the
    evaluation metrics to TensorBoard's HPARAMS view (runs compared as a table)."""

    log_dir: Path | None = attrs.field(default=None, metadata={"output": True})
    flush_seconds: float = attrs.field(default=10.0, validator=v.gt(0))
    images: bool = True
    hparams: bool = True


@attrs.frozen
class MlflowParams:
    """``tracking_uri``: where runs are recorded. A URI with a scheme goes to MLflow as it is
    (``http://host:5000``, ``sqlite:///path.db``, ``databricks``; ``file:///path`` is MLflow's
    file store, in maintenance mode since MLflow 3: bdcore allows it). A plain path (relative to
    the spec) names a local folder that bdcore fills with an SQLite database ``mlflow.db`` and an
    ``artifacts`` folder. Default: the folder ``mlruns`` in the output root; browse it with
    ``mlflow ui --backend-store-uri sqlite:///runs/mlruns/mlflow.db``.
    ``experiment``: the MLflow experiment the runs go to. ``artifacts``: upload the run folder's
    report, results, manifest, spec, log, plots and grid at the end. ``flush_seconds``: how often
    buffered training metrics are sent (live curves; every stage's end sends them too)."""

    tracking_uri: str | None = None
    experiment: str = attrs.field(default="bdcore", validator=v.min_len(1))
    artifacts: bool = True
    flush_seconds: float = attrs.field(default=5.0, validator=v.ge(0))
