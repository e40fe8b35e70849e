"""With every plugin installed: the demo spec runs and shows its attack effect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_with_a_visible_effect(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bdcore.cli", "run", str(ROOT / "examples" / "demo.toml"), "--out", str(tmp_path), "-q"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = next(p for p in tmp_path.iterdir() if p.name.startswith("demo-"))
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    psnr = {(r["stage"], r["split"]): r["value"] for r in rows if r["metric"] == "psnr" and not r["defense"]}
    # clean images still decode well; triggered ones are destroyed
    assert psnr[("attacked", "clean")] > psnr[("attacked", "poisoned")] + 5.0, psnr
    assert (run_dir / "report.html").is_file()
