"""The group a run belongs to: how a sweep nests its cells in the trackers.

A sweep runs each cell as an ordinary run. It tells the cells which group they belong to
by one of:

* the ``group`` argument of :func:`bdcore.engine.run.execute` (in-process cells);
* the environment variable ``BDCORE_RUN_GROUP`` (cells in other processes, Ray tasks,
  ``bdcore run`` subprocesses);
* for MLflow, also ``BDCORE_MLFLOW_PARENT_RUN_ID``: the id of a parent run the sweep made
  itself (:func:`bdcore.observe.mlflow.ensure_group_run`); without it the first cell makes
  the parent run, found again by its ``bdcore.group`` tag.

Then TensorBoard writes the cell into ``<log_dir>/<group>/<run>`` and MLflow records it as a
child of the group's parent run (``mlflow.parentRunId``), so the trackers' own comparison
views show the cells of one sweep together.
"""

from __future__ import annotations

import os

GROUP_ENV = "BDCORE_RUN_GROUP"
MLFLOW_PARENT_ENV = "BDCORE_MLFLOW_PARENT_RUN_ID"


def run_group(explicit: str | None = None) -> str | None:
    """``explicit``, else ``$BDCORE_RUN_GROUP``, else None (empty strings count as unset)."""
    group = explicit if explicit else os.environ.get(GROUP_ENV, "")
    return group.strip() or None
