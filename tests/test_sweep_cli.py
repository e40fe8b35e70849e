"""bdcore sweep / check on bad [sweep] tables and bad options: exit 2, FILE: key: message, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import sweepplug
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.sweep import cell as cell_mod
from bdcore.testing import make_host

GOOD = sweepplug.toy_sweep(seeds="[0]")


@pytest.fixture(autouse=True)
def toy_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host())
    monkeypatch.setattr(cell_mod, "default_host", make_host)


BAD = {
    "unknown-zip-axis": (
        GOOD.replace("[sweep]\n", '[sweep]\nzip = [["loss", "sise"]]\n'),
        ["sweep.zip[0][1]: 'sise' is not an axis (did you mean \"size\"?)"],
    ),
    "bad-axis-value": (
        GOOD.replace("[0.25, 0.5]", "[0.25, 1.5, 0]"),
        [
            'sweep.axes."attack.trigger.params.size"[1]: attack.trigger.params.size: must be <= 1.0 (got 1.5)',
            'sweep.axes."attack.trigger.params.size"[2]: attack.trigger.params.size: must be > 0.0 (got 0.0)',
        ],
    ),
    "misspelled-axis-key": (
        GOOD.replace('"attack.trigger.params.size"', '"attack.trigger.params.sise"'),
        ['sweep.axes."attack.trigger.params.sise"[0]: attack.trigger.params.sise: unknown key (did you mean "size"?)'],
    ),
    "unknown-component": (
        GOOD.replace('"toy-invert-controlled"]', '"toy-invrt"]'),
        ['sweep.axes."attack.loss.use"[1]: attack.loss.use: unknown attack loss "toy-invrt"'],
    ),
    "seeds": (
        GOOD.replace("seeds = [0]", 'seeds = [0, "1", -2]'),
        ["sweep.seeds[1]: expected an integer", "sweep.seeds[2]: must be >= 0"],
    ),
    "unknown-sweep-key": (
        GOOD.replace("seeds = [0]", "seed = [0]"),
        ['sweep.seed: unknown key (did you mean "seeds"?)'],
    ),
    "not-a-table": ("sweep = 5\n" + GOOD.split("[sweep]")[0], ["sweep: expected a table ([sweep]), got the integer 5"]),
    "table-field": (
        GOOD.replace('rows = ["loss"]', 'rows = ["los"]'),
        ['sweep.table.rows[0]: "los" is neither an axis'],
    ),
    "resources": (
        GOOD.replace("[sweep.axes]", "[sweep.resources]\ncpus = 0\n[sweep.axes]"),
        ["sweep.resources.cpus: must be > 0"],
    ),
    "several-at-once": (
        GOOD.replace("seeds = [0]", "seeds = [1, 1]").replace("[0.25, 0.5]", "[2.0]").replace('"loss"]', '"lss"]'),
        [
            "sweep.seeds[1]: seed 1 appears twice",
            'sweep.table.rows[0]: "lss" is neither an axis',
            'sweep.axes."attack.trigger.params.size"[0]: attack.trigger.params.size: must be <= 1.0 (got 2.0)',
        ],
    ),
    "base-spec-problem-once": (
        GOOD.replace("steps = 8\nbatch_size = 4\nlr = 2e-3", "steps = -1\nbatch_size = 4\nlr = 2e-3"),
        ["train.steps: must be >= 0 (got -1)"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["sweep", "check"])
def test_bad_sweep_tables_exit_2_naming_file_and_key(tmp_path: Path, case: str, command: str) -> None:
    text, expected = BAD[case]
    spec = tmp_path / "grid.toml"
    spec.write_text(text)
    args = [command, str(spec)] + (["--out", str(tmp_path / "runs")] if command == "sweep" else [])
    res = CliRunner().invoke(cli.main, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    out = " ".join(res.output.split())
    for message in expected:
        assert f"{spec}: {message}" in out, (message, res.output)
    assert out.count(f"{spec}: train.steps") <= 1  # a problem every cell shares is reported once
    assert not (tmp_path / "runs").exists(), "nothing runs before every cell is valid"


def test_check_counts_the_cells_of_a_valid_grid(tmp_path: Path) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(sweepplug.toy_sweep())
    res = CliRunner().invoke(cli.main, ["check", str(spec)])
    assert res.exit_code == 0, res.output
    assert "a grid of 8 cells" in res.output


def test_a_problem_only_some_cells_have_names_one_of_them(tmp_path: Path) -> None:
    spec = tmp_path / "grid.toml"
    # poison_rate > 1 only where the zipped axis sets it
    spec.write_text(
        GOOD.replace("[sweep]\n", '[sweep]\nzip = [["loss", "attack.poison_rate"]]\n')
        .replace('"attack.trigger.params.size" = [0.25, 0.5]', '"attack.poison_rate" = [0.3, 1.5]')
        .replace('columns = ["size", "metric"]', 'columns = ["metric"]')
    )
    res = CliRunner().invoke(cli.main, ["check", str(spec)])
    assert res.exit_code == 2
    assert 'sweep.axes."attack.poison_rate"[1]: attack.poison_rate: must be <= 1.0 (got 1.5)' in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resume"], "--resume: no earlier sweep 'toy'"),
        (["--address", "auto"], "--address is for --executor ray"),
        (["--jobs", "0"], "Invalid value for '--jobs'"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(GOOD)
    res = CliRunner().invoke(cli.main, ["sweep", str(spec), "--out", str(tmp_path / "runs"), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_a_spec_without_a_grid(tmp_path: Path) -> None:
    spec = tmp_path / "plain.toml"
    spec.write_text(GOOD.split("[sweep]")[0])
    res = CliRunner().invoke(cli.main, ["sweep", str(spec), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2 and "sweep: no [sweep] table" in res.output, res.output
