"""Testing helpers for bdcore and plugin authors.

* :mod:`bdcore.testing.fixtures`: pytest fixtures (``bd_host``, ``register_plugin``,
  ``tiny_images``) — in a plugin's ``tests/conftest.py``::

      from bdcore.testing.fixtures import *  # noqa: F403

* :func:`run_spec`: a whole spec, in-process, in seconds.
* :mod:`bdcore.testing.contracts`: contract suites to subclass.
* :mod:`bdcore.testing.toy`: a tiny example plugin (denoiser victim, patch trigger,
  poisoning and training-controlled attacks) used by bdcore's own tests.
"""

from __future__ import annotations

from bdcore.testing.runner import RunOutcome, make_host, run_spec

__all__ = ["RunOutcome", "make_host", "run_spec"]
