"""``run_spec``: run a spec end to end in-process, for tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from bdcore.plugins import PluginHost, load_plugins
from bdcore.registry import Provenance


def plugin_name(module: ModuleType | object) -> str:
    """A plugin's name from its module: the top-level package (``bd_plugin_x.plugin`` → ``bd_plugin_x``)."""
    full = getattr(module, "__name__", type(module).__name__)
    top = full.split(".")[0]
    return full.rsplit(".", 1)[-1] if top == "bdcore" else top


def make_host(plugins: Iterable[ModuleType | object] = (), *, toy: bool = True) -> PluginHost:
    """A plugin host with the built-ins, the toy plugin (:mod:`bdcore.toy`, as its entry point
    ``toy`` would load it) and ``plugins`` — no entry points, so what else is installed never matters."""
    host = load_plugins(entry_points=False)
    if toy:
        from bdcore._version import __version__
        from bdcore.toy import plugin as toy_plugin

        host.add_plugin(toy_plugin, "toy", Provenance("toy", "bdcore", __version__))
        if host.failures:
            raise RuntimeError(f"the toy plugin failed to load: {host.failures[-1].traceback}")
    for mod in plugins:
        name = plugin_name(mod)
        host.add_plugin(mod, name, Provenance(name, name.replace("_", "-"), "test"))
        if host.failures and host.failures[-1].plugin == name:
            raise RuntimeError(f"test plugin {name} failed to load: {host.failures[-1].traceback}")
    return host


@attrs.define
class RunOutcome:
    """What a run produced: the run folder and its result rows."""

    run_dir: Path
    rows: list[dict[str, Any]]
    reused: list[str]

    def value(
        self,
        metric: str,
        *,
        stage: str = "attacked",
        split: str | None = "poisoned",
        defense: str | None = None,
        setting: str | None = None,
    ) -> float:
        for r in self.rows:
            if (r["metric"], r["stage"], r.get("split"), r.get("defense"), r.get("setting")) == (
                metric,
                stage,
                split,
                defense,
                setting,
            ):
                return float(r["value"])
        known = sorted({(r["metric"], r["stage"], r.get("split"), r.get("defense")) for r in self.rows}, key=str)
        raise KeyError(f"no row for {(metric, stage, split, defense, setting)}; rows: {known}")

    def assert_success(self) -> None:
        assert (self.run_dir / "COMPLETE").exists(), f"run did not complete: {self.run_dir}"  # noqa: S101


def _drop_none(value: Any) -> Any:
    """TOML has no null: a ``None`` in a spec dict means "leave the default", so the key is dropped."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


def run_spec(
    spec: str | dict[str, Any],
    tmp_path: Path,
    plugins: Iterable[ModuleType | object] = (),
    *,
    resume: bool = False,
    out: Path | None = None,
    name: str = "spec.toml",
) -> RunOutcome:
    """Write ``spec`` (TOML text or a dict; ``None`` values are left out) to ``tmp_path/name`` and run it."""
    from bdcore.engine.run import execute
    from bdcore.spec.structure import load_spec

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    if isinstance(spec, dict):
        import tomli_w

        path.write_text(tomli_w.dumps(_drop_none(spec)))
    else:
        path.write_text(spec)
    host = make_host(plugins)
    loaded = load_spec(path, host.registry)
    result = execute(loaded, host, out_root=out or tmp_path / "runs", resume=resume)
    outcome = RunOutcome(result.run_dir, result.rows, result.reused)
    outcome.assert_success()
    return outcome
