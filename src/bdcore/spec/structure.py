"""Loading a spec: TOML → :class:`Spec` (phase 1) → every component's ``Params`` (phase 2).

Every issue from every section is collected before failing, and rendered as
``FILE: dotted.key: message (hint)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from bdcore.errors import Issue, SpecError
from bdcore.registry import Component, Kind, Registry
from bdcore.spec.converter import describe_value, make_converter, structure
from bdcore.spec.model import ComponentRef, DefenseEntry, Spec
from bdcore.spec.overrides import apply_overrides

SECTIONS = {f.name for f in attrs.fields(Spec)}


@attrs.frozen
class Resolved:
    """One component of the spec with its registry record and structured params."""

    path: str
    component: Component
    params: Any
    label: str
    setting: str | None = None

    @property
    def kind(self) -> Kind:
        return self.component.kind


@attrs.frozen
class LoadedSpec:
    """A validated spec: the core model plus every resolved component."""

    file: Path
    raw: dict[str, Any]
    spec: Spec
    data: Resolved
    victim: Resolved
    trigger: Resolved | None
    attack: Resolved | None
    defenses: tuple[Resolved, ...]
    metrics: tuple[Resolved, ...]
    overrides: tuple[str, ...] = ()
    observers: tuple[Resolved, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.run.name or self.file.stem

    def components(self) -> list[Resolved]:
        out = [self.data, self.victim]
        out += [r for r in (self.trigger, self.attack) if r is not None]
        return out + list(self.defenses) + list(self.metrics)


def read_toml(file: Path) -> dict[str, Any]:
    """The parsed TOML of ``file``; every way of not being a readable spec is a :class:`SpecError`
    naming the file (a folder, a missing or unreadable file, bad TOML, bytes that are not UTF-8)."""
    import tomli

    def fail(message: str, hint: str | None = None) -> SpecError:
        return SpecError(str(file), [Issue("", message, hint)])

    try:
        if file.is_dir():
            tomls = sorted(p.name for p in file.glob("*.toml"))
            hint = f"give one of its spec files: {', '.join(tomls[:5])}" if tomls else "give a .toml spec file"
            raise fail("is a folder, not a spec file", hint)
        if not file.exists():
            raise fail("file not found")
        if not file.is_file():
            raise fail("not a regular file (a spec is a .toml file)")
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        return tomli.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        bad_line = data.count(b"\n", 0, exc.start) + 1
        raise fail(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {bad_line} cannot be decoded") from exc
    except tomli.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        where = f" at line {line}, column {col}" if line else ""
        msg = getattr(exc, "msg", str(exc))
        raise fail(f"TOML syntax error{where}: {msg}") from exc
    except RecursionError as exc:  # tomli recurses once per nesting level of arrays and inline tables
        raise fail("TOML syntax error: arrays or tables nested too deeply") from exc


def structure_params(component: Component, raw: Any, *, path: str, file: str, spec_dir: Path | None = None) -> Any:
    """Structure one component's params table; raises :class:`SpecError` on any issue."""
    params, issues = _structure_params(component, raw, path, spec_dir)
    if issues:
        raise SpecError(file, issues)
    return params


def _structure_params(component: Component, raw: Any, path: str, spec_dir: Path | None) -> tuple[Any, list[Issue]]:
    if not isinstance(raw, dict):
        return None, [Issue(path, f"expected a table, got {describe_value(raw)}")]
    conv = make_converter(spec_dir)
    params, issues = structure(conv, raw, component.params, path)
    if params is not None and not issues:
        issues += _missing_paths(params, path)
    return params, issues


def _missing_paths(params: Any, path: str) -> list[Issue]:
    """Input paths in params must exist (fields may opt out with ``metadata={"output": True}``)."""
    issues = []
    for f in attrs.fields(type(params)):
        value = getattr(params, f.name)
        if isinstance(value, Path) and not f.metadata.get("output") and not path_exists(value):
            issues.append(Issue(f"{path}.{f.name}", f"path does not exist: {value}"))
    return issues


