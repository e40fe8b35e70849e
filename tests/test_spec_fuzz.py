"""Property tests: random specs and ``--set`` pairs never make ``bdcore check`` crash.

Hypothesis builds TOML documents from a valid spec by setting, adding and deleting keys of the
spec schema (core sections and the toy components' params) with values of every TOML type,
valid and invalid (huge integers, nan and inf, strings with markup and control characters,
arrays, tables, dates). ``bdcore check`` must then exit 0 or 2, print no traceback and name the
spec file on every line it prints. The CLI runs in-process (click's CliRunner); examples are
bounded so the file runs in seconds.
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import pytest
import tomli
import tomli_w
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import bdcore.cli as cli
from bdcore.spec.overrides import parse_value
from bdcore.testing import make_host
from bdcore.text import printable

GOOD = """
[run]
name = "fuzz"
seed = 3
[data]
use = "toy-smooth"
params = { count = 8, size = 8 }
[victim]
use = "toy-denoiser"
params = { width = 4 }
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
params = { between = ["output", "target"], splits = ["clean"] }
[eval]
batch_size = 2
"""

BASE: dict[str, Any] = tomli.loads(GOOD)

#: Keys of the schema (and a few near misses); a path is a tuple of keys and array indices.
PATHS: list[tuple[Any, ...]] = [
    *[("run", k) for k in ("name", "seed", "device", "requires", "out", "checkpoint_every", "deterministic", "sed")],
    *[
        (section, k)
        for section in ("train", "attack")
        for k in ("steps", "batch_size", "lr", "optimizer", "weight_decay", "momentum", "grad_clip", "step")
    ],
    *[("attack", k) for k in ("poison_rate", "from_clean", "fit_steps", "trigger", "loss")],
    ("attack", "trigger", "use"),
    ("attack", "trigger", "params"),
    ("attack", "trigger", "params", "size"),
    ("attack", "trigger", "params", "amplitude"),
    ("attack", "loss", "params", "clean_weight"),
    ("attack", "loss", "label"),
    ("data", "use"),
    ("data", "params"),
    *[("data", "params", k) for k in ("count", "size", "channels", "train_fraction", "path")],
    *[("victim", k) for k in ("use", "params", "weights", "sha256")],
    ("victim", "params", "width"),
    ("victim", "params", "noise"),
    *[("eval", k) for k in ("batch_size", "limit", "grid", "clean_victim", "stealth")],
    ("defense",),
    ("defense", 0, "use"),
    ("defense", 0, "label"),
    ("defense", 0, "sweep"),
    ("defense", 0, "sweep", "values"),
    ("defense", 0, "sweep", "param"),
    ("metric",),
    ("metric", 0, "use"),
    ("metric", 0, "params", "between"),
    ("metric", 0, "params", "splits"),
    ("run",),
    ("data",),
    ("attack",),
    ("trian",),
]

HOSTILE_TEXT = st.sampled_from(
    [
        "[/x]",
        "[bold]red[/bold]",
        "[data]",
        "\x1b[31mred\x1b[0m",
        "a\nb",
        "tab\there",
        "\u202eevil",
        ":smile:",
        "x" * 3000,
        "",
        "clean",
        "output",
        "toy-patch",
        "~/nowhere",
        "gpu0",
        "cuda:1",
    ]
)
SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 2**64, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=40),
    HOSTILE_TEXT,
    st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2100, 1, 1)),
    st.dates(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), HOSTILE_TEXT), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.one_of(st.text(min_size=1, max_size=12), HOSTILE_TEXT.filter(bool))


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = doc
    for key in path[:-1]:
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                return
            node = node[key]
        elif isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            return
    last = path[-1]
    if (isinstance(node, dict) and isinstance(last, str)) or (
        isinstance(node, list) and isinstance(last, int) and last < len(node)
    ):
        node[last] = value


def _delete(doc: dict[str, Any], path: tuple[Any, ...]) -> None:
    node: Any = doc
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else (node[key] if isinstance(node, list) else None)
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(st.sampled_from(["set", "set", "set", "add", "delete"]))
        if action == "set":
            _set(doc, draw(st.sampled_from(PATHS)), draw(VALUES))
        elif action == "add":
            parent = draw(st.sampled_from([p for p in PATHS if len(p) <= 3]))
            _set(doc, (*parent[:-1], draw(KEYS)), draw(VALUES))
        else:
            _delete(doc, draw(st.sampled_from(PATHS)))
    requires = doc.get("run", {}).get("requires") if isinstance(doc.get("run"), dict) else None
    # valid requirement names of distributions that are not installed are a plugin problem (exit 3)
    assume(not (isinstance(requires, list) and requires and all(isinstance(r, str) for r in requires)))
    return doc


@pytest.fixture(scope="module")
def host() -> Any:
    return make_host()


def _check(spec: Path, host: Any, *extra: str) -> Any:
    mp = pytest.MonkeyPatch()
    mp.setattr(cli, "_host", lambda strict=False: host)
    try:
        return CliRunner().invoke(cli.main, ["check", str(spec), *extra])
    finally:
        mp.undo()


def _assert_clean(res: Any, spec: Path) -> None:
    assert res.exit_code in (0, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    name = printable(str(spec))
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert lines, "check printed nothing"
    for line in lines:
        assert name in line, f"a line does not name the spec file: {line!r}\n{res.output}"


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    derandomize=True,
)


@FUZZ
@given(doc=documents())
def test_random_specs_exit_0_or_2_naming_the_file(doc: dict[str, Any], tmp_path: Path, host: Any) -> None:
    spec = tmp_path / "fuzz.toml"
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # a value tomli_w cannot write (e.g. a mixed array of tables)
        assume(False)
    spec.write_text(text, encoding="utf-8")
    _assert_clean(_check(spec, host), spec)


SET_KEYS = st.one_of(
    st.sampled_from([".".join(map(str, p)).replace(".0.", "[0].") for p in PATHS]),
    st.sampled_from(["metric.3.use", "defense[9].label", "run.seed.x", "a..b", "", ".", "[0]", "run[0]"]),
    st.text(max_size=20),
)
SET_VALUES = st.one_of(
    st.sampled_from(
        [
            "5",
            "1e-4",
            "inf",
            "nan",
            "-inf",
            "true",
            '"x"',
            "[1, 2]",
            '"abc"',
            "{ a = 1 }",
            "[/x]",
            "99999999999999999999",
        ]
    ),
    st.text(max_size=30),
    HOSTILE_TEXT,
)


@FUZZ
@given(pairs=st.lists(st.tuples(SET_KEYS, SET_VALUES), min_size=1, max_size=3), raw=st.booleans())
def test_random_set_pairs_exit_0_or_2_naming_the_file(
    pairs: list[tuple[str, str]], raw: bool, tmp_path: Path, host: Any
) -> None:
    spec = tmp_path / "fuzz.toml"
    spec.write_text(GOOD)
    args: list[str] = []
    for key, value in pairs:
        args += ["--set", key if raw else f"{key}={value}"]
    for key, value in pairs:  # valid requirements of distributions that are not installed: exit 3
        parsed = parse_value(value)
        assume(not ("requires" in key and isinstance(parsed, list) and all(isinstance(x, str) for x in parsed)))
    _assert_clean(_check(spec, host, *args), spec)
