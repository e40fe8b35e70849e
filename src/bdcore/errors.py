"""Exception hierarchy and exit codes.

Every error bdcore raises on purpose is a :class:`BdcoreError`. The CLI maps each
subclass to a documented exit code and prints its message without a traceback
(unless ``--traceback`` or ``BDCORE_RAISE=1``).

========================  =========  ==============================================
exception                 exit code  meaning
========================  =========  ==============================================
(none)                    0          the command succeeded
:class:`RunError` etc.    1          the run failed (a component raised, a contract
                                     was broken, a file could not be read or written)
:class:`SpecError`        2          the spec is invalid or the CLI was misused; an
                                     unknown component name in a spec is one of these
:class:`PluginError`      3          a required plugin is missing, broken or in
                                     conflict with another one
========================  =========  ==============================================
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_SPEC = 2
EXIT_PLUGIN = 3


class BdcoreError(Exception):
    """Base class of every error bdcore raises on purpose."""

    exit_code: int = EXIT_RUN_FAILED


@attrs.frozen
class Issue:
    """One problem found in a spec.

    ``path`` is the dotted TOML key (``attack.trigger.params.eps``), or ``""``
    for a problem with the file as a whole.
    """

    path: str
    message: str
    hint: str | None = None

    def render(self, file: str) -> str:
        """``FILE: dotted.key: message (hint)`` on one line; user text (keys, values, the file
        name) is shown literally, control characters escaped (see :func:`bdcore.text.printable`)."""
        from bdcore.text import printable

        where = f"{printable(file)}: {printable(self.path)}: " if self.path else f"{printable(file)}: "
        tail = f" ({printable(self.hint)})" if self.hint else ""
        return f"{where}{printable(self.message)}{tail}"


class SpecError(BdcoreError):
    """The spec is invalid: carries every issue found, not just the first."""

    exit_code = EXIT_BAD_SPEC

    def __init__(self, file: str, issues: Sequence[Issue]) -> None:
        self.file = file
        self.issues = list(issues)
        super().__init__(self.render())

    def render(self) -> str:
        from bdcore.text import printable

        n = len(self.issues)
        head = f"{printable(self.file)}: {n} problem{'s' if n != 1 else ''} found"
        return "\n".join([head, *(f"  {i.render(self.file)}" for i in self.issues)])


class UsageError(BdcoreError):
    """The command line was misused (bad option combination, missing run folder)."""

    exit_code = EXIT_BAD_SPEC


class PluginError(BdcoreError):
    """A plugin problem: it failed to load, two plugins conflict, or one is missing."""

    exit_code = EXIT_PLUGIN


class PluginLoadError(PluginError):
    """A plugin that a spec needs failed to import or to register its components."""


class PluginConflictError(PluginError):
    """Two plugins registered a component of the same kind under the same name."""


class ComponentNotFound(PluginError):
    """Code asked for a component no loaded plugin provides (e.g. a plugin's ``ctx.build``); an unknown name in a spec is a spec problem (exit 2, with "did you mean"), reported as a :class:`SpecError`.

    The exception: a name that belongs to a first-party plugin distribution that is not
    installed, or to a distribution listed in ``[run] requires`` that is missing, is a plugin
    problem (exit 3) naming the distribution and the ``pip install`` command.
    """


class MissingRequirement(PluginError):
    """A plugin distribution the spec needs is not installed, not loaded, or has the wrong version.

    Needed means listed in ``[run] requires``, or providing a first-party component the spec names
    (``fine-pruning`` needs ``bd-plugin-baselines``; see :mod:`bdcore.first_party`). Checked before the
    spec's components are resolved, so a missing plugin is never reported as an unknown name.
    """


class RunError(BdcoreError):
    """The run failed for a reason that is not a spec or plugin problem."""


class ContractError(RunError):
    """A component broke its protocol (wrong shape, range, device, missing key)."""


class ComponentError(RunError):
    """A component raised; wraps the original error with the component's provenance.

    Plugins subclass this for their own failures so the CLI reports them cleanly.
    """


class DataError(RunError):
    """A data file or folder is missing, empty or unreadable."""


class OutputError(RunError):
    """A file or folder of the run could not be written (full disk, read-only or forbidden folder).

    The message names the path and what to do; finished stages stay in the stage store and
    ``bdcore run --resume`` continues once the cause is fixed.
    """


class UntrustedFileError(RunError):
    """A checkpoint would execute code when loaded, or its sha256 does not match."""


class MissingExtra(PluginError):
    """A chosen component needs an optional dependency that is not installed (the message
    names the extra to install, e.g. ``pip install 'bdcore[mlflow]'``)."""


class Terminated(KeyboardInterrupt):
    """A SIGTERM (``kill PID``, a scheduler's stop), raised where Ctrl-C would raise KeyboardInterrupt, so a
    command stops the same way; unlike Ctrl-C, it reached this process only, not its worker processes."""
