"""Plugin loading: bdcore's own entry-point loop around pluggy.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that fails to
import; bdcore records the failure instead (:class:`PluginLoadFailure`) and goes
on, so one broken plugin is fatal only to a spec that needs it.

Controls (environment variables):

* ``BDCORE_LOAD_PLUGINS=a,b`` loads only these entry points (empty: none).
* ``BDCORE_DISABLE_PLUGINS=a,b`` blocks these entry points.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
import traceback
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import attrs
import pluggy

from bdcore import hookspecs
from bdcore._version import __version__
from bdcore.errors import MissingRequirement, PluginLoadError
from bdcore.registry import KINDS, Provenance, Register, Registry
from bdcore.text import exception_text

ENTRY_POINT_GROUP = "bdcore"
BUILTIN_MODULES = ("bdcore.builtin",)
_HOOK_OF_KIND = {
    "trigger": "register_triggers",
    "victim": "register_victims",
    "attack_loss": "register_attack_losses",
    "defense": "register_defenses",
    "metric": "register_metrics",
    "dataset": "register_datasets",
    "observer": "register_observers",
}


@attrs.frozen
class PluginLoadFailure:
    """A plugin that could not be imported or could not register its components."""

    plugin: str
    distribution: str
    version: str
    error: str
    traceback: str = ""

    def describe(self) -> dict[str, str]:
        return {
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "error": self.error,
        }


@attrs.define
class LoadedPlugin:
    """A plugin that loaded, with what it registered."""

    name: str
    provenance: Provenance
    hooks: list[str] = attrs.Factory(list)
    components: dict[str, list[str]] = attrs.Factory(dict)
    builtin: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "plugin": self.name,
            "distribution": self.provenance.distribution,
            "version": self.provenance.version,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "components": self.components,
        }


class PluginHost:
    """A pluggy manager plus the registry it fills and a report of what loaded.

    Build it with :func:`load_plugins`; tests use ``load_plugins(entry_points=False)``
    and :meth:`add_plugin` for their own plugin modules.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("bdcore")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.loaded: list[LoadedPlugin] = []
        self.failures: list[PluginLoadFailure] = []

    # -- loading ---------------------------------------------------------------
    def add_plugin(
        self,
        plugin: ModuleType | object,
        name: str,
        provenance: Provenance | None = None,
        *,
        builtin: bool = False,
    ) -> LoadedPlugin | None:
        """Register one plugin object and run its registration hooks.

        A plugin whose hooks raise, or whose hook implementations are misspelled
        (``check_pending``), is recorded as a failure and leaves no trace in the
        registry.
        """
        prov = provenance or Provenance(name, "(local)", "0")
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - reported, never fatal here
            self._fail(name, prov, exc)
            return None
        try:
            self._check_pending(plugin, name)
        except PluginLoadError as exc:
            self.pm.unregister(plugin)
            self._fail(name, prov, exc)
            return None
        record = LoadedPlugin(name=name, provenance=prov, builtin=builtin)
        staged = Registry()
        try:
            for kind, hook_name in _HOOK_OF_KIND.items():
                impl = next(
                    (i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if i.plugin is plugin),
                    None,
                )
                if impl is None:
                    continue
                register = Register(staged, kind, prov)  # type: ignore[arg-type]
                impl.function(register=register)
                record.hooks.append(hook_name)
                if register.registered:
                    record.components[KINDS[kind]] = sorted(register.registered)  # type: ignore[index]
        except Exception as exc:  # noqa: BLE001 - reported, never fatal here
            self.pm.unregister(plugin)
            self._fail(name, prov, exc)
            return None
        # Only now touch the shared registry: conflicts are plugin errors too.
        try:
            for comp in staged:
                self.registry.add(comp)
        except Exception as exc:  # noqa: BLE001
            self.pm.unregister(plugin)
            self._fail(name, prov, exc)
            return None
        self.loaded.append(record)
        return record

    def _check_pending(self, plugin: object, name: str) -> None:
        known = set(_HOOK_OF_KIND.values())
        for attr in dir(plugin):
            fn = getattr(plugin, attr, None)
            opts = self.pm.parse_hookimpl_opts(plugin, attr) if fn is not None else None
            if opts is not None and attr not in known:
                close = difflib.get_close_matches(attr, sorted(known), n=1)
                hint = f' Did you mean "{close[0]}"?' if close else ""
                raise PluginLoadError(
                    f'plugin "{name}" implements unknown hook "{attr}".{hint} Known hooks: {", ".join(sorted(known))}'
                )
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginLoadError(f'plugin "{name}": {exc}') from exc

    def _fail(self, name: str, prov: Provenance, exc: BaseException) -> None:
        self.failures.append(
            PluginLoadFailure(
                plugin=name,
                distribution=prov.distribution,
                version=prov.version,
                error=exception_text(exc),  # one line, a library's colour codes dropped
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        self.registry.unavailable[name] = f"{prov}: {exception_text(exc)}"

    def load_builtins(self) -> None:
        for mod_name in BUILTIN_MODULES:
            module = importlib.import_module(mod_name)
            self.add_plugin(module, "bdcore", Provenance("bdcore", "bdcore", __version__), builtin=True)

    def load_entry_points(self) -> None:
        allow = _env_list("BDCORE_LOAD_PLUGINS")
        block = set(_env_list("BDCORE_DISABLE_PLUGINS") or [])
        for ep in sorted(_entry_points(), key=lambda e: e.name):
            if allow is not None and ep.name not in allow:
                continue
            if ep.name in block:
                self.pm.set_blocked(ep.name)
                continue
            dist = ep.dist
            prov = Provenance(
                ep.name,
                dist.metadata["Name"] if dist is not None else "(unknown)",
                dist.version if dist is not None else "0",
            )
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a broken plugin must not kill the host
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._fail(ep.name, prov, exc)
                continue
            self.add_plugin(plugin, ep.name, prov)

    # -- queries ---------------------------------------------------------------
    def failure_for_distribution(self, distribution: str) -> PluginLoadFailure | None:
        norm = _normalize(distribution)
        return next((f for f in self.failures if _normalize(f.distribution) == norm), None)

    def failure_for_plugin(self, plugin: str) -> PluginLoadFailure | None:
        return next((f for f in self.failures if f.plugin == plugin), None)

    def loaded_distribution(self, distribution: str) -> LoadedPlugin | None:
        """The loaded plugin of ``distribution`` (names compared normalized), or None."""
        norm = _normalize(distribution)
        return next((p for p in self.loaded if _normalize(p.provenance.distribution) == norm), None)

    def check_requires(
        self, requirements: Iterable[str], installed: Callable[[str], str | None] | None = None
    ) -> list[str]:
        """Problems with ``[run] requires`` entries: missing, wrong version, failed to load.

        ``installed(distribution)`` gives the installed version or None (default: :func:`installed_version`;
        tests pass their own to stand for another environment).
        """
        installed = installed or installed_version
        from packaging.requirements import InvalidRequirement, Requirement

        problems: list[str] = []
        for text in requirements:
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                problems.append(f"{text!r} is not a valid requirement: {exc}")
                continue
            # A plugin added to the host directly (tests, ``bdcore.testing.make_host``) counts
            # as installed under the distribution name it was registered with.
            registered = self.loaded_distribution(req.name)
            version = installed(req.name)
            if version is None:
                if registered is None:
                    problems.append(f'plugin distribution "{req.name}" is not installed (pip install {req.name})')
                continue
            if req.specifier and not req.specifier.contains(version, prereleases=True):
                problems.append(f'"{req.name}" {version} is installed but the spec requires "{text}"')
                continue
            failure = self.failure_for_distribution(req.name)
            if failure is not None:
                problems.append(
                    f'plugin "{failure.plugin}" ({failure.distribution} {failure.version}) '
                    f"failed to load: {failure.error}"
                )
        return problems

    def require(self, requirements: Iterable[str]) -> None:
        problems = self.check_requires(requirements)
        if problems:
            raise MissingRequirement("; ".join(problems))

    def describe(self) -> dict[str, Any]:
        return {
            "bdcore": __version__,
            "plugins": [p.describe() for p in self.loaded],
            "failed": [f.describe() for f in self.failures],
        }


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return md.version(distribution)
    except md.PackageNotFoundError:
        return None


def _entry_points() -> list[md.EntryPoint]:
    return list(md.entry_points(group=ENTRY_POINT_GROUP))


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def load_plugins(*, entry_points: bool = True, builtins: bool = True) -> PluginHost:
    """Create a :class:`PluginHost`, load the built-ins and (optionally) entry points."""
    host = PluginHost()
    if builtins:
        host.load_builtins()
    if entry_points:
        host.load_entry_points()
    return host
