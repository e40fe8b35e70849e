"""``bdcore new-plugin``: write a complete, installable plugin distribution from templates.

The templates are Jinja2 files shipped as package data (``bdcore/scaffold/templates``); the
files they render form ``bd-plugin-NAME/``: a ``pyproject.toml`` with the ``bdcore`` entry
point, a torch-free ``params.py``, one module per role with a working minimal component, a
method-card README skeleton, tests that run bdcore's contract suites, golden tests and one
``run_spec`` end to end, an example spec and a noxfile session. bdcore's CI instantiates every
role into a fresh environment with core only and runs the generated tests and example spec.
"""

from __future__ import annotations

import difflib
import functools
import keyword
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import attrs

from bdcore._version import __version__
from bdcore.errors import UsageError

#: The roles a plugin can implement, in the order of the hooks.
ROLES = ("trigger", "victim", "attack-loss", "defense", "metric", "dataset")

_ALIASES = {
    "triggers": "trigger",
    "victims": "victim",
    "attack_loss": "attack-loss",
    "attack-losses": "attack-loss",
    "attack": "attack-loss",
    "defenses": "defense",
    "metrics": "metric",
    "datasets": "dataset",
}

#: A plugin's short name: lowercase letters and digits in hyphen-separated words.
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")

#: (template, output path) for every plugin; ``{package}`` and ``{name}`` are filled in.
_COMMON = (
    ("pyproject.toml.j2", "pyproject.toml"),
    ("README.md.j2", "README.md"),
    ("noxfile.py.j2", "noxfile.py"),
    ("gitignore.j2", ".gitignore"),
    ("spec.toml.j2", "examples/{name}-toy.toml"),
    ("package/__init__.py.j2", "src/{package}/__init__.py"),
    ("package/params.py.j2", "src/{package}/params.py"),
    ("package/plugin.py.j2", "src/{package}/plugin.py"),
    ("tests/conftest.py.j2", "tests/conftest.py"),
    ("tests/test_contracts.py.j2", "tests/test_contracts.py"),
    ("tests/test_golden.py.j2", "tests/test_golden.py"),
    ("tests/test_end_to_end.py.j2", "tests/test_end_to_end.py"),
)
#: The module of each role's component.
_ROLE_MODULES = {
    "trigger": "triggers",
    "victim": "victims",
    "attack-loss": "attacks",
    "defense": "defenses",
    "metric": "metrics",
    "dataset": "datasets",
}


@attrs.frozen
class PluginNames:
    """The names one short plugin name implies."""

    name: str  # "my-method": entry point, component-name prefix
    distribution: str  # "bd-plugin-my-method"
    package: str  # "bd_plugin_my_method"
    camel: str  # "MyMethod": class-name prefix

    @classmethod
    def of(cls, name: str) -> PluginNames:
        validate_name(name)
        camel = "".join(part.capitalize() for part in name.split("-"))
        if camel[0].isdigit():  # pragma: no cover - NAME_RE requires a leading letter
            camel = "P" + camel
        return cls(name, f"bd-plugin-{name}", "bd_plugin_" + name.replace("-", "_"), camel)


def validate_name(name: str) -> None:
    """Refuse a name that would not make a valid distribution, package and component prefix."""
    if name.startswith(("bd-plugin-", "bd_plugin_")):
        short = name.replace("_", "-").removeprefix("bd-plugin-")
        raise UsageError(f'new-plugin: give the short name: "{short}" makes the distribution "bd-plugin-{short}"')
    if not NAME_RE.match(name):
        hint = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        hint = re.sub(r"^[0-9-]+", "", hint)
        suggestion = f' (did you mean "{hint}"?)' if hint and NAME_RE.match(hint) else ""
        raise UsageError(
            f"new-plugin: {name!r} is not a valid plugin name: use lowercase letters and digits in words joined "
            f'by single hyphens, starting with a letter, e.g. "light-strokes"{suggestion}'
        )
    if len(name) > 40:
        raise UsageError(f"new-plugin: {name!r} is too long ({len(name)} characters; at most 40)")
    if name in RESERVED:
        raise UsageError(f"new-plugin: {name!r} is the name of one of bdcore's own plugins; choose another")


