"""Spec values that used to slip through or come back in a library's words.

* a string where an array belongs: one message, "expected an array of ..., got the string ...",
  for every array-typed field (core sections and component params alike);
* values that pass TOML but cannot run (huge integers, nan/inf, out-of-bound seeds, steps, batch
  sizes, image sides, learning rates): rejected by ``check`` with the key named;
* library wording (attrs reprs, cattrs' tuple messages, Python's TypeErrors): rewritten into what
  the key expects and what it got;
* an unknown component name is a spec problem (exit 2) in the code and in docs/errors.md.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import pytest
import tomli
import tomli_w
import torch
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore import hookimpl
from bdcore.params import MAX_BATCH_SIZE, MAX_IMAGE_SIDE, MAX_SEED, MAX_STEPS
from bdcore.spec.overrides import apply_overrides
from bdcore.testing import make_host

GOOD = """
[run]
name = "values"
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
[[metric]]
use = "typed"
"""


@attrs.frozen
class Inner:
    depth: int = 1


@attrs.frozen
class TypedParams:
    """Every array and table shape a plugin's params may declare."""

    names: tuple[str, ...] = ()
    pair: tuple[float, float] = (0.0, 1.0)
    sizes: list[int] = attrs.Factory(list)
    tags: frozenset[str] = frozenset()
    modes: tuple[Literal["a", "b"], ...] = ()
    maybe: tuple[int, int] | None = None
    weights: dict[str, float] = attrs.Factory(dict)
    inner: Inner = attrs.Factory(Inner)
    anything: dict[str, object] | None = None
    choice: Literal[1, 3] = 3
    when: str = attrs.field(default="x", validator=attrs.validators.in_(["x", "y"]))
    fussy: int = attrs.field(default=0)

    @fussy.validator
    def _fussy(self, attribute: Any, value: int) -> None:
        if value == 13:
            raise KeyError("unlucky")  # a plugin validator raising something unexpected


def _typed_plugin() -> types.ModuleType:
    mod = types.ModuleType("typedplug")

    @hookimpl
    def register_metrics(register: Any) -> None:
        register("typed", "bdcore.builtin.components:PSNR", params=TypedParams, summary="typed params (tests)")

    mod.register_metrics = register_metrics  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def cli_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host([_typed_plugin()]))


def check(tmp_path: Path, text: str, *overrides: str) -> tuple[int, list[str], str]:
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    args = [a for o in overrides for a in ("--set", o)]
    res = CliRunner().invoke(cli.main, ["check", str(spec), *args])
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
    lines = [line.strip() for line in res.output.splitlines() if line.strip().startswith(f"{spec}: ")]
    problems = [line[len(str(spec)) + 2 :] for line in lines]
    skip = ("problem found", "problems found", "components)")
    return res.exit_code, [p for p in problems if not p.endswith(skip)], res.output


# -- strings (and other scalars) where arrays belong --------------------------------------------------

ARRAYS = [
    ('run.requires="abc"', 'run.requires: expected an array of strings, got the string "abc"'),
    (
        'metric[0].params.splits="clean"',
        'metric[0].params.splits: expected an array of strings ("clean" or "poisoned"), got the string "clean"',
    ),
    ('metric[0].params.between="io"', 'metric[0].params.between: expected an array of 2 strings, got the string "io"'),
    (
        'defense[0].sweep={ param = "x", values = "abc" }',
        'defense[0].sweep.values: expected an array of values, got the string "abc"',
    ),
    ('metric[1].params.names="abc"', 'metric[1].params.names: expected an array of strings, got the string "abc"'),
    ('metric[1].params.pair="ab"', 'metric[1].params.pair: expected an array of 2 numbers, got the string "ab"'),
    ('metric[1].params.sizes="12"', 'metric[1].params.sizes: expected an array of integers, got the string "12"'),
    ('metric[1].params.tags="x"', 'metric[1].params.tags: expected an array of strings, got the string "x"'),
    (
        'metric[1].params.modes="a"',
        'metric[1].params.modes: expected an array of strings ("a" or "b"), got the string "a"',
    ),
    ('metric[1].params.maybe="xy"', 'metric[1].params.maybe: expected an array of 2 integers, got the string "xy"'),
    ("metric[1].params.names=5", "metric[1].params.names: expected an array of strings, got the integer 5"),
    ("metric[0].params.between=5", "metric[0].params.between: expected an array of 2 strings, got the integer 5"),
    ("metric[1].params.pair={ a = 1 }", "metric[1].params.pair: expected an array of 2 numbers, got a table"),
    ("metric[1].params.weights=[1]", "metric[1].params.weights: expected a table, got an array of 1 item"),
    ('metric[1].params.inner="deep"', 'metric[1].params.inner: expected a table, got the string "deep"'),
    ('metric[1].params="x"', 'metric[1].params: expected a table, got the string "x"'),
    (
        'attack.trigger="toy-patch"',
        'attack.trigger: expected a table, got the string "toy-patch" (write { use = "toy-patch" })',
    ),
]


