"""Tables that never lose a column or a digit: piped to a file, on a narrow terminal, in every ``--format``."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.report.results import write_results
from bdcore.report.tables import FORMATS, TextTable, cell_text, render, rich_table

# long metric names (the columns rich used to cut to "ms-s…") and values with every significant digit used
METRICS = [
    "ms-ssim",
    "psnr",
    "bpp",
    "bpp-est",
    "trigger-psnr",
    "asfiba-asr",
    "asfiba-ba",
    "face-id-similarity",
    "stroke-intensity",
    "detection_auroc",
]
MODELS = [("clean-victim", None), ("attacked", None), ("fine-pruning", "rate=0.5"), ("fine-pruning", "rate=0.9")]


def _fake_run(folder: Path) -> list[dict[str, object]]:
    folder.mkdir(parents=True)
    rows = []
    for m, (model, setting) in enumerate(MODELS):
        for k, metric in enumerate(METRICS):
            for split in ("clean", "poisoned"):
                rows.append(
                    {
                        "run": "wide-run-name",
                        "stage": model if setting is None else "defended",
                        "defense": None if setting is None else model,
                        "setting": setting,
                        "split": split,
                        "metric": metric,
                        "value": 10.0 ** (k % 4 - 2) * (1.0 + 0.123456789 * (m + 1)) + (split == "poisoned"),
                    }
                )
    write_results(folder, rows)
    return rows


def _columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_a_report_piped_to_a_file_keeps_every_column_and_digit(tmp_path: Path) -> None:
    rows = _fake_run(tmp_path / "run")
    out = tmp_path / "table.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    with out.open("w") as fh:
        res = subprocess.run(
            [sys.executable, "-m", "bdcore.cli", "report", str(tmp_path / "run")],
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "bdcore: runs compared" and set(lines[2]) <= {"-", " "}
    head = _columns(lines[1])
    want = ["run", "model", *(f"{m} [{s}]" for m in METRICS for s in ("clean", "poisoned"))]
    assert head[: len(want)] == want and "…" not in out.read_text()
    body = [_columns(line) for line in lines[3:]]
    assert [r[1] for r in body] == ["clean-victim", "attacked", "fine-pruning (rate=0.5)", "fine-pruning (rate=0.9)"]
    for r in rows:
        model = r["stage"] if r["setting"] is None else f"{r['defense']} ({r['setting']})"
        line = next(b for b in body if b[1] == model)
        assert line[head.index(f"{r['metric']} [{r['split']}]")] == f"{r['value']:.4g}", (model, r)


def test_machine_formats_keep_full_precision(tmp_path: Path) -> None:
    rows = _fake_run(tmp_path / "run")
    exact = {(r["defense"] or r["stage"], r["setting"], f"{r['metric']} [{r['split']}]"): r["value"] for r in rows}
    outputs = {}
    for fmt in ("csv", "json", "markdown"):
        res = CliRunner().invoke(cli.main, ["report", str(tmp_path / "run"), "--format", fmt])
        assert res.exit_code == 0, res.output
        outputs[fmt] = res.stdout
    records = json.loads(outputs["json"])
    parsed = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert len(records) == len(parsed) == len(MODELS)
    for rec, line in zip(records, parsed, strict=True):
        name, _, setting = rec["model"].partition(" (")
        setting = setting.rstrip(")") or None
        for col, value in rec.items():
            if col in ("run", "model"):
                continue
            assert value == exact[(name, setting, col)]  # json: the very float
            assert float(line[col]) == value  # csv: repr round-trips
    md = outputs["markdown"].splitlines()
    assert md[0] == "**bdcore: runs compared**" and md[3].startswith("|---|---|---:|")
    assert len(md) == 4 + len(MODELS)


def test_a_narrow_terminal_folds_names_but_never_cuts_a_number() -> None:
    from rich.console import Console

    cols = [f"{m} [poisoned]" for m in METRICS]
    table = TextTable.build("t", ["model", *cols], [["fine-pruning (rate=0.5)", *[123.456789 + k for k in range(10)]]])
    for width in (40, 80, 200):
        console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
        rendered, print_width = rich_table(table, width)
        console.width = print_width
        console.print(rendered)
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert "…" not in text
        for k in range(10):
            assert cell_text(123.456789 + k) in text
        for word in {w for c in cols for w in c.split()}:
            assert word in text, (width, word)
        if width == 200:
            assert print_width == 200 and max(map(len, text.splitlines())) <= 200


@pytest.mark.parametrize("fmt", FORMATS)
def test_user_text_is_printed_literally(fmt: str) -> None:
    """Names like psnr[input,clean_input] or [bold]x[/] are data, not rich markup."""
    table = TextTable.build("[bold]t[/]", ["model", "psnr[input,clean_input]"], [["[red]m|x[/]", 1.5]])
    text = render(table, fmt)
    assert "psnr[input,clean_input]" in text and "[red]m" in text


def test_list_accepts_singular_kinds_and_plugins_shows_core() -> None:
    plural = CliRunner().invoke(cli.main, ["list", "triggers", "--format", "csv"])
    for kind in ("trigger", "Trigger", "triggers"):
        res = CliRunner().invoke(cli.main, ["list", kind, "--format", "csv"])
        assert res.exit_code == 0 and res.output == plural.output, res.output
    assert "none,No trigger" in plural.output
    res = CliRunner().invoke(cli.main, ["list", "attack_loss", "--format", "json"])
    assert any(c["name"] == "evasion" for c in json.loads(res.output))
    res = CliRunner().invoke(cli.main, ["list", "trigers"])
    assert res.exit_code == 2 and 'did you mean "triggers"?' in res.output
    res = CliRunner().invoke(cli.main, ["plugins"])
    assert res.exit_code == 0
    assert "bdcore (built in)" in res.output and re.search(r"triggers \(1\):\s+none\n", res.output), res.output


def test_usage_lines_never_break_inside_a_word() -> None:
    for command in ("list", "run", "report", "check", "plugins"):
        res = CliRunner().invoke(cli.main, [command, "--help"], terminal_width=40)
        usage = res.output.split("\n\n", 1)[0]
        assert not re.search(r"[\w-]-\n", usage) and "[OPTIONS]" in usage, usage


RUN_SPEC = """
[run]
name = "wide"
seed = 1
[data]
use = "toy-smooth"
params = { count = 12, size = 8 }
[victim]
use = "toy-denoiser"
params = { width = 4 }
[train]
steps = 2
batch_size = 4
[attack]
poison_rate = 0.5
steps = 2
batch_size = 4
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert"
[[metric]]
use = "psnr"
label = "a-rather-long-metric-label-that-rich-used-to-cut"
[eval]
grid = 0
"""


def test_run_prints_every_column_and_json_holds_the_very_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bdcore.report.html import pivot
    from bdcore.testing import make_host

    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host())
    spec = tmp_path / "wide.toml"
    spec.write_text(RUN_SPEC)
    res = CliRunner().invoke(cli.main, ["run", str(spec), "--out", str(tmp_path / "runs"), "-q", "--format", "json"])
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)  # stdout holds the table alone; the run folder line went to stderr
    run_dir = next((tmp_path / "runs").glob("wide-*"))
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    cols, body = pivot(rows)
    assert [r["model"] for r in records] == [m for m, _ in body]
    for rec, (_, vals) in zip(records, body, strict=True):
        assert {c: rec[c] for c in cols if rec[c] is not None} == vals
    res = CliRunner().invoke(cli.main, ["report", str(run_dir)])
    head = res.output.splitlines()[1]
    assert "a-rather-long-metric-label-that-rich-used-to-cut [poisoned]" in head and "…" not in res.output
