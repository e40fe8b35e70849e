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


def test_metric_curves_group_name_at_x_rows_per_model_and_split(tmp_path: Path) -> None:
    from bdcore.report.plots import metric_curves, plot_metric_curves

    rows = [
        {"stage": "attacked", "split": "clean", "metric": f"mra@{a:g}", "value": 0.5 + a}
        for a in (1.0, -0.5, 0.5, -1.0)
    ]
    rows += [
        {
            "stage": "defended",
            "defense": "jpeg",
            "setting": "quality=50",
            "split": "clean",
            "metric": "mra@1",
            "value": 0.1,
        },
        {"stage": "attacked", "split": "clean", "metric": "mra", "value": 0.7},  # the mean, not a curve point
        {"stage": "attacked", "split": "clean", "metric": "mae@x", "value": 1.0},  # non-numeric x
        {"stage": "attacked", "split": "clean", "metric": "mae@1", "value": float("nan")},
    ]
    curves = metric_curves(rows)
    assert list(curves) == ["mra"]
    assert curves["mra"]["attacked · clean"] == [(-1.0, -0.5), (-0.5, 0.0), (0.5, 1.0), (1.0, 1.5)]
    assert curves["mra"]["jpeg (quality=50) · clean"] == [(1.0, 0.1)]
    paths = plot_metric_curves(rows, tmp_path)
    assert [p.name for p in paths] == ["curve-mra.png"] and paths[0].stat().st_size > 1000


def _attack_run(folder: Path, name: str, asr: float, stealth: float) -> Path:
    """A finished run of one attack: trigger stealth, clean and attacked models, a swept defense."""
    folder.mkdir(parents=True)
    rows = [
        {"run": name, "stage": "trigger", "split": "poisoned", "metric": "stealth_psnr", "value": stealth},
        {"run": name, "stage": "clean-victim", "split": "poisoned", "metric": "asr", "value": 0.0},
        {"run": name, "stage": "attacked", "split": "clean", "metric": "ba", "value": 99.0},
        {"run": name, "stage": "attacked", "split": "poisoned", "metric": "asr", "value": asr},
        {"run": name, "stage": "attacked", "split": "poisoned", "metric": "psnr[input,clean_input]", "value": 40.0},
    ]
    for rate in (0.1, 0.5):
        rows.append(
            {
                "run": name,
                "stage": "defended",
                "defense": "fine-pruning",
                "setting": f"rate={rate}",
                "split": "poisoned",
                "metric": "asr",
                "value": asr * (1 - rate),
            }
        )
    write_results(folder, rows)
    return folder


def test_report_filters_models_and_metrics_and_carries_the_trigger_stealth(tmp_path: Path) -> None:
    from bdcore.report.compare import comparison

    dirs = [_attack_run(tmp_path / n, n, asr, st) for n, asr, st in (("wanet", 60.0, 31.0), ("fiba", 80.0, 30.0))]
    cols, body = comparison(dirs)
    assert "stealth_psnr" in cols  # the trigger row is a column of every model of its run
    assert [(r, m) for r, m, _ in body][:3] == [
        ("wanet", "clean-victim"),
        ("wanet", "attacked"),
        ("wanet", "fine-pruning (rate=0.1)"),
    ]
    assert all(v["stealth_psnr"] == 31.0 for r, _, v in body if r == "wanet")
    cols, body = comparison(dirs, models=("attacked",), metrics=("asr", "stealth_psnr", "ba"))
    assert cols == ["asr [poisoned]", "stealth_psnr", "ba [clean]"]
    assert [(r, m, v["asr [poisoned]"], v["stealth_psnr"]) for r, m, v in body] == [
        ("wanet", "attacked", 60.0, 31.0),
        ("fiba", "attacked", 80.0, 30.0),
    ]
    _, body = comparison(dirs, models=("fine-pruning",), metrics=("asr [poisoned]",))
    assert [m for _, m, _ in body] == ["fine-pruning (rate=0.1)", "fine-pruning (rate=0.5)"] * 2
    out = tmp_path / "table.html"
    res = CliRunner().invoke(
        cli.main, ["report", *map(str, dirs), "--model", "attacked", "--metric", "asr", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "<th>asr [poisoned]</th>" in page and "ba [clean]" not in page and "fine-pruning" not in page
    for args, fragment in (
        (["--model", "attack"], "--model attack: no such model in these runs (models: clean-victim, attacked,"),
        (["--metric", "lpips"], "psnr[input,clean_input]"),  # rich markup does not eat the bracketed name
    ):
        res = CliRunner().invoke(cli.main, ["report", *map(str, dirs), *args])
        assert res.exit_code == 2 and fragment in res.output, res.output
