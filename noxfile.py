"""nox sessions: lint, typecheck, core, ray, one per plugin (discovered), docs, scaffold, integration, tests_ran.

Every session's virtualenv sees the heavy third-party packages of ``.bdenv/base``
through a ``.pth`` file (built once by ``tools/dev.py``), so torch & co. are
installed once per CI run; bdcore and plugins are installed per session, so a
plugin session holds core and that plugin only.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
BASE = Path(os.environ.get("BDCORE_BASE_ENV", ROOT / ".bdenv" / "base"))
PLUGINS = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))
CONSTRAINTS = str(ROOT / "constraints.txt")

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "core",
    "ray",
    *(["plugin"] if PLUGINS else []),
    "docs",
    "scaffold",
    "integration",
    "tests_ran",
]

# every pytest run records which modules ran (bdcore.testing.ledger); tests_ran checks no module ran nowhere
PYTEST = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bdcore.testing.ledger"]
LEDGER = ROOT / ".bdenv" / "test-ledger"
PYTEST_SESSIONS = ["core", "ray", *(f"plugin-{p}" for p in PLUGINS), "docs", "scaffold", "integration"]


def ledger(session: nox.Session) -> dict[str, str]:
    """The env of a session's pytest runs: its ledger file, emptied when the session starts."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", session.name).strip("-")
    path = LEDGER / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    return {"BDCORE_TEST_LEDGER": str(path), "BDCORE_TEST_SESSION": name}


def cross_plugin_modules() -> dict[str, list[str]]:
    """Per plugin, its test modules that use another plugin (they skip, or test less, in the plugin's own
    session, which installs that plugin alone): ``{plugin folder: [module paths]}``."""
    packages = {p: p.replace("-", "_") for p in PLUGINS}
    out: dict[str, list[str]] = {}
    for plugin in packages:
        others = [pkg for p, pkg in packages.items() if p != plugin]
        for module in sorted((ROOT / "plugins" / plugin / "tests").rglob("test_*.py")):
            if any(re.search(rf"\b{pkg}\b", module.read_text()) for pkg in others):
                out.setdefault(plugin, []).append(str(module.relative_to(ROOT)))
    return out


def _site_packages(session: nox.Session, python: str) -> str:
    return session.run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", silent=True, external=True
    ).strip()


def link_base(session: nox.Session) -> None:
    """Make the session's venv see .bdenv/base (after its own packages)."""
    if not (BASE / "bin" / "python").exists():
        session.error(f"{BASE} is missing: run `python3 tools/dev.py test` (it builds the base environment first)")
    own = _site_packages(session, str(Path(session.virtualenv.location) / "bin" / "python"))
    base = _site_packages(session, str(BASE / "bin" / "python"))
    Path(own, "_bdcore_base.pth").write_text(base + "\n")