@pytest.mark.parametrize(("override", "message"), ARRAYS, ids=[a for a, _ in ARRAYS])
def test_a_scalar_where_an_array_belongs_is_one_message(
    override: str, message: str, tmp_path: Path, cli_host: None
) -> None:
    code, problems, output = check(tmp_path, GOOD, override)
    assert code == 2, output  # never 3: requires = "abc" is not three missing plugins "a", "b", "c"
    assert problems == [message], output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            'metric[0].params.between=["input", "output", "target"]',
            "expected an array of 2 strings, got an array of 3 items",
        ),
        ("metric[1].params.pair=[1]", "expected an array of 2 numbers, got an array of 1 item"),
        ("metric[1].params.maybe=[]", "expected an array of 2 integers, got an empty array"),
    ],
)
def test_an_array_of_the_wrong_length_says_so(override: str, message: str, tmp_path: Path, cli_host: None) -> None:
    code, problems, output = check(tmp_path, GOOD, override)
    assert code == 2 and len(problems) == 1 and problems[0].endswith(message), output


def test_each_bad_item_is_reported_at_its_index(tmp_path: Path, cli_host: None) -> None:
    code, problems, output = check(
        tmp_path, GOOD, 'metric[1].params.names=["a", 1, true]', 'metric[1].params.weights={ a = 1, b = "x" }'
    )
    assert code == 2, output
    assert problems == [
        "metric[1].params.names[1]: expected a string, got the integer 1",
        "metric[1].params.names[2]: expected a string, got the boolean true",
        'metric[1].params.weights.b: expected a number, got the string "x"',
    ], output


def test_valid_arrays_and_tables_still_structure(tmp_path: Path, cli_host: None) -> None:
    code, problems, output = check(
        tmp_path,
        GOOD,
        'metric[1].params.names=["a"]',
        "metric[1].params.pair=[1, 2.5]",
        'metric[1].params.tags=["t", "t"]',
        'metric[1].params.modes=["a", "b"]',
        "metric[1].params.maybe=[1, 2]",
        "metric[1].params.weights={ a = 1 }",
        "metric[1].params.inner={ depth = 2 }",
        'metric[1].params.anything={ k = [1, "x"] }',
        'run.requires=["bdcore"]',
    )
    assert code == 0 and not problems, output


# -- values that cannot run ---------------------------------------------------------------------

