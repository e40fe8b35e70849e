"""The CI check that no test module is skipped everywhere: the pytest ledger plugin and its checker."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODULES = {
    "tests/test_runs.py": "def test_a():\n    assert True\n",
    "tests/test_needs_other_plugin.py": 'import pytest\npytest.importorskip("bd_plugin_nowhere")\n\n'
    "def test_a():\n    assert True\n",
    "tests/test_needs_data.py": 'import pytest\n\n@pytest.mark.skipif(True, reason="shared/data/x not available")\n'
    "def test_a():\n    assert True\n",
    "tests/test_half.py": 'import pytest\n\ndef test_a():\n    assert True\n\n@pytest.mark.skip(reason="later")\n'
    "def test_b():\n    assert True\n",
    "plugins/p/tests/test_never_collected.py": "def test_a():\n    assert True\n",
}


def _checker():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("check_test_ledger", ROOT / "tools" / "check_test_ledger.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_modules_skipped_everywhere_for_an_avoidable_reason_are_reported(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for name, text in MODULES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    ledger = tmp_path / "ledger"
    env = dict(os.environ, BDCORE_TEST_LEDGER=str(ledger / "core.jsonl"), BDCORE_TEST_SESSION="core")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bdcore.testing.ledger", "tests"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    records = {Path(r["module"]).name: r for r in map(json.loads, (ledger / "core.jsonl").read_text().splitlines())}
    assert records["test_half.py"]["ran"] == 1 and records["test_half.py"]["reasons"] == ["later"]
    assert records["test_needs_other_plugin.py"]["ran"] == 0
    assert "bd_plugin_nowhere" in records["test_needs_other_plugin.py"]["reasons"][0]
    found = _checker().problems(ledger, ["core", "integration"], root=repo)
    assert sorted(found) == sorted(
        [
            f"no ledger from session integration ({ledger / 'integration.jsonl'}): run the whole CI "
            "(python3 tools/dev.py test)",
            "plugins/p/tests/test_never_collected.py: no CI session collects it",
            "tests/test_needs_other_plugin.py: skipped in every session (core): could not import "
            "'bd_plugin_nowhere': No module named 'bd_plugin_nowhere'",
        ]
    ), found


def test_every_test_module_of_the_repository_is_in_a_ci_session() -> None:
    """The folders the checker scans are the folders the nox sessions run (nothing outside them)."""
    tops = [d for d in ROOT.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in ("build", "runs")]
    modules = {p.relative_to(ROOT) for d in tops for p in d.rglob("test_*.py")}
    scanned = {p.relative_to(ROOT) for p in _checker().test_modules(ROOT)}
    assert modules == scanned, modules ^ scanned
    assert len(scanned) > 50