def install(session: nox.Session, *paths: str) -> None:
    link_base(session)
    args = ["--no-build-isolation", "-c", CONSTRAINTS]
    for p in paths:
        args += ["-e", p]
    session.install(*args, silent=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff lint and format check over everything."""
    ruff = str(BASE / "bin" / "ruff")
    session.run(ruff, "check", ".", external=True)
    session.run(ruff, "format", "--check", ".", external=True)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the core."""
    install(session, ".")
    session.run("python", "-m", "mypy", "src/bdcore")


@nox.session
def core(session: nox.Session) -> None:
    """bdcore's own tests, with no third-party plugin installed."""
    install(session, ".")
    env = ledger(session)
    session.run(
        *PYTEST,
        "tests",
        "--ignore=tests/test_docs.py",
        "--ignore=tests/integration",
        "--ignore=tests/scaffold",
        "--ignore=tests/sweep_ray",
        *session.posargs,
        env=env,
    )


@nox.session
def ray(session: nox.Session) -> None:
    """bdcore sweep on Ray: a local Ray, a simulated two-node cluster, lost workers (Ray from the base env)."""
    install(session, ".")
    session.run(*PYTEST, "tests/sweep_ray", *session.posargs, env=ledger(session))


@nox.session
@nox.parametrize("plugin", PLUGINS, ids=PLUGINS)
def plugin(session: nox.Session, plugin: str) -> None:
    """One plugin's tests in an environment holding only core and that plugin."""
    install(session, ".", f"plugins/{plugin}")
    session.run("bdcore", "plugins", "--json", "--strict-plugins", silent=True)
    env, setup = test_setup(plugin)
    for command in setup:
        session.run(*command, env=env, silent=True)
    env |= ledger(session)
    session.run(*PYTEST, f"plugins/{plugin}/tests", *session.posargs, env=env)
    # core with this one plugin: a spec using another first-party plugin's component exits 3 with its pip line
    session.run(*PYTEST, "tests/test_missing_plugin.py", env=env)


def test_setup(plugin: str) -> tuple[dict[str, str], list[list[str]]]:
    """A plugin's declared test setup, ``[tool.bdcore.test]`` in its pyproject.toml.

    ``env`` (values may use ``{cache}``, a per-plugin folder under the shared ``.bdenv/cache``, kept
    between sessions) and ``setup`` (commands run in the session before pytest, e.g. fetching a
    reference file from a package registry the way a user would, so tests that need it do not skip).
    """
    table = tomllib.loads((ROOT / "plugins" / plugin / "pyproject.toml").read_text())
    declared = table.get("tool", {}).get("bdcore", {}).get("test", {})
    cache = str(BASE.parent / "cache" / plugin)
    env = {k: str(v).replace("{cache}", cache) for k, v in declared.get("env", {}).items()}
    return env, [[str(a) for a in cmd] for cmd in declared.get("setup", [])]


@nox.session
def docs(session: nox.Session) -> None:
    """Docs are in sync with the code (generated pages, tutorial excerpts) and the tutorial plugin's tests pass."""
    install(session, ".", "docs/example_plugin")
    session.run(*PYTEST, "tests/test_docs.py", "docs/example_plugin/tests", *session.posargs, env=ledger(session))


@nox.session
def scaffold(session: nox.Session) -> None:
    """`bdcore new-plugin` for every role, installed into a fresh core-only environment: its tests pass, its spec runs."""
    install(session, ".")
    session.run(
        *PYTEST, "-s", "tests/scaffold", *session.posargs, env={**ledger(session), "BDCORE_BASE_ENV": str(BASE)}
    )


@nox.session
def integration(session: nox.Session) -> None:
    """Everything installed together: no name conflicts, every example spec checks, the demo runs, and the
    plugins' cross-plugin tests (skipped in their own sessions) run with every plugin present."""
    install(session, ".", *(f"plugins/{p}" for p in PLUGINS))
    session.run("bdcore", "plugins", "--strict-plugins")
    specs = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("examples/*.toml"))
    specs += sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/examples/*.toml"))
    specs += sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/tables/*.toml"))  # sweeps: every cell
    if specs:
        # Paper-scale examples name datasets and weights the user supplies: check everything but
        # their existence here (the demo's own data is embedded; tests/integration runs it).
        session.run("bdcore", "check", "--no-paths", *specs)
    env = ledger(session)
    session.run(*PYTEST, "tests/integration", *session.posargs, env=env)
    for plugin, modules in cross_plugin_modules().items():  # one run per folder: its conftest and test setup
        plugin_env, setup = test_setup(plugin)
        for command in setup:
            session.run(*command, env=plugin_env, silent=True)
        session.run(*PYTEST, *modules, env=plugin_env | env)


@nox.session(python=False)
def tests_ran(session: nox.Session) -> None:
    """After the pytest sessions: every test module ran in at least one of them (tools/check_test_ledger.py)."""
    session.run("python3", str(ROOT / "tools" / "check_test_ledger.py"), str(LEDGER), *PYTEST_SESSIONS, external=True)
