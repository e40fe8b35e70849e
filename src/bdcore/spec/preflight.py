"""Before a spec's components are resolved: are the plugins it needs installed and loaded?

A missing plugin is a plugin problem (exit code 3, with the ``pip install`` line), not a typo (exit 2,
"unknown component"). Two sources say which plugins a spec needs:

* ``[run] requires`` (checked with :meth:`bdcore.plugins.PluginHost.check_requires`);
* a component name of a first-party plugin (:data:`bdcore.first_party.FIRST_PARTY`) that is not in the
  registry, whether or not ``requires`` lists its distribution.

Both are read from the raw TOML (after ``--set``), so they hold even when the rest of the spec has
problems: ``load_spec`` then reports those.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bdcore import plugins
from bdcore.errors import MissingRequirement
from bdcore.first_party import provider
from bdcore.plugins import PluginHost
from bdcore.spec.overrides import apply_overrides
from bdcore.spec.structure import read_toml

Installed = Callable[[str], str | None]


def component_uses(raw: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(kind, dotted key, name)`` of every ``use = "..."`` in a raw spec (malformed parts skipped)."""

    def use_of(table: Any) -> str | None:
        return table.get("use") if isinstance(table, dict) and isinstance(table.get("use"), str) else None

    found: list[tuple[str, str, Any]] = [
        ("dataset", "data", raw.get("data")),
        ("victim", "victim", raw.get("victim")),
    ]
    attack = raw.get("attack")
    if isinstance(attack, dict):
        found += [
            ("trigger", "attack.trigger", attack.get("trigger")),
            ("attack_loss", "attack.loss", attack.get("loss")),
        ]
    for section, kind in (("defense", "defense"), ("metric", "metric")):
        entries = raw.get(section)
        if isinstance(entries, list):
            found += [(kind, f"{section}[{i}]", e) for i, e in enumerate(entries)]
    return [(kind, f"{key}.use", name) for kind, key, table in found if (name := use_of(table)) is not None]


def plugin_problems(raw: dict[str, Any], host: PluginHost, installed: Installed | None = None) -> list[str]:
    """Every plugin problem of a raw spec, as ``dotted.key: message`` lines (empty: none).

    ``installed(distribution)``: its installed version or None (default :func:`bdcore.plugins.installed_version`).
    """
    installed = installed or plugins.installed_version
    problems: list[str] = []
    requires = raw.get("run", {}).get("requires", []) if isinstance(raw.get("run"), dict) else []
    if isinstance(requires, list):
        valid = [r for r in requires if isinstance(r, str) and _valid_requirement(r)]
        problems += [f"run.requires: {p}" for p in host.check_requires(valid, installed)]
    for kind, key, name in component_uses(raw):
        if host.registry.get_or_none(kind, name) is not None:  # type: ignore[arg-type]
            continue
        dist = provider(kind, name)
        if dist is None:
            continue  # not first-party: an unknown name, load_spec says "did you mean" (exit 2)
        label = f'{kind.replace("_", " ")} "{name}"'
        if host.loaded_distribution(dist) is not None:
            continue  # loaded but without this name (an older version): load_spec reports it
        failure = host.failure_for_distribution(dist)
        if failure is not None:
            problems.append(
                f'{key}: {label} needs plugin "{failure.plugin}" ({failure.distribution} {failure.version}), '
                f"which failed to load: {failure.error}"
            )
        elif installed(dist) is None:
            problems.append(
                f'{key}: {label} needs a plugin: plugin distribution "{dist}" is not installed (pip install {dist})'
            )
        else:
            problems.append(
                f'{key}: {label} needs plugin distribution "{dist}", which is installed but not loaded '
                "(BDCORE_LOAD_PLUGINS or BDCORE_DISABLE_PLUGINS leaves it out)"
            )
    return problems


def check_plugins(
    file: str | Path, host: PluginHost, overrides: Sequence[str] = (), installed: Installed | None = None
) -> None:
    """Raise :class:`~bdcore.errors.MissingRequirement` (exit 3) naming every plugin the spec needs and lacks.

    A spec that cannot be read raises the same :class:`~bdcore.errors.SpecError` as ``load_spec``.
    """
    raw = copy.deepcopy(read_toml(Path(file)))
    apply_overrides(raw, overrides)  # a bad --set is load_spec's to report
    problems = plugin_problems(raw, host, installed)
    if problems:
        raise MissingRequirement("\n".join(f"{file}: {p}" for p in problems))


def _valid_requirement(text: str) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(text)
    except InvalidRequirement:
        return False  # load_spec reports it (exit 2)
    return True
