"""Malformed specs: each exits 2 and names every issue by file and dotted key, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.errors import SpecError
from bdcore.spec.structure import load_spec
from bdcore.testing import make_host

GOOD = """
[run]
name = "ok"
seed = 3
[data]
use = "toy-smooth"
params = { count = 8, size = 8 }
[victim]
use = "toy-denoiser"
[train]
steps = 1
[attack]
poison_rate = 0.2
[attack.trigger]
use = "toy-patch"
params = { size = 0.3 }
[attack.loss]
use = "toy-invert"
[[defense]]
use = "none"
[[metric]]
use = "psnr"
"""


def spec_with(**edits: str) -> str:
    text = GOOD
    for old, new in edits.items():
        text = text.replace(old.replace("_NL_", "\n"), new.replace("_NL_", "\n"))
    return text


# (spec text, [(dotted key, fragment of the message)])
CASES = {
    "toml-syntax": ("[run\nseed = 1\n", [("", "TOML syntax error at line 1")]),
    "unknown-section": (GOOD + "\n[trian]\nsteps = 3\n", [("trian", 'did you mean "train"')]),
    "unknown-key": (GOOD.replace("seed = 3", "sed = 3"), [("run.sed", 'did you mean "seed"')]),
    "wrong-type-string-for-int": (
        GOOD.replace("seed = 3", 'seed = "three"'),
        [("run.seed", 'expected an integer, got the string "three"')],
    ),
    "string-for-float": (
        GOOD.replace("poison_rate = 0.2", 'poison_rate = "0.2"'),
        [("attack.poison_rate", "expected a number")],
    ),
    "bool-for-int": (
        GOOD.replace("steps = 1", "steps = true"),
        [("train.steps", "expected an integer, got the boolean true")],
    ),
    "out-of-range": (GOOD.replace("poison_rate = 0.2", "poison_rate = 1.5"), [("attack.poison_rate", "must be <= 1")]),
    "negative": (GOOD.replace("seed = 3", "seed = -1"), [("run.seed", "must be >= 0")]),
    "unknown-component-near-name": (
        GOOD.replace('use = "toy-patch"', 'use = "toy-ptach"'),
        [("attack.trigger.use", 'Did you mean "toy-patch"')],
    ),
    "unknown-param": (
        GOOD.replace("size = 0.3", "sise = 0.3"),
        [("attack.trigger.params.sise", 'did you mean "size"')],
    ),
    "param-out-of-range": (GOOD.replace("size = 0.3", "size = 0.0"), [("attack.trigger.params.size", "must be > 0")]),
    "missing-required-section": ("\n".join(GOOD.split("\n")[:6]), [("victim", "required section is missing")]),
    "missing-data-path": (
        GOOD.replace(
            'use = "toy-smooth"\nparams = { count = 8, size = 8 }',
            'use = "image-folder"\nparams = { path = "no/such/folder" }',
        ),
        [("data.params.path", "path does not exist")],
    ),
    "bad-requires": (
        GOOD.replace('name = "ok"', 'name = "ok"\nrequires = ["bd-plugin-x>>1"]'),
        [("run.requires", "not a valid requirement")],
    ),
    "bad-device": (
        GOOD.replace("seed = 3", 'seed = 3\ndevice = "gpu0"'),
        [("run.device", 'expected "cpu", "auto", "cuda", "cuda:N" or "mps", got the string "gpu0"')],
    ),
    "literal-choice": (GOOD.replace("steps = 1", 'steps = 1\noptimizer = "adamax"'), [("train.optimizer", "adamax")]),
    "missing-use": (
        GOOD.replace('[attack.loss]\nuse = "toy-invert"', "[attack.loss]\nparams = {}"),
        [("attack.loss.use", "required key is missing")],
    ),
    "defense-not-a-table-array": (
        'defense = "none"\n' + GOOD.replace('[[defense]]\nuse = "none"\n', ""),
        [("defense", "")],
    ),
    "bad-sweep-param": (
        GOOD.replace(
            '[[defense]]\nuse = "none"', '[[defense]]\nuse = "none"\nsweep = { param = "quality", values = [1] }'
        ),
        [("defense[0].sweep.param", "not a param of none")],
    ),
    "victim-weights-missing": (
        GOOD.replace('use = "toy-denoiser"', 'use = "toy-denoiser"\nweights = "nope.safetensors"'),
        [("victim.weights", "path does not exist")],
    ),
}


@pytest.fixture
def cli_host(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host())


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_spec_exits_2_naming_every_issue(case: str, tmp_path: Path, cli_host: None) -> None:
    text, expected = CASES[case]
    spec = tmp_path / f"{case}.toml"
    spec.write_text(text)
    for command in (["check", str(spec)], ["run", str(spec), "--out", str(tmp_path / "runs")]):
        res = CliRunner().invoke(cli.main, command)
        assert res.exit_code == 2, (case, res.output)
        assert "Traceback" not in res.output
        for key, fragment in expected:
            prefix = f"{spec}: {key}: " if key else f"{spec}: "
            assert any(line.strip().startswith(prefix) and fragment in line for line in res.output.splitlines()), (
                case,
                key,
                fragment,
                res.output,
            )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("*-*"))


def test_all_issues_are_collected(tmp_path: Path) -> None:
    text = (
        GOOD.replace("seed = 3", 'seed = "x"')
        .replace("poison_rate = 0.2", "poison_rate = 7.0")
        .replace("size = 0.3", "sise = 0.3")
        .replace('use = "psnr"', 'use = "psrn"')
    )
    spec = tmp_path / "many.toml"
    spec.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(spec, make_host().registry)
    paths = {i.path for i in info.value.issues}
    assert {"run.seed", "attack.poison_rate", "attack.trigger.params.sise", "metric[0].use"} <= paths
    assert "4 problems found" in str(info.value)


def test_good_spec_resolves_defaults(tmp_path: Path) -> None:
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    loaded = load_spec(spec, make_host().registry)
    assert loaded.trigger.params.size == 0.3 and loaded.trigger.params.strength == 1.0
    assert loaded.spec.train.optimizer == "adam"
    assert loaded.metrics[0].params.between == ("output", "target")


def test_sweep_expands_into_settings(tmp_path: Path) -> None:
    spec = tmp_path / "sweep.toml"
    spec.write_text(GOOD.replace('[[defense]]\nuse = "none"', ""))
    text = spec.read_text() + '\n[[defense]]\nuse = "none"\n'
    spec.write_text(text)
    assert len(load_spec(spec, make_host().registry).defenses) == 1


def test_check_no_paths_skips_only_the_existence_check(tmp_path: Path, cli_host: None) -> None:
    """Paper-scale specs name data the user supplies: ``check --no-paths`` validates everything else."""
    text, _ = CASES["missing-data-path"]
    spec = tmp_path / "paper.toml"
    spec.write_text(text)
    res = CliRunner().invoke(cli.main, ["check", "--no-paths", str(spec)])
    assert res.exit_code == 0, res.output
    spec.write_text(CASES["unknown-param"][0].replace("toy-smooth", "image-folder"))
    res = CliRunner().invoke(cli.main, ["check", "--no-paths", str(spec)])
    assert res.exit_code == 2 and "sise" in res.output, res.output


def test_set_overrides_values_before_validation(tmp_path: Path) -> None:
    from bdcore.spec.overrides import parse_value

    assert [parse_value(t) for t in ("5", "1e-4", "true", '"x"', "[1, 2]", "/data/kodak")] == [
        5,
        1e-4,
        True,
        "x",
        [1, 2],
        "/data/kodak",
    ]
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    loaded = load_spec(
        spec,
        make_host().registry,
        overrides=["run.seed=11", "attack.trigger.params.size=0.5", "metric[0].label=p", "victim.params.width=4"],
    )
    assert loaded.spec.run.seed == 11 and loaded.trigger.params.size == 0.5
    assert loaded.metrics[0].label == "p" and loaded.victim.params.width == 4  # a missing table is created
    assert loaded.overrides == (
        "run.seed=11",
        "attack.trigger.params.size=0.5",
        "metric[0].label=p",
        "victim.params.width=4",
    )
    assert "seed = 3" in spec.read_text()  # the file is untouched


@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        ("run.seed", "--set run.seed", "expected KEY=VALUE"),
        ("metric.3.use=ssim", "metric.3", "no entry 3 (the spec has 1"),
        ("run.seed.x=1", "run.seed", "a value, not a table"),
        ("attack.poison_rate=7.0", "attack.poison_rate", "must be"),
    ],
)
def test_bad_set_values_exit_2_naming_the_key(
    override: str, key: str, fragment: str, tmp_path: Path, cli_host: None
) -> None:
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    for command in (["check", str(spec)], ["run", str(spec), "--out", str(tmp_path / "runs")]):
        res = CliRunner().invoke(cli.main, [*command, "--set", override])
        assert res.exit_code == 2, res.output
        assert any(
            line.strip().startswith(f"{spec}: {key}: ") and fragment in line for line in res.output.splitlines()
        ), res.output