#: Entry-point names bdcore itself uses.
RESERVED = frozenset({"bdcore", "toy"})


def _installed_plugin(name: str) -> str | None:
    """The distribution of an installed plugin whose entry point is ``name`` (None: the name is free)."""
    import importlib.metadata as md

    from bdcore.plugins import ENTRY_POINT_GROUP

    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.dist.metadata["Name"] if ep.dist is not None else "(unknown)"
    return None
    if keyword.iskeyword(name.replace("-", "_")):  # pragma: no cover - the package is bd_plugin_<name>
        raise UsageError(f"new-plugin: {name!r} is a Python keyword")


def parse_roles(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"trigger,metric"`` (or a list) → the roles in hook order; an unknown role is a usage error."""
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen: set[str] = set()
    for raw in items:
        role = raw.strip().lower()
        if not role:
            continue
        role = _ALIASES.get(role, role)
        if role not in ROLES:
            close = difflib.get_close_matches(role, ROLES, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise UsageError(f"new-plugin: --roles: unknown role {raw.strip()!r}{hint}; choose from {', '.join(ROLES)}")
        chosen.add(role)
    if not chosen:
        raise UsageError(f"new-plugin: --roles: name at least one of {', '.join(ROLES)}")
    return tuple(r for r in ROLES if r in chosen)


@functools.cache
def _environment() -> object:
    """One Jinja2 environment per process: it caches the compiled templates."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("bdcore.scaffold", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # the output is Python, TOML and Markdown, not HTML
    )


def _bdcore_requirement() -> str:
    """``bdcore>=X.Y,<X.Y+1`` for this bdcore (0.x: a minor release may break plugins)."""
    major, minor = (int(p) for p in __version__.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"bdcore>={major}.{minor},<{upper}"


def render(name: str, roles: str | Iterable[str]) -> dict[str, str]:
    """The files of plugin ``name`` with ``roles``: ``{relative path: text}`` (nothing is written)."""
    names = PluginNames.of(name)
    chosen = parse_roles(roles if isinstance(roles, str) else list(roles))
    env = _environment()
    context = {
        "name": names.name,
        "dist": names.distribution,
        "package": names.package,
        "camel": names.camel,
        "roles": chosen,
        "bdcore_requirement": _bdcore_requirement(),
        "bdcore_version": __version__,
    }
    pairs = [pair for pair in _COMMON if pair[1] != "tests/test_golden.py" or set(chosen) - {"victim"}]
    pairs += [(f"package/{_ROLE_MODULES[r]}.py.j2", f"src/{{package}}/{_ROLE_MODULES[r]}.py") for r in chosen]
    files: dict[str, str] = {}
    for template, out in pairs:
        path = out.format(package=names.package, name=names.name)
        files[path] = env.get_template(template).render(**context)  # type: ignore[attr-defined]
    return files


def create_plugin(name: str, roles: str | Iterable[str] = ROLES, directory: Path | str = ".") -> Path:
    """Write ``bd-plugin-NAME/`` under ``directory`` and return its path.

    Refuses (``UsageError``, exit code 2) an invalid name, the name of an installed plugin, an
    unknown role and an existing folder. The files are rendered in memory and written to a temporary folder that is then
    renamed into place, so a failure never leaves half a plugin behind.
    """
    names = PluginNames.of(name)
    taken = _installed_plugin(name)
    if taken is not None:
        raise UsageError(
            f"new-plugin: an installed plugin already uses the name {name!r} (distribution {taken}); "
            "two plugins of one name cannot load together: choose another"
        )
    files = render(name, roles)
    parent = Path(directory).expanduser()
    target = parent / names.distribution
    if target.exists() or target.is_symlink():
        raise UsageError(f"new-plugin: {target} already exists; remove it or choose another --dir")
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"new-plugin: --dir {parent} is not a folder")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{names.distribution}-", dir=parent))
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0o700
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


__all__ = ["NAME_RE", "ROLES", "PluginNames", "create_plugin", "parse_roles", "render", "validate_name"]
