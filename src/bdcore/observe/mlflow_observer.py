"""The ``mlflow`` observer: one MLflow run per bdcore run.

* params: the resolved spec flattened to dotted keys (``attack.trigger.params.k``);
* metrics: ``<stage>/<term>`` per logged step (``attack/loss``, ``attack/lr``), every result row
  as ``eval/<model>/<split>/<metric>``, and ``time/<stage>`` (seconds);
* tags: ``bdcore.version``, ``bdcore.plugin.<name>`` (distribution and version of every loaded
  plugin), ``bdcore.lib.<name>`` (torch, numpy, ...), the run folder, seed, device, git commit;
* artifacts at the end: ``report.html``, ``results.jsonl``/``.csv``, ``manifest.json``,
  ``spec.resolved.toml``, ``run.log``, ``plots/`` and ``grid/``;
* status: FINISHED, FAILED or KILLED (interrupted), as the run ended.

Inside a group (a sweep, see :mod:`bdcore.observe.group`) the run is a child of the group's
parent run. Training metrics are buffered and sent in one asynchronous batch every
``flush_seconds`` (and when a stage ends), so a logged step costs the training loop a few list
appends, not a database write.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bdcore.context import Context
from bdcore.observe.base import ObserverBase
from bdcore.observe.events import EvalRows, RunEnded, RunStarted, Scalars, StageEnded
from bdcore.observe.extras import require_module
from bdcore.observe.flatten import flatten, row_tag, safe_key
from bdcore.observe.group import MLFLOW_PARENT_ENV
from bdcore.observe.params import MlflowParams

#: The run folder's files and folders uploaded as artifacts when the run ends.
ARTIFACTS = (
    "report.html",
    "results.jsonl",
    "results.csv",
    "manifest.json",
    "spec.resolved.toml",
    "run.log",
    "poison_index.json",
    "plots",
    "grid",
)
_STATUS = {"complete": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: "C:" is a Windows drive
_MAX_PARAM = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
_MAX_TAG = 8000


def tracking_location(tracking_uri: str | None, out_root: Path, spec_dir: Path) -> tuple[str, str | None]:
    """``(tracking URI, artifact location for a new experiment or None)`` from the params.

    A URI with a scheme is used as it is; a plain path (relative to ``spec_dir``; default
    ``<out_root>/mlruns``) becomes ``sqlite:///<folder>/mlflow.db`` with artifacts in
    ``<folder>/artifacts``.
    """
    if tracking_uri and (_SCHEME.match(tracking_uri) or tracking_uri == "databricks"):
        if tracking_uri.startswith("file:"):
            # MLflow 3 refuses its file store unless asked; a user who names one asks.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        return tracking_uri, None
    folder = Path(tracking_uri).expanduser() if tracking_uri else out_root / "mlruns"
    if not folder.is_absolute():
        folder = spec_dir / folder if tracking_uri else Path.cwd() / folder
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def open_tracking(params: MlflowParams, out_root: Path, spec_dir: Path) -> tuple[Any, str]:
    """An ``MlflowClient`` on the params' tracking location and the id of ``params.experiment``
    (created when missing). A sweep calls this once, then :func:`ensure_group_run`."""
    require_module("mlflow", extra="mlflow", who='observer "mlflow"')
    from mlflow.tracking import MlflowClient

    # a new database announces its schema migrations at INFO (alembic, mlflow's db utils): not the user's business
    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uri, artifacts = tracking_location(params.tracking_uri, out_root, spec_dir)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(params.experiment)
    if exp is not None:
        return client, exp.experiment_id
    try:
        return client, client.create_experiment(params.experiment, artifact_location=artifacts)
    except Exception:  # another process created it first
        exp = client.get_experiment_by_name(params.experiment)
        if exp is None:
            raise
        return client, exp.experiment_id


def ensure_group_run(client: Any, experiment_id: str, group: str) -> str:
    """The id of the parent run of ``group``: ``$BDCORE_MLFLOW_PARENT_RUN_ID`` when set, else
    the earliest run tagged ``bdcore.group=<group>, bdcore.role=group``, made when there is none.

    Two cells that start together may both make one; both then pick the earliest and the other
    is deleted, so every cell of a group ends under one parent. A sweep that calls this once
    before its cells and exports the id avoids even that.
    """
    explicit = os.environ.get(MLFLOW_PARENT_ENV, "").strip()
    if explicit:
        return explicit
    found = _group_runs(client, experiment_id, group)
    if found:
        return found[0]
    mine = client.create_run(experiment_id, run_name=group, tags={"bdcore.group": group, "bdcore.role": "group"})
    client.set_terminated(mine.info.run_id, "FINISHED")  # a container, not a running job
    winner = _group_runs(client, experiment_id, group)[0]
    if winner != mine.info.run_id:
        client.delete_run(mine.info.run_id)
    return winner


def _group_runs(client: Any, experiment_id: str, group: str) -> list[str]:
    runs = client.search_runs(
        [experiment_id],
        filter_string="tags.`bdcore.role` = 'group'",
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    # the group name is compared here, not in the filter string: it may hold quotes
    return [r.info.run_id for r in runs if r.data.tags.get("bdcore.group") == group]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_tags(event: RunStarted) -> dict[str, str]:
    """Tags of the MLflow run: versions of bdcore, its plugins and libraries; where the run is."""
    m = event.manifest
    tags = {
        "bdcore.version": str(m.get("bdcore", "")),
        "bdcore.run_name": event.name,
        "bdcore.run_dir": str(event.run_dir),
        "bdcore.seed": str(m.get("seed", "")),
        "bdcore.device": str(m.get("device", "")),
        "mlflow.source.name": str(m.get("spec", "")),
    }
    if m.get("git_sha"):
        tags["mlflow.source.git.commit"] = str(m["git_sha"])
    if event.group:
        tags["bdcore.group"] = event.group
    if m.get("overrides"):
        tags["bdcore.overrides"] = " ".join(m["overrides"])
    for p in m.get("plugins", []):
        tags[safe_key(f"bdcore.plugin.{p['plugin']}")] = f"{p['distribution']} {p['version']}"
    for lib, version in m.get("libraries", {}).items():
        tags[safe_key(f"bdcore.lib.{lib}")] = str(version)
    return {k: v[:_MAX_TAG] for k, v in tags.items()}


class MlflowObserver(ObserverBase):
    """Logs a run to MLflow."""

    def __init__(self, params: MlflowParams, ctx: Context) -> None:
        require_module("mlflow", extra="mlflow", who='observer "mlflow"')
        self.params = params
        self.ctx = ctx
        self.client: Any = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self._pending: list[Any] = []
        self._buffer: list[tuple[str, float, int, int]] = []
        self._flushed = time.monotonic()
        self._keys: dict[str, str] = {}

    # -- names ---------------------------------------------------------------------
    def _key(self, name: str) -> str:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = safe_key(name)
        return key

    # -- events --------------------------------------------------------------------
    def on_run_start(self, event: RunStarted) -> None:
        from mlflow.entities import Param

        self.client, experiment_id = open_tracking(
            self.params, event.tracking_root or event.out_root, self.ctx.spec_dir
        )
        tags = run_tags(event)
        if event.group:
            tags["mlflow.parentRunId"] = ensure_group_run(self.client, experiment_id, event.group)
        earlier = self._earlier_run(experiment_id, event) if event.resumed else None
        if earlier is not None:  # bdcore run --resume continues the MLflow run of its run folder
            self.run_id = earlier
            self.client.update_run(earlier, status="RUNNING")
            for key, value in tags.items():
                self.client.set_tag(earlier, key, value)
        else:
            self.run_id = self.client.create_run(experiment_id, run_name=event.run_dir.name, tags=tags).info.run_id
        self.run_dir = event.run_dir
        params: dict[str, str] = {}
        for k, v in flatten(event.spec).items():
            key = safe_key(k)
            while key in params:  # two names that sanitise alike keep both values
                key += "_"
            params[key] = str(v)[:_MAX_PARAM]
        items = [Param(k, v) for k, v in params.items()]
        for chunk in _chunks(items, 100):  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
            self.client.log_batch(self.run_id, params=chunk)
        spec_file = event.run_dir / "spec.resolved.toml"
        if spec_file.is_file():
            self.client.log_artifact(self.run_id, str(spec_file))

    def _earlier_run(self, experiment_id: str, event: RunStarted) -> str | None:
        runs = self.client.search_runs(
            [experiment_id], filter_string="tags.`bdcore.run_dir` != ''", order_by=["attributes.start_time DESC"]
        )
        # compared here, not in the filter string: a path may hold quotes
        found = [r.info.run_id for r in runs if r.data.tags.get("bdcore.run_dir") == str(event.run_dir)]
        return found[0] if found else None

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        """Buffer metrics; they leave in one asynchronous batch every ``flush_seconds`` (and at
        each stage's end), so a logged training step costs a few list appends."""
        if self.run_id is None:
            return
        ts = int(time.time() * 1000)
        self._buffer.extend((self._key(k), float(v), ts, step) for k, v in values.items())
        if len(self._buffer) >= 1000 or time.monotonic() - self._flushed >= self.params.flush_seconds:
            self._flush()

    def _flush(self) -> None:
        from mlflow.entities import Metric

        self._flushed = time.monotonic()
        if self.run_id is None or not self._buffer:
            return
        metrics = [Metric(*m) for m in self._buffer]
        self._buffer = []
        for chunk in _chunks(metrics, 1000):  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
            self._pending.append(self.client.log_batch(self.run_id, metrics=chunk, synchronous=False))
        self._pending = [p for p in self._pending if not _done(p)]

    def on_scalars(self, event: Scalars) -> None:
        self._log_metrics({f"{event.stage}/{k}": v for k, v in event.values.items()}, event.step)

    def on_stage_end(self, event: StageEnded) -> None:
        if "/" not in event.stage and event.status == "done":
            self._log_metrics({f"time/{event.stage}": event.seconds}, 0)
        self._flush()  # a finished stage's curve is in the store

    def on_eval_rows(self, event: EvalRows) -> None:
        self._log_metrics({row_tag(r): float(r["value"]) for r in event.rows}, 0)
        self._flush()

    def on_run_end(self, event: RunEnded) -> None:
        if self.run_id is None:
            return
        failure: Exception | None = None
        try:
            self._wait()
        except Exception as exc:  # noqa: BLE001 - still upload and close the run; raised below
            failure = exc
        if self.params.artifacts:
            for name in ARTIFACTS:
                path = event.run_dir / name
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path))
                elif path.is_dir() and any(path.iterdir()):
                    self.client.log_artifacts(self.run_id, str(path), artifact_path=name)
        self.client.set_tag(self.run_id, "bdcore.status", event.status)
        if event.error:
            self.client.set_tag(self.run_id, "bdcore.error", event.error[:_MAX_TAG])
        self.client.set_terminated(self.run_id, _STATUS.get(event.status, "FAILED"))
        self.run_id = None
        if failure is not None:
            raise failure

    def _wait(self) -> None:
        self._flush()
        pending, self._pending = self._pending, []
        for p in pending:
            p.wait()

    def close(self) -> None:
        if self.run_id is not None:  # the run ended without a run_end (or it failed half-way)
            run_id, self.run_id = self.run_id, None
            try:
                self._wait()
            finally:
                self.client.set_terminated(run_id, "FAILED")


def _done(operation: Any) -> bool:
    # RunOperations keeps its futures private; unknown shapes count as pending (waited at the end)
    futures = getattr(operation, "_operation_futures", None)
    if not futures:
        return False
    return all(f.done() for f in futures)
