"""The observers a run uses: the spec's ``[run] observers`` plus ``bdcore run --observe NAME``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from bdcore.context import Context
from bdcore.errors import Issue, PluginError, SpecError
from bdcore.registry import Registry
from bdcore.spec.structure import LoadedSpec, Resolved, structure_params

log = logging.getLogger("bdcore")


def with_observers(loaded: LoadedSpec, names: Iterable[str], registry: Registry) -> LoadedSpec:
    """``loaded`` plus the observers named on the command line (default params; a name the
    spec already chose is kept as the spec has it).

    Raises:
        SpecError: an unknown name (exit 2), with the installed observers and a close match.
    """
    have = {r.label for r in loaded.observers} | {r.component.name for r in loaded.observers}
    extra: list[Resolved] = []
    issues: list[Issue] = []
    for name in names:
        if name in have:
            continue
        component = registry.get_or_none("observer", name)
        if component is None:
            issues.append(Issue("--observe", registry.not_found_message("observer", name)))
            continue
        params = structure_params(component, {}, path=f"--observe {name}", file=str(loaded.file))
        extra.append(Resolved(path=f"--observe {name}", component=component, params=params, label=name))
        have.add(name)
    if issues:
        raise SpecError(str(loaded.file), issues)
    return attrs.evolve(loaded, observers=(*loaded.observers, *extra)) if extra else loaded


def build_observers(resolved: Sequence[Resolved], make_ctx: Callable[[Resolved], Context]) -> list[tuple[str, Any]]:
    """Build each chosen observer: ``[(label, observer)]``.

    A missing optional package (:class:`~bdcore.errors.MissingExtra`) or any other plugin
    problem raises (exit 3) before the run starts: the user asked for this tracker. Any other
    failure to build is reported and the run goes on without that observer, like a failure
    during the run.
    """
    out: list[tuple[str, Any]] = []
    for r in resolved:
        try:
            observer = r.component.build(r.params, make_ctx(r))
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001 - an observer never fails the run
            log.warning(
                'observer "%s" (%s) could not be built, the run goes on without it: %s: %s',
                r.label,
                r.component.provenance,
                type(exc).__name__,
                exc,
            )
            continue
        if not callable(getattr(observer, "on_event", None)):
            log.warning(
                'observer "%s" (%s) has no on_event(event) method; the run goes on without it',
                r.label,
                r.component.provenance,
            )
            continue
        out.append((r.label, observer))
    return out
