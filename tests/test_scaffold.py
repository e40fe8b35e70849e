"""``bdcore new-plugin``: names, roles, refusal to overwrite, and every role combination renders into a
plugin whose code compiles, passes ruff and whose example spec validates against its own registrations.

The generated plugin's own tests, run after installing it into a fresh environment with core only, are in
``tests/scaffold/`` (the ``scaffold`` nox session).
"""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from bdcore.cli import main
from bdcore.errors import UsageError
from bdcore.scaffold import ROLES, PluginNames, create_plugin, parse_roles, render, validate_name


@pytest.mark.parametrize("name", ["x", "my-method", "ftrojan2", "a1-b2-c3"])
def test_valid_names(name: str) -> None:
    validate_name(name)
    names = PluginNames.of(name)
    assert names.distribution == f"bd-plugin-{name}" and names.package == "bd_plugin_" + name.replace("-", "_")
    assert names.camel.isidentifier() and names.camel[0].isupper()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("My_Method", 'did you mean "my-method"'),
        ("my--method", "single hyphens"),
        ("-x", "starting with a letter"),
        ("9lives", "starting with a letter"),
        ("my method", 'did you mean "my-method"'),
        ("bd-plugin-foo", 'give the short name: "foo"'),
        ("bd_plugin_foo", 'give the short name: "foo"'),
        ("toy", "bdcore's own plugins"),
        ("x" * 41, "too long"),
        ("", "not a valid plugin name"),
    ],
)
def test_invalid_names_are_usage_errors(name: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_name(name)


def test_a_name_an_installed_plugin_uses_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.metadata as md

    ep = md.EntryPoint(name="taken", value="x.plugin", group="bdcore")
    monkeypatch.setattr(md, "entry_points", lambda group=None: [ep] if group == "bdcore" else [])
    with pytest.raises(UsageError, match="already uses the name 'taken'"):
        create_plugin("taken", ["metric"], tmp_path)
    assert not list(tmp_path.iterdir())


def test_roles_parse_in_hook_order_with_aliases() -> None:
    assert parse_roles("metric, trigger") == ("trigger", "metric")
    assert parse_roles("attack_loss,datasets,attack-losses") == ("attack-loss", "dataset")
    assert parse_roles(["victim"]) == ("victim",)
    with pytest.raises(UsageError, match="unknown role 'metrik' \\(did you mean \"metric\"\\?\\)"):
        parse_roles("trigger,metrik")
    with pytest.raises(UsageError, match="at least one"):
        parse_roles(" , ")


def test_files_per_roles() -> None:
    files = render("solo", "trigger")
    assert "src/bd_plugin_solo/triggers.py" in files and "src/bd_plugin_solo/victims.py" not in files
    assert set(render("solo", ROLES)) >= {
        "pyproject.toml",
        "README.md",
        "noxfile.py",
        "examples/solo-toy.toml",
        "src/bd_plugin_solo/params.py",
        "src/bd_plugin_solo/plugin.py",
        *(f"src/bd_plugin_solo/{m}.py" for m in ("triggers", "victims", "attacks", "defenses", "metrics", "datasets")),
        "tests/test_contracts.py",
        "tests/test_golden.py",
        "tests/test_end_to_end.py",
    }
    # a victim has no formula of its own to check: no empty golden-test file
    assert "tests/test_golden.py" not in render("solo", "victim")
    pyproject = tomllib.loads(files["pyproject.toml"])
    assert pyproject["project"]["name"] == "bd-plugin-solo"
    assert pyproject["project"]["entry-points"]["bdcore"] == {"solo": "bd_plugin_solo.plugin"}
    assert pyproject["project"]["dependencies"][0].startswith("bdcore>=")


def test_refuses_to_overwrite_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    target = create_plugin("once", ["metric"], tmp_path)
    assert target == tmp_path / "bd-plugin-once" and (target / "pyproject.toml").is_file()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UsageError, match="already exists"):
        create_plugin("once", ["trigger"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary folder left behind
    assert not (target / "src/bd_plugin_once/triggers.py").exists()


def test_cli_new_plugin_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["new-plugin", "cli-made", "--roles", "trigger,metric", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "created" in res.output and "bdcore run examples/cli-made-toy.toml" in res.output
    for args, message in (
        (["new-plugin", "cli-made", "--dir", str(tmp_path)], "already exists"),
        (["new-plugin", "Bad_Name", "--dir", str(tmp_path)], "not a valid plugin name"),
        (["new-plugin", "fine", "--roles", "trigger,metrik", "--dir", str(tmp_path)], "unknown role"),
    ):
        res = runner.invoke(main, args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and "Traceback" not in res.output


COMBOS = [c for k in range(1, len(ROLES) + 1) for c in itertools.combinations(ROLES, k)]


def test_every_role_combination_renders_compiles_lints_and_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All 63 role combinations: no template syntax left, Python compiles, ruff is clean (lint + format, with
    the plugin's own configuration), and the example spec validates against bdcore, the toy plugin and the
    generated plugin's registrations."""
    from bdcore.registry import Provenance
    from bdcore.spec.structure import load_spec
    from bdcore.testing import make_host

    monkeypatch.setattr("bdcore.scaffold._installed_plugin", lambda name: None)  # combo<i>: free names
    host = make_host()  # every combination's components carry its own name: one host holds them all
    for i, roles in enumerate(COMBOS):
        name = f"combo{i}"
        target = create_plugin(name, roles, tmp_path)
        for path in target.rglob("*"):
            if path.is_file():
                text = path.read_text()
                assert "{{" not in text and "{%" not in text, path
                if path.suffix == ".py":
                    compile(text, str(path), "exec")
                elif path.suffix == ".toml":
                    tomllib.loads(text)
        sys.path.insert(0, str(target / "src"))
        try:
            plugin = importlib.import_module(f"bd_plugin_{name}.plugin")
            record = host.add_plugin(plugin, name, Provenance(name, f"bd-plugin-{name}", "0.1.0"))
            assert record is not None, host.failures[-1].traceback
            assert len(record.components) == len(roles), (roles, record.components)
            load_spec(target / "examples" / f"{name}-toy.toml", host.registry)
        finally:
            sys.path.remove(str(target / "src"))
    ruff = [sys.executable, "-m", "ruff"]
    if subprocess.run([*ruff, "--version"], capture_output=True).returncode != 0:
        pytest.skip("ruff is not installed")
    # one call each: ruff applies every plugin's own pyproject.toml to its files
    for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        res = subprocess.run([*ruff, *args], cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 0, f"ruff {args[0]}:\n{res.stdout}{res.stderr}"