def path_exists(path: Path) -> bool:
    """``path.exists()``, False for a path the OS refuses to look up (too long, a NUL byte)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _lookup(registry: Registry, kind: Kind, ref: ComponentRef, path: str, issues: list[Issue]) -> Component | None:
    comp = registry.get_or_none(kind, ref.use)
    if comp is None:
        issues.append(Issue(f"{path}.use", registry.not_found_message(kind, ref.use)))
    return comp


def load_spec(
    file: str | Path, registry: Registry, *, check_paths: bool = True, overrides: Sequence[str] = ()
) -> LoadedSpec:
    """Read, structure and validate a spec file against the registry.

    ``overrides``: ``KEY=VALUE`` strings applied to the file's values first (``bdcore run --set``).

    Raises:
        SpecError: with every issue found, in file order.
    """
    file = Path(file)
    raw = read_toml(file)
    issues: list[Issue] = apply_overrides(raw, overrides)
    unknown = [k for k in raw if k not in SECTIONS]
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(SECTIONS), n=1, cutoff=0.6)
        issues.append(
            Issue(
                key,
                "unknown section",
                f'did you mean "{close[0]}"?' if close else f"sections: {', '.join(sorted(SECTIONS))}",
            )
        )
    body = {k: v for k, v in raw.items() if k in SECTIONS}
    for required in ("data", "victim"):
        if required not in raw:
            issues.append(Issue(required, "required section is missing", f'add a [{required}] table with use = "..."'))
    conv = make_converter(file.parent.resolve())
    # Phase 1, section by section, so one bad section does not hide the others.
    values: dict[str, Any] = {}
    ok = True
    for f in attrs.fields(attrs.resolve_types(Spec)):
        if f.name not in body:
            continue
        cls = _section_class(f.type)
        shape_issue = _shape_issue(f.name, body[f.name], cls)
        if shape_issue is not None:
            issues.append(shape_issue)
            ok = False
            continue
        value, found = structure(conv, body[f.name], cls, f.name)
        issues += found
        if value is None or found:
            ok = False
        values[f.name] = value
    spec = Spec(**values) if ok and not issues else None
    if spec is None:
        _phase2_partial(values, registry, issues)
        raise SpecError(str(file), issues)

    spec_dir = file.parent.resolve()

    def resolve(kind: Kind, ref: ComponentRef, path: str) -> Resolved | None:
        comp = _lookup(registry, kind, ref, path, issues)
        if comp is None:
            return None
        params, found = _structure_params(comp, ref.params, f"{path}.params", spec_dir)
        if not check_paths:
            found = [i for i in found if not i.message.startswith("path does not exist")]
        issues.extend(found)
        if params is None or found:
            return None
        return Resolved(path=path, component=comp, params=params, label=ref.label or ref.use)

    data = resolve("dataset", spec.data, "data")
    victim = resolve("victim", ComponentRef(spec.victim.use, spec.victim.params), "victim")
    if spec.victim.weights is not None and check_paths and not path_exists(spec.victim.weights):
        issues.append(Issue("victim.weights", f"path does not exist: {spec.victim.weights}"))
    trigger = attack = None
    if spec.attack is not None:
        trigger = resolve("trigger", spec.attack.trigger, "attack.trigger")
        attack = resolve("attack_loss", spec.attack.loss, "attack.loss")
    defenses = []
    for i, entry in enumerate(spec.defense):
        r = resolve("defense", entry, f"defense[{i}]")
        if r is not None:
            defenses.extend(_expand_sweep(r, entry, f"defense[{i}]", issues, spec_dir))
    metrics = [resolve("metric", m, f"metric[{i}]") for i, m in enumerate(spec.metric)]
    observers = [resolve("observer", o, f"run.observers[{i}]") for i, o in enumerate(spec.run.observers)]
    observer_labels = [o.label for o in observers if o is not None]
    for dup in sorted({x for x in observer_labels if observer_labels.count(x) > 1}):
        issues.append(Issue("run.observers", f'observer "{dup}" is chosen twice', 'give each a distinct label = "..."'))
    labels = [f"{d.label}@{d.setting}" for d in defenses]
    for dup in sorted({x for x in labels if labels.count(x) > 1}):
        issues.append(Issue("defense", f'two defenses are labelled "{dup}"', 'give each a distinct label = "..."'))
    for text in spec.run.requires:
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            Requirement(text)
        except InvalidRequirement as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid syntax"
            issues.append(Issue("run.requires", f'"{text}" is not a valid requirement: {reason}'))
    if issues:
        raise SpecError(str(file), issues)
    assert data is not None and victim is not None  # noqa: S101 - guaranteed: issues would be non-empty
    return LoadedSpec(
        file=file,
        raw=raw,
        spec=spec,
        data=data,
        victim=victim,
        trigger=trigger,
        attack=attack,
        defenses=tuple(defenses),
        metrics=tuple(m for m in metrics if m is not None),
        overrides=tuple(overrides),
        observers=tuple(o for o in observers if o is not None),
    )


def _section_class(tp: Any) -> Any:
    """``X | None`` → ``X``; other annotations unchanged."""
    args = [a for a in getattr(tp, "__args__", ()) if a is not type(None)]
    if type(None) in getattr(tp, "__args__", ()) and len(args) == 1:
        return args[0]
    return tp


def _shape_issue(key: str, value: Any, cls: Any) -> Issue | None:
    """A section of the wrong TOML shape (a string where a table or array of tables belongs)."""
    is_seq = getattr(cls, "__origin__", None) is tuple
    if is_seq and not isinstance(value, list):
        return Issue(key, f"expected an array of tables ([[{key}]]), got {describe_value(value)}")
    if is_seq and not all(isinstance(v, dict) for v in value):
        return Issue(key, f"every [[{key}]] entry must be a table")
    if attrs.has(cls) and not isinstance(value, dict):
        return Issue(key, f"expected a table ([{key}]), got {describe_value(value)}")
    return None


def _phase2_partial(values: dict[str, Any], registry: Registry, issues: list[Issue]) -> None:
    """Report unknown component names in the sections that did structure."""
    refs: list[tuple[Kind, str, Any]] = []
    if isinstance(values.get("data"), ComponentRef):
        refs.append(("dataset", "data", values["data"]))
    victim = values.get("victim")
    if victim is not None:
        refs.append(("victim", "victim", ComponentRef(victim.use, victim.params)))
    attack = values.get("attack")
    if attack is not None:
        refs += [("trigger", "attack.trigger", attack.trigger), ("attack_loss", "attack.loss", attack.loss)]
    for i, m in enumerate(values.get("metric") or ()):
        refs.append(("metric", f"metric[{i}]", m))
    for i, d in enumerate(values.get("defense") or ()):
        refs.append(("defense", f"defense[{i}]", d))
    for i, o in enumerate(getattr(values.get("run"), "observers", ())):
        refs.append(("observer", f"run.observers[{i}]", o))
    for kind, path, ref in refs:
        comp = _lookup(registry, kind, ref, path, issues)
        if comp is not None:
            _, found = _structure_params(comp, ref.params, f"{path}.params", None)
            issues += [i for i in found if not i.message.startswith("path does not exist")]


def _expand_sweep(r: Resolved, entry: DefenseEntry, path: str, issues: list[Issue], spec_dir: Path) -> list[Resolved]:
    if entry.sweep is None:
        return [r]
    names = [f.name for f in attrs.fields(r.component.params)]
    if entry.sweep.param not in names:
        close = difflib.get_close_matches(entry.sweep.param, names, n=1)
        issues.append(
            Issue(
                f"{path}.sweep.param",
                f'"{entry.sweep.param}" is not a param of {r.component.name}',
                f'did you mean "{close[0]}"?' if close else f"params: {', '.join(names)}",
            )
        )
        return []
    out = []
    for j, value in enumerate(entry.sweep.values):
        raw = {**entry.params, entry.sweep.param: value}
        params, found = _structure_params(r.component, raw, f"{path}.sweep.values[{j}]", spec_dir)
        issues.extend(found)
        if params is not None and not found:
            out.append(attrs.evolve(r, params=params, setting=f"{entry.sweep.param}={value}"))
    return out
