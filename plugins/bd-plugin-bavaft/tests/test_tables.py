"""experiments/tables.py: commands per row and seed, and the collected table (mean ± std over seeds)."""

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "experiments" / "tables.py"


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("bavaft_tables", PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def _fake_run(out: Path, name: str, stamp: str, values: dict[tuple[str, str, str, str], float]) -> None:
    d = out / f"{name}-{stamp}"
    d.mkdir(parents=True)
    (d / "COMPLETE").write_text("")
    with open(d / "results.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "stage", "defense", "setting", "split", "metric", "value"])
        for (stage, defense, split, metric), v in values.items():
            w.writerow([name, stage, defense, "", split, metric, v])


def test_command_has_the_seed_name_and_overrides(tables):
    row = tables.TABLES["bpp"].rows[0]
    cmd = tables.command("bpp", row, 2, "o")
    assert cmd[:3] == ["bdcore", "run", tables.BASE]
    assert "run.seed=2" in cmd and "run.name=bpp-paper-dynamic-s2" in cmd and "attack.loss.use=bavaft-bpp" in cmd


def test_collect_means_over_seeds_and_skips_incomplete_runs(tables, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "RESULTS", tmp_path / "results")
    out = tmp_path / "runs"
    t = tables.TABLES["psnr"]
    row = t.rows[0]
    key = ("attacked", "", "poisoned", "psnr")
    _fake_run(out, tables.run_name("psnr", row, 0), "20260101-000000", {key: 8.0})
    _fake_run(out, tables.run_name("psnr", row, 1), "20260101-000000", {key: 10.0})
    (out / f"{tables.run_name('psnr', row, 2)}-20260101-000000").mkdir()  # not COMPLETE: ignored
    tables.do_collect("psnr", [0, 1, 2], str(out))
    md = (tmp_path / "results" / "psnr.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {row.name} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    col = [c.title for c in t.columns].index("triggered PSNR")
    assert cells[1 + col] == "9.00 ± 1.41"
    assert cells[-2] == "0,1"
    assert "tables.py run psnr --seeds 0 1 2" in md
