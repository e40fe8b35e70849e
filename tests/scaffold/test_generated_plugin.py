"""The plugin template, instantiated and used the way an author would, in a fresh environment with core only.

``bdcore new-plugin`` writes a plugin with every role; it is installed into a new virtual environment
that holds bdcore and nothing else of ours (the heavy third-party packages come from the shared base
environment through a ``.pth`` file, as in ``noxfile.py``); its generated tests must pass and
``bdcore run`` must finish its example spec. Run by the ``scaffold`` nox session (not ``core``: it
builds an environment, about a minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"


def _base_site_packages() -> str | None:
    """The shared base environment's site-packages: ``BDCORE_BASE_ENV``, else the one this
    interpreter is linked to (``_bdcore_base.pth``)."""
    env = os.environ.get("BDCORE_BASE_ENV")
    if env and (Path(env) / "bin" / "python").exists():
        out = subprocess.check_output(
            [str(Path(env) / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        )
        return out.strip()
    pth = Path(sysconfig.get_paths()["purelib"]) / "_bdcore_base.pth"
    return pth.read_text().strip() if pth.is_file() else None


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return res


def test_new_plugin_installs_tests_green_and_runs_in_a_core_only_environment(tmp_path: Path) -> None:
    base = _base_site_packages()
    if base is None:
        pytest.skip("needs the shared base environment (BDCORE_BASE_ENV or a _bdcore_base.pth)")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.check_output(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()
    Path(purelib, "_bdcore_base.pth").write_text(base + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env |= {"PATH": f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}", "HF_HUB_OFFLINE": "1"}
    env.pop("BDCORE_LOAD_PLUGINS", None)
    env.pop("BDCORE_DISABLE_PLUGINS", None)
    pip = [sys.executable, "-m", "pip", "--python", str(py), "--disable-pip-version-check", "install", "-q"]
    pip += ["--no-build-isolation", "-c", str(CONSTRAINTS)]
    _run([*pip, "-e", str(ROOT)], cwd=tmp_path, env=env)

    # what an author does: generate, install, test
    start = time.perf_counter()
    _run([str(env_dir / "bin" / "bdcore"), "new-plugin", "scaffolded", "--dir", str(tmp_path)], cwd=tmp_path, env=env)
    plugin = tmp_path / "bd-plugin-scaffolded"
    _run([*pip, "-e", f"{plugin}[testing]"], cwd=tmp_path, env=env)
    installed = time.perf_counter()
    res = _run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=plugin, env=env)
    green = time.perf_counter()
    summary = res.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, res.stdout[-3000:]
    print(
        f"\nbdcore new-plugin → green pytest: {green - start:.1f} s "
        f"(generate + pip install -e: {installed - start:.1f} s, pytest: {green - installed:.1f} s; {summary})"
    )

    # core only: bdcore's toy plugin and the new one, nothing else
    res = _run([str(env_dir / "bin" / "bdcore"), "plugins", "--json", "--strict-plugins"], cwd=plugin, env=env)
    loaded = {p["plugin"]: p["distribution"] for p in json.loads(res.stdout)["plugins"]}
    assert loaded == {"bdcore": "bdcore", "scaffolded": "bd-plugin-scaffolded", "toy": "bdcore"}, loaded

    # the example spec, from the command line, as the README says
    spec = plugin / "examples" / "scaffolded-toy.toml"
    _run(
        [str(env_dir / "bin" / "bdcore"), "run", str(spec), "--out", str(tmp_path / "runs"), "-q"], cwd=plugin, env=env
    )
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("scaffolded-toy-")]
    assert (run_dir / "COMPLETE").is_file()
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {"scaffolded-metric", "psnr"} <= {r["metric"] for r in rows}
    assert any(r["defense"] == "scaffolded-defense" for r in rows)
