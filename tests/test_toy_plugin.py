"""The toy plugin ships with core: it loads through its entry point, lists and checks without torch, and a
spec on it runs from the command line with nothing else installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bdcore.cli import main

SPEC = """
[run]
name = "toy-cli"
[data]
use = "toy-smooth"
params = { count = 8, size = 8 }
[victim]
use = "toy-denoiser"
params = { width = 4 }
[train]
steps = 2
batch_size = 4
[attack]
steps = 2
batch_size = 4
trigger = { use = "toy-patch" }
loss = { use = "toy-invert-controlled" }
[[metric]]
use = "psnr"
"""


@pytest.fixture
def toy_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("BDCORE_LOAD_PLUGINS", "toy")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_toy_plugin_loads_through_its_entry_point(toy_only: Path) -> None:
    res = CliRunner().invoke(main, ["plugins", "--json", "--strict-plugins"])
    assert res.exit_code == 0, res.output
    plugins = json.loads(res.output)["plugins"]
    (toy,) = [p for p in plugins if not p["builtin"]]  # bdcore's built-ins are always listed too
    assert (toy["plugin"], toy["distribution"], toy["builtin"]) == ("toy", "bdcore", False)
    assert toy["components"] == {
        "triggers": ["toy-patch"],
        "victims": ["toy-denoiser"],
        "attack-losses": ["toy-invert", "toy-invert-controlled"],
        "datasets": ["toy-smooth"],
    }


def test_disabling_the_toy_plugin_hides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BDCORE_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("BDCORE_DISABLE_PLUGINS", "toy")
    res = CliRunner().invoke(main, ["list", "victims", "--json"])
    assert res.exit_code == 0 and "toy-denoiser" not in res.output


def test_registering_imports_no_torch() -> None:
    code = "import sys, bdcore.toy.plugin, bdcore.toy.params; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_toy_spec_runs_from_the_command_line(toy_only: Path) -> None:
    (toy_only / "spec.toml").write_text(SPEC)
    res = CliRunner().invoke(main, ["run", "spec.toml", "--out", "runs", "-q"])
    assert res.exit_code == 0, res.output
    (run_dir,) = [p for p in (toy_only / "runs").iterdir() if p.name.startswith("toy-cli-")]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "toy" in json.dumps(manifest) and (run_dir / "COMPLETE").is_file()


def test_check_prints_keys_in_brackets_literally(toy_only: Path) -> None:
    """A message naming [data] is user text, not rich markup."""
    (toy_only / "spec.toml").write_text('[victim]\nuse = "toy-denoiser"\n')
    res = CliRunner().invoke(main, ["check", "spec.toml"])
    assert res.exit_code == 2
    assert "add a [data] table" in res.output, res.output
