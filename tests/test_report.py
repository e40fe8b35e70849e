"""``bdcore report``: runs compared in one table, metric-vs-metric plots across runs (RD curves)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.report.plots import metric_pairs
from bdcore.report.results import write_results


def _run(folder: Path, quality: int) -> Path:
    """A finished run folder of a codec at ``quality``: clean and triggered RD points."""
    folder.mkdir(parents=True)
    rows = []
    for stage, split, bpp, psnr in (
        ("clean-victim", "clean", 0.1 * quality, 25.0 + quality),
        ("attacked", "clean", 0.1 * quality + 0.01, 24.9 + quality),
        ("attacked", "poisoned", 0.3 * quality, 9.0),
    ):
        rows += [
            {"run": f"q{quality}", "stage": stage, "split": split, "metric": "bpp", "value": bpp},
            {"run": f"q{quality}", "stage": stage, "split": split, "metric": "psnr", "value": psnr},
        ]
    rows.append({"run": f"q{quality}", "stage": "attacked", "split": "clean", "metric": "ms-ssim", "value": 0.9})
    write_results(folder, rows)
    return folder


def test_metric_pairs_make_one_rd_curve_per_model_and_split(tmp_path: Path) -> None:
    from bdcore.report.results import read_results

    runs = [read_results(_run(tmp_path / f"q{q}", q)) for q in (3, 1, 2)]
    series = metric_pairs(runs, "bpp", "psnr")
    assert sorted(series) == ["attacked · clean", "attacked · poisoned", "clean-victim · clean"]
    assert [p[1] for p in series["clean-victim · clean"]] == [26.0, 27.0, 28.0]  # sorted by bpp
    assert series["attacked · poisoned"][0] == (0.3, 9.0)
    ssim = metric_pairs(runs, "bpp", "ms-ssim")
    assert list(ssim) == ["attacked · clean"] and len(ssim["attacked · clean"]) == 3


def test_report_plots_rd_curves_next_to_the_html(tmp_path: Path) -> None:
    dirs = [str(_run(tmp_path / f"q{q}", q)) for q in (1, 2, 3)]
    out = tmp_path / "cmp" / "compare.html"
    out.parent.mkdir()
    res = CliRunner().invoke(cli.main, ["report", *dirs, "--out", str(out), "--plot", "bpp:psnr"])
    assert res.exit_code == 0, res.output
    png = out.with_name("compare-psnr-vs-bpp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="compare-psnr-vs-bpp.png"' in out.read_text()
    for args, fragment in (
        (["--plot", "bpp"], "expected X:Y"),
        (["--plot", "bpp:lpips"], "no run has both metrics (metrics: bpp, ms-ssim, psnr)"),
    ):
        res = CliRunner().invoke(cli.main, ["report", *dirs, "--out", str(out), *args])
        assert res.exit_code == 2 and fragment in res.output, res.output
    res = CliRunner().invoke(cli.main, ["report", *dirs, "--plot", "bpp:psnr"])
    assert res.exit_code == 2 and "needs --out" in res.output