BOUNDS = [
    (
        "run.seed=99999999999999999999",
        "run.seed: expected an integer that fits in 64 bits (-2^63 to 2^63-1), got the integer 99999999999999999999",
    ),
    (f"run.seed={2**63}", "run.seed: expected an integer that fits in 64 bits"),
    ("run.seed=-1", "run.seed: must be >= 0 (got -1)"),
    (
        f"run.seed={10**400}",
        "run.seed: expected an integer that fits in 64 bits (-2^63 to 2^63-1), got an integer with 401 digits",
    ),
    ("train.steps=1000000000000000000000000000000", "train.steps: expected an integer that fits in 64 bits"),
    (f"train.steps={MAX_STEPS + 1}", f"train.steps: must be <= {MAX_STEPS} (got {MAX_STEPS + 1})"),
    (f"attack.fit_steps={MAX_STEPS * 10}", f"attack.fit_steps: must be <= {MAX_STEPS}"),
    (f"attack.steps={10**12}", f"attack.steps: must be <= {MAX_STEPS}"),
    ("train.lr=inf", "train.lr: expected a finite number, got inf"),
    ("attack.lr=nan", "attack.lr: expected a finite number, got nan"),
    ("train.lr=-inf", "train.lr: expected a finite number, got -inf"),
    ("train.lr=1e400", "train.lr: expected a finite number, got inf"),  # TOML reads 1e400 as inf
    (f"train.lr={10**400}", "train.lr: expected a finite number, got an integer with 401 digits"),
    ("train.lr=0", "train.lr: must be > 0.0 (got 0.0)"),
    ("train.lr=-0.1", "train.lr: must be > 0.0 (got -0.1)"),
    (f"train.batch_size={MAX_BATCH_SIZE + 1}", f"train.batch_size: must be <= {MAX_BATCH_SIZE}"),
    ("eval.batch_size=0", "eval.batch_size: must be >= 1 (got 0)"),
    ("train.weight_decay=nan", "train.weight_decay: expected a finite number, got nan"),
    ("train.momentum=inf", "train.momentum: expected a finite number, got inf"),
    ("train.grad_clip=nan", "train.grad_clip: expected a finite number, got nan"),
    ("attack.poison_rate=nan", "attack.poison_rate: expected a finite number, got nan"),
    ("attack.trigger.params.size=nan", "attack.trigger.params.size: expected a finite number, got nan"),
    ("attack.loss.params.strength=-inf", "attack.loss.params.strength: expected a finite number, got -inf"),
    (f"victim.params.width={2**64}", "victim.params.width: expected an integer that fits in 64 bits"),
    ("data.params.count=1000000000", "data.params.count: must be <= 100000 (got 1000000000)"),
    (
        'run.device="cuda:99999999"',
        'run.device: expected "cpu", "auto", "cuda", "cuda:N" or "mps", got the string "cuda:99999999"',
    ),
    ("eval.limit=nan", "eval.limit: expected an integer, got the number nan"),
]


@pytest.mark.parametrize(("override", "message"), BOUNDS, ids=[o for o, _ in BOUNDS])
def test_values_that_cannot_run_are_rejected_with_the_key(
    override: str, message: str, tmp_path: Path, cli_host: None
) -> None:
    code, problems, output = check(tmp_path, GOOD, override)
    assert code == 2, output
    assert len(problems) == 1 and problems[0].startswith(message), output
    # the same value written in the file is the same problem
    doc = tomli.loads(GOOD)
    assert not apply_overrides(doc, [override])
    code, in_file, output = check(tmp_path, tomli_w.dumps(doc))
    assert code == 2 and in_file == problems, output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (f'data.use="embedded"\ndata.params.crop={MAX_IMAGE_SIDE + 1}', f"must be > 0 and <= {MAX_IMAGE_SIDE} pixels"),
        ('data.use="embedded"\ndata.params.repeats=10000000000', "must be <= 1000000"),
        ('data.use="embedded"\ndata.params.test_crop=-1', "must be >= 0"),
        ('data.use="embedded"\ndata.params.train_fraction=nan', "expected a finite number, got nan"),
    ],
)
def test_built_in_dataset_bounds(override: str, message: str, tmp_path: Path, cli_host: None) -> None:
    overrides = override.split("\n")
    code, problems, output = check(tmp_path, GOOD.replace("params = { count = 8, size = 8 }\n", "", 1), *overrides)
    assert code == 2 and len(problems) == 1 and message in problems[0], output


def test_the_largest_seed_is_what_torch_and_numpy_generators_take() -> None:
    """The documented seed bound against the libraries that consume seeds (golden: their own
    limits, not ours): every seed bdcore accepts seeds every generator; one more does not."""
    torch.manual_seed(MAX_SEED)
    torch.Generator().manual_seed(MAX_SEED)
    np.random.default_rng(MAX_SEED)
    torch.manual_seed(0)
    with pytest.raises((RuntimeError, OverflowError, ValueError)):
        torch.Generator().manual_seed(2**64)
    with pytest.raises(ValueError):
        np.random.default_rng(-1)


def test_boundary_values_pass(tmp_path: Path, cli_host: None) -> None:
    code, _, output = check(
        tmp_path,
        GOOD,
        f"run.seed={MAX_SEED}",
        f"train.steps={MAX_STEPS}",
        f"train.batch_size={MAX_BATCH_SIZE}",
        "train.lr=1e-12",
        "eval.limit=1",
    )
    assert code == 0, output


