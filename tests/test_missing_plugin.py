"""A spec that needs a plugin the environment lacks: exit code 3 and the distribution's ``pip install`` line,
not "unknown component" (exit 2) — whether ``[run] requires`` lists it or only a component name says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import bdcore.cli as cli
import bdcore.plugins
from bdcore.first_party import FIRST_PARTY, provider
from bdcore.plugins import installed_version, load_plugins
from bdcore.registry import Provenance

#: one first-party component of every kind, and the section of a spec that uses it
SECTION = {
    "dataset": '[data]\nuse = "{name}"\n[victim]\nuse = "toy-denoiser"\n',
    "victim": '[data]\nuse = "toy-smooth"\n[victim]\nuse = "{name}"\n',
    "trigger": '[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n[attack]\n'
    'trigger = {{ use = "{name}" }}\nloss = {{ use = "toy-invert" }}\n',
    "attack_loss": '[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n[attack]\n'
    'trigger = {{ use = "toy-patch" }}\nloss = {{ use = "{name}" }}\n',
    "defense": '[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n[[defense]]\nuse = "{name}"\n',
    "metric": '[data]\nuse = "toy-smooth"\n[victim]\nuse = "toy-denoiser"\n[[metric]]\nuse = "{name}"\n',
}


@pytest.fixture
def only_asfiba(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host where bd-plugin-asfiba is the one installed plugin (the toy plugin stands in for its components)."""
    from bdcore.testing import toy

    host = load_plugins(entry_points=False)
    host.add_plugin(toy, "asfiba", Provenance("asfiba", "bd-plugin-asfiba", "0.1.0"))
    monkeypatch.setattr(cli, "_host", lambda strict=False: host)
    monkeypatch.setattr(bdcore.plugins, "installed_version", lambda d: "0.1.0" if d == "bd-plugin-asfiba" else None)


def test_fine_pruning_without_baselines_is_exit_3_naming_the_distribution(tmp_path: Path, only_asfiba: None) -> None:
    spec = tmp_path / "spec.toml"
    body = SECTION["defense"].format(name="fine-pruning")
    for requires in ('["bd-plugin-asfiba", "bd-plugin-baselines"]', '["bd-plugin-asfiba"]', "[]"):
        spec.write_text(f"[run]\nrequires = {requires}\n{body}")
        for command in (["check", str(spec)], ["run", str(spec), "--out", str(tmp_path / "runs")]):
            res = CliRunner().invoke(cli.main, command)
            assert res.exit_code == 3, (requires, command, res.output)
            assert "unknown defense" not in res.output and "Traceback" not in res.output
            assert (
                f'{spec}: defense[0].use: defense "fine-pruning" needs a plugin: plugin distribution '
                '"bd-plugin-baselines" is not installed (pip install bd-plugin-baselines)'
            ) in res.output, res.output
            listed = "bd-plugin-baselines" in requires
            assert (
                f'{spec}: run.requires: plugin distribution "bd-plugin-baselines" is not installed' in res.output
            ) == listed
    assert not (tmp_path / "runs").exists()  # nothing ran


@pytest.mark.parametrize("kind", sorted(SECTION))
def test_every_kind_of_first_party_component_names_its_distribution(
    tmp_path: Path, only_asfiba: None, kind: str
) -> None:
    dist, name = next((d, k[kind][0]) for d, k in FIRST_PARTY.items() if d != "bd-plugin-asfiba" and kind in k)
    spec = tmp_path / "spec.toml"
    spec.write_text(SECTION[kind].format(name=name))
    res = CliRunner().invoke(cli.main, ["check", str(spec)])
    assert res.exit_code == 3, res.output
    assert f'"{name}" needs a plugin: plugin distribution "{dist}" is not installed (pip install {dist})' in res.output


def test_a_name_no_plugin_provides_stays_a_spec_error(tmp_path: Path, only_asfiba: None) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SECTION["defense"].format(name="fine-prunning"))
    assert provider("defense", "fine-prunning") is None
    res = CliRunner().invoke(cli.main, ["check", str(spec)])
    assert res.exit_code == 2 and 'unknown defense "fine-prunning"' in res.output, res.output


def test_in_this_environment_a_missing_first_party_plugin_is_exit_3(tmp_path: Path) -> None:
    """Real plugins, real installation: the core session has none, a plugin session one, the integration
    session all of them (then one is left out with BDCORE_DISABLE_PLUGINS)."""
    env = dict(os.environ)
    absent = [d for d in FIRST_PARTY if installed_version(d) is None]
    dist = absent[0] if absent else "bd-plugin-baselines"
    if not absent:
        host = load_plugins()
        env["BDCORE_DISABLE_PLUGINS"] = next(p.name for p in host.loaded if p.provenance.distribution == dist)
    kind, names = next(iter(FIRST_PARTY[dist].items()))
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[run]\nrequires = ["{dist}"]\n' + SECTION[kind].format(name=names[0]))
    res = subprocess.run(
        [sys.executable, "-m", "bdcore.cli", "check", str(spec)], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 3, res.stdout + res.stderr
    if absent:
        assert f'plugin distribution "{dist}" is not installed (pip install {dist})' in res.stderr, res.stderr
    else:
        assert f'needs plugin distribution "{dist}", which is installed but not loaded' in res.stderr, res.stderr
