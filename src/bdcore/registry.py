"""The component registry: one record per registered trigger, victim, loss, defense,
metric, dataset and observer.

Plugins never touch :class:`Registry` directly. Each registration hook receives a
:class:`Register` bound to one kind and one plugin, and calls it once per
component::

    @bdcore.hookimpl
    def register_triggers(register):
        register("ftrojan", "bd_plugin_baselines.triggers.ftrojan:FTrojan",
                 params=FTrojanParams, summary="Block-DCT frequency trigger",
                 paper="Wang et al., ECCV 2022")

The record keeps the provenance (plugin, distribution, version) for the manifest,
and the ``Params`` attrs class so a whole spec is validated before any tensor is
made. A name registered twice is a hard error naming both distributions.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import attrs

from bdcore.errors import ComponentNotFound, PluginConflictError, PluginLoadError
from bdcore.text import exception_text

Kind = Literal["trigger", "victim", "attack_loss", "defense", "metric", "dataset", "observer"]

#: Every kind, in the order the CLI lists them, with the plural used on the command line.
KINDS: dict[Kind, str] = {
    "trigger": "triggers",
    "victim": "victims",
    "attack_loss": "attack-losses",
    "defense": "defenses",
    "metric": "metrics",
    "dataset": "datasets",
    "observer": "observers",
}


@attrs.frozen
class NoParams:
    """Params class of a component that takes no parameters."""


@attrs.frozen
class Provenance:
    """Where a component comes from: plugin (entry-point name), distribution, version."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}"


def import_object(ref: str) -> Any:
    """``"package.module:attr.path"`` → the object it names (a plugin's factory, a user's network class).

    Raises ``ImportError`` (module missing, or no such attribute, named in the message); whatever
    the imported module itself raises passes through.
    """
    module_name, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


@attrs.frozen
class Component:
    """One registered component.

    ``factory`` is called as ``factory(params, ctx)`` and returns the component
    object (see :mod:`bdcore.protocols`). It may be given as a lazy
    ``"package.module:attr"`` string so that listing and spec checking never
    import torch-heavy modules.
    """

    kind: Kind
    name: str
    factory_ref: Callable[..., Any] | str
    params: type
    provenance: Provenance
    summary: str = ""
    paper: str | None = None
    aliases: tuple[str, ...] = ()

    def load_factory(self) -> Callable[..., Any]:
        """Import and return the factory (resolving a ``"mod:attr"`` string)."""
        ref = self.factory_ref
        if not isinstance(ref, str):
            return ref
        try:
            obj = import_object(ref)
        except Exception as exc:  # noqa: BLE001 - reported with provenance
            raise PluginLoadError(
                f'{self.kind.replace("_", " ")} "{self.name}" ({self.provenance}) could not be '
                f"imported from {ref!r}: {exception_text(exc)}"
            ) from exc
        if not callable(obj):
            raise PluginLoadError(f'{self.kind} "{self.name}" ({self.provenance}): {ref!r} is not callable')
        return obj  # type: ignore[no-any-return]

    def build(self, params: Any, ctx: Any) -> Any:
        """Instantiate the component with structured ``params`` and a context."""
        return self.load_factory()(params, ctx)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (used by ``bdcore list --json`` and the manifest)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "summary": self.summary,
            "paper": self.paper,
            "plugin": self.provenance.plugin,
            "distribution": self.provenance.distribution,
            "version": self.provenance.version,
            "aliases": list(self.aliases),
        }


class Registry:
    """All registered components, by kind and name."""

    def __init__(self) -> None:
        self._by_kind: dict[Kind, dict[str, Component]] = {k: {} for k in KINDS}
        self._aliases: dict[Kind, dict[str, str]] = {k: {} for k in KINDS}
        #: Components a failed plugin would have provided are unknown; this maps
        #: plugin name -> error text so lookups can say *why* a name is missing.
        self.unavailable: dict[str, str] = {}

    def add(self, component: Component) -> None:
        table = self._by_kind[component.kind]
        for name in (component.name, *component.aliases):
            existing = self.get_or_none(component.kind, name)
            if existing is not None:
                raise PluginConflictError(
                    f'{component.kind.replace("_", " ")} "{name}" is registered by two plugins: '
                    f"{existing.provenance} (plugin {existing.provenance.plugin!r}) and "
                    f"{component.provenance} (plugin {component.provenance.plugin!r}). "
                    f"Uninstall one, or set BDCORE_DISABLE_PLUGINS={component.provenance.plugin}"
                )
        table[component.name] = component
        for alias in component.aliases:
            self._aliases[component.kind][alias] = component.name

    def get_or_none(self, kind: Kind, name: str) -> Component | None:
        name = self._aliases[kind].get(name, name)
        return self._by_kind[kind].get(name)

    def get(self, kind: Kind, name: str) -> Component:
        found = self.get_or_none(kind, name)
        if found is None:
            raise ComponentNotFound(self.not_found_message(kind, name))
        return found

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._by_kind[kind])

    def of_kind(self, kind: Kind) -> list[Component]:
        return [self._by_kind[kind][n] for n in self.names(kind)]

    def __iter__(self) -> Iterator[Component]:
        for kind in KINDS:
            yield from self.of_kind(kind)

    def not_found_message(self, kind: Kind, name: str) -> str:
        label = kind.replace("_", " ")
        names = self.names(kind) + list(self._aliases[kind])
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        parts = [f'unknown {label} "{name}".']
        if close:
            parts.append(f'Did you mean "{close[0]}"?')
        parts.append(f"Installed: {', '.join(self.names(kind)) or '(none)'}")
        if self.unavailable:
            failed = "; ".join(f"{p}: {e}" for p, e in sorted(self.unavailable.items()))
            parts.append(f"(plugins that failed to load: {failed})")
        return " ".join(parts)


class Register:
    """The callable handed to a registration hook; bound to one kind and one plugin.

    ``register(name, factory, *, params=NoParams, summary="", paper=None, aliases=())``
    """

    def __init__(self, registry: Registry, kind: Kind, provenance: Provenance) -> None:
        self._registry = registry
        self.kind = kind
        self.provenance = provenance
        self.registered: list[str] = []

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any] | str,
        *,
        params: type = NoParams,
        summary: str = "",
        paper: str | None = None,
        aliases: tuple[str, ...] | list[str] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise PluginLoadError(f"{self.provenance}: register() needs a non-empty name")
        if not attrs.has(params):
            raise PluginLoadError(
                f'{self.kind} "{name}" ({self.provenance}): params must be an attrs class, got {params!r}'
            )
        if not summary and not isinstance(factory, str):
            summary = (factory.__doc__ or "").strip().splitlines()[0] if factory.__doc__ else ""
        self._registry.add(
            Component(
                kind=self.kind,
                name=name,
                factory_ref=factory,
                params=params,
                provenance=self.provenance,
                summary=summary,
                paper=paper,
                aliases=tuple(aliases),
            )
        )
        self.registered.append(name)


def params_defaults(component: Component) -> Mapping[str, Any]:
    """The default values of a component's params (fields without default are omitted)."""
    out: dict[str, Any] = {}
    for f in attrs.fields(component.params):
        if f.default is attrs.NOTHING:
            continue
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()  # type: ignore[attr-defined]
        out[f.name] = default
    return out