# -- library wording -----------------------------------------------------------------------------

LEAKS = (
    "Attribute(",
    "typing.",
    "Literal[",
    "tuple[",
    "Too many values",
    "Not enough values",
    "not iterable",
    "has no len",
    "<class",
    "regex",
    "Register a structure hook",
    "object of type",
)

WORDING = [
    ('victim.sha256="xyz"', 'victim.sha256: expected 64 hexadecimal digits (a sha256), got the string "xyz"'),
    ('run.device="gpu0"', 'run.device: expected "cpu", "auto", "cuda", "cuda:N" or "mps", got the string "gpu0"'),
    (
        'metric[0].params.splits=["c"]',
        'metric[0].params.splits[0]: expected one of "clean", "poisoned", got the string "c"',
    ),
    ("metric[1].params.choice=2", "metric[1].params.choice: expected one of 1, 3, got the integer 2"),
    ("metric[1].params.choice=true", "metric[1].params.choice: expected one of 1, 3, got the boolean true"),
    ('metric[1].params.when="z"', "metric[1].params.when: expected one of ['x', 'y'] (got 'z')"),
    ("metric[1].params.fussy=13", "metric[1].params.fussy: invalid value (KeyError: 'unlucky')"),
    ('defense[0].sweep={ param = "x", values = [] }', "defense[0].sweep.values: needs a length >= 1 (got 0)"),
    ('train.optimizer="adamax"', 'train.optimizer: expected one of "adam", "adamw", "sgd", got the string "adamax"'),
    ("run.seed=1979-05-27", "run.seed: expected an integer, got the date/time 1979-05-27"),
    ('run.requires=["a >>> 1"]', '"a >>> 1" is not a valid requirement: Expected semicolon'),
    ('data.params.count="8"', 'data.params.count: expected an integer, got the string "8"'),
]


@pytest.mark.parametrize(("override", "message"), WORDING, ids=[o for o, _ in WORDING])
def test_messages_are_in_our_words(override: str, message: str, tmp_path: Path, cli_host: None) -> None:
    code, problems, output = check(tmp_path, GOOD, override)
    assert code == 2, output
    assert len(problems) == 1 and message in problems[0], output
    assert not any(leak in output for leak in LEAKS), output


def test_a_long_value_is_shortened_in_the_message(tmp_path: Path, cli_host: None) -> None:
    code, problems, output = check(tmp_path, GOOD, f'run.seed="{"9" * 5000}"')
    assert code == 2 and problems[0].endswith('… (5000 characters)"') and len(problems[0]) < 200, output


def test_paths_the_os_refuses_are_issues_not_crashes(tmp_path: Path, cli_host: None) -> None:
    text = GOOD.replace(
        'use = "toy-smooth"\nparams = { count = 8, size = 8 }',
        'use = "image-folder"\nparams = { path = "' + "d/" * 3000 + '" }',
    )
    code, problems, output = check(tmp_path, text)
    assert code == 2 and problems[0].startswith("data.params.path: path does not exist"), output
    text = GOOD.replace(
        'use = "toy-smooth"\nparams = { count = 8, size = 8 }', 'use = "image-folder"\nparams = { path = "a\\u0000b" }'
    )
    code, problems, output = check(tmp_path, text)
    assert code == 2 and problems[0].startswith("data.params.path: expected a path, got the string"), output


# -- exit codes: an unknown component name is a spec problem --------------------------------------


def test_unknown_component_is_exit_2_in_code_and_docs(tmp_path: Path, cli_host: None) -> None:
    code, problems, output = check(tmp_path, GOOD.replace('use = "toy-patch"', 'use = "toy-ptach"'))
    assert code == 2 and problems == [
        'attack.trigger.use: unknown trigger "toy-ptach". Did you mean "toy-patch"? Installed: none, toy-patch'
    ], output
    import bdcore.errors as errors

    assert errors.ComponentNotFound.exit_code == errors.EXIT_PLUGIN  # code asking for a missing component
    doc = (Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `ComponentNotFound`"))
    assert "| 3 |" in row and "an unknown name in a spec is a spec problem (exit 2" in row, row
    assert "unknown component name in a spec" in doc.split("## Spec problems (exit code 2)")[1].split("##")[0]
