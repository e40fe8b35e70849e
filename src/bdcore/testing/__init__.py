"""Testing helpers for bdcore and plugin authors.

* :mod:`bdcore.testing.fixtures`: pytest fixtures (``bd_host``, ``register_plugin``,
  ``tiny_images``) — in a plugin's ``tests/conftest.py``::

      from bdcore.testing.fixtures import *  # noqa: F403

* :func:`run_spec`: a whole spec, in-process, in seconds.
* :mod:`bdcore.testing.contracts`: contract suites to subclass.
* :class:`ResumeContract` / :func:`assert_exact_resume` (:mod:`bdcore.testing.resume`): a victim
  or attack loss resumes bit-identically from a training checkpoint; :func:`kill_and_resume`: a
  whole spec killed with SIGKILL in its training stages and resumed ends as an uninterrupted run.
* :mod:`bdcore.testing.toy`: a tiny example plugin (denoiser victim, patch trigger,
  poisoning and training-controlled attacks) used by bdcore's own tests.
"""

from __future__ import annotations

from typing import Any

from bdcore.testing.runner import RunOutcome, make_host, run_spec

__all__ = ["ResumeContract", "RunOutcome", "assert_exact_resume", "kill_and_resume", "make_host", "run_spec"]


def __getattr__(name: str) -> Any:
    if name in ("ResumeContract", "assert_exact_resume", "kill_and_resume"):  # imports torch: only when asked for
        from bdcore.testing import resume

        return getattr(resume, name)
    raise AttributeError(f"module 'bdcore.testing' has no attribute {name!r}")
