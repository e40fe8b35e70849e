"""``bdcore sweep``: a grid of runs (a paper's whole table), locally or on a Ray cluster.

* :mod:`bdcore.sweep.grid`: the ``[sweep]`` table → cells (product of axes, ``zip`` groups,
  ``seeds``, ``exclude``), each an ordinary run of the spec with ``--set``-style overrides;
* :mod:`bdcore.sweep.plan`: the stage keys of every cell, computed without training → which
  stages cells share and how many trainings the grid needs;
* :mod:`bdcore.sweep.store`: the stage store every cell uses (a folder or an fsspec URL) with a
  file lock per stage key, so a shared stage is trained once;
* :mod:`bdcore.sweep.cell`: one cell in a worker (``bdcore.engine.run.execute``, never a second
  engine); :mod:`bdcore.sweep.identity`: the cell's identity for experiment trackers;
* :mod:`bdcore.sweep.executors`: in order, in worker processes, or as Ray tasks;
* :mod:`bdcore.sweep.driver`: the sweep folder, ``sweep.json``, faults and ``--resume``;
* :mod:`bdcore.sweep.aggregate`: ``results.csv``, mean ± std over seeds, the pivot table
  (Markdown, CSV, LaTeX) and the HTML report.

Not to be confused with ``[[defense]] sweep = {param, values}``, which evaluates one defense
at several settings inside a single run.
"""
