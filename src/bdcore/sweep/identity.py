"""Which sweep and cell the current run belongs to: for experiment trackers and observers.

While ``bdcore sweep`` runs a cell, in whichever worker, these environment variables are set
(and restored afterwards), so a tracker can nest the cell's run under its sweep (an MLflow parent
run, a TensorBoard folder per sweep) and the variables also reach any subprocess the run starts:

==========================  ====================================================================
``BDCORE_SWEEP_NAME``       the sweep's name (``[sweep] name`` or the run name)
``BDCORE_SWEEP_DIR``        the sweep folder (absolute), holding ``sweep.json``
``BDCORE_SWEEP_CELL``       the cell's name, e.g. ``loss=bavaft-psnr,quality=50,seed=0``
``BDCORE_SWEEP_CONFIG``     the cell's name without its seed (the cells averaged together)
==========================  ====================================================================

Read them with :func:`current`; outside a sweep it returns None. ``BDCORE_RUN_GROUP`` is set too,
to the sweep folder's name (``robustness-20261206-021719``: one group per sweep run), the group
the experiment trackers nest a run under.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import attrs

#: The trackers' group of a run (``bdcore.observe.group``).
GROUP_ENV = "BDCORE_RUN_GROUP"
_VARS = {
    "sweep": "BDCORE_SWEEP_NAME",
    "sweep_dir": "BDCORE_SWEEP_DIR",
    "cell": "BDCORE_SWEEP_CELL",
    "config": "BDCORE_SWEEP_CONFIG",
}


@attrs.frozen
class CellIdentity:
    """The sweep a run belongs to (name and folder) and its cell (name, and name without seed)."""

    sweep: str
    sweep_dir: str
    cell: str
    config: str


def current() -> CellIdentity | None:
    """The identity of the sweep cell running in this process, or None outside a sweep."""
    values = {field: os.environ.get(var) for field, var in _VARS.items()}
    if any(v is None for v in values.values()):
        return None
    return CellIdentity(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def running(identity: CellIdentity) -> Iterator[None]:
    """Set the variables for the duration of one cell."""
    before = {var: os.environ.get(var) for var in [*_VARS.values(), GROUP_ENV]}
    try:
        for field, var in _VARS.items():
            os.environ[var] = str(getattr(identity, field))
        os.environ[GROUP_ENV] = os.path.basename(os.path.normpath(identity.sweep_dir))
        yield
    finally:
        for var, value in before.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
