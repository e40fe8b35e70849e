"""[sweep] → cells: product, zip, seeds, exclude, names, labels, override text; every table problem."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bdcore.spec.model import GridSection, GridTable
from bdcore.spec.overrides import apply_overrides, parse_value
from bdcore.sweep.grid import axis_names, expand, section_issues, toml_inline, value_label


def grid(**kw: Any) -> Any:
    table = kw.pop("table", None)
    section = GridSection(**kw, **({"table": GridTable(**table)} if table else {}))
    issues = section_issues(section)
    assert not issues, issues
    return expand(section, "run")


def test_product_in_axis_order_with_seeds_innermost() -> None:
    g = grid(axes={"victim.params.quality": [1, 2], "attack.loss.use": ["a", "b", "c"]}, seeds=[0, 7])
    assert [c.name for c in g.cells][:4] == [
        "quality=1,loss=a,seed=0",
        "quality=1,loss=a,seed=7",
        "quality=1,loss=b,seed=0",
        "quality=1,loss=b,seed=7",
    ]
    assert len(g.cells) == 2 * 3 * 2
    assert len({c.name for c in g.cells}) == 12
    cell = g.cells[3]
    assert cell.config == "quality=1,loss=b" and cell.seed == 7
    assert cell.overrides == (
        "victim.params.quality=1",
        'attack.loss.use="b"',
        "run.seed=7",
        'run.name="quality=1,loss=b,seed=7"',
    )
    assert cell.values == {"quality": 1, "loss": "b"}


def test_zip_moves_axes_together_and_names_the_group_by_its_first_axis() -> None:
    g = grid(
        axes={"a.x": [1, 2, 3], "b.y": ["p", "q", "r"], "c.z": [True, False]},
        zip=[["a.x", "b.y"]],
    )
    assert [(c.values["x"], c.values["y"], c.values["z"]) for c in g.cells] == [
        (1, "p", True),
        (1, "p", False),
        (2, "q", True),
        (2, "q", False),
        (3, "r", True),
        (3, "r", False),
    ]
    assert g.cells[0].name == "x=1,z=true"  # y moves with x
    assert g.follows == {"y": "x"}
    assert 'b.y="p"' in g.cells[0].overrides


def test_a_zipped_axis_may_repeat_a_value_when_the_group_s_positions_differ() -> None:
    """A table's rows as a zip group: the trigger settings repeat while the loss settings change."""
    g = grid(
        axes={"t.p": [{"init": 46}, {"init": 46}, {"budget": 46}], "l.p": [{"beta": 0.01}, {"beta": 1}, {"beta": 1}]},
        zip=[["t.p", "l.p"]],
        names={"t.p": "row", "l.p": "loss"},
        labels={"t.p": ["paper", "beta-1", "held"]},
        seeds=[0],
    )
    assert [c.name for c in g.cells] == ["row=paper,seed=0", "row=beta-1,seed=0", "row=held,seed=0"]
    assert [(c.values["row"], c.values["loss"]) for c in g.cells] == [
        ({"init": 46}, {"beta": 0.01}),
        ({"init": 46}, {"beta": 1}),
        ({"budget": 46}, {"beta": 1}),
    ]


def test_zip_group_placed_at_its_first_axis() -> None:
    g = grid(axes={"a.x": [1, 2], "c.z": ["u", "v"], "b.y": [10, 20]}, zip=[["b.y", "a.x"]])
    assert [c.name for c in g.cells] == ["x=1,z=u", "x=1,z=v", "x=2,z=u", "x=2,z=v"]
    assert [c.values["y"] for c in g.cells] == [10, 10, 20, 20]


def test_exclude_by_key_short_name_label_and_seed() -> None:
    axes = {"attack.loss.use": ["psnr", "bpp"], "defense[0].params.quality": [90, 50]}
    g = grid(axes=axes, exclude=[{"loss": "bpp", "defense[0].params.quality": 90}])
    assert [c.name for c in g.cells] == ["loss=psnr,quality=90", "loss=psnr,quality=50", "loss=bpp,quality=50"]
    assert g.excluded == 1
    g = grid(axes=axes, labels={"quality": ["high", "mid"]}, exclude=[{"quality": "mid"}], seeds=[0, 1])
    assert [c.name for c in g.cells] == [
        "loss=psnr,quality=high,seed=0",
        "loss=psnr,quality=high,seed=1",
        "loss=bpp,quality=high,seed=0",
        "loss=bpp,quality=high,seed=1",
    ]
    g = grid(axes=axes, seeds=[0, 1], exclude=[{"seed": 1, "loss": "bpp"}])
    assert len(g.cells) == 8 - 2 and all(not (c.seed == 1 and c.values["loss"] == "bpp") for c in g.cells)


def test_exclude_matches_numbers_as_toml_does() -> None:
    g = grid(axes={"a.x": [1, 2.5, True]}, exclude=[{"x": 1.0}])
    assert [c.values["x"] for c in g.cells] == [2.5, True]  # 1.0 == 1, but true is not 1


def test_names_short_unique_and_overridable() -> None:
    keys = ["attack.loss.use", "defense[0].params.quality", "victim.params.quality", "defense", "x.model"]
    assert axis_names(keys) == {
        "attack.loss.use": "loss",
        "defense[0].params.quality": "defense.quality",
        "victim.params.quality": "victim.quality",
        "defense": "defense",
        "x.model": "x.model",  # "model" is a column of the results
    }
    g = grid(axes={"attack.trigger.params": [{"k": 4}, {"k": 8}]}, names={"attack.trigger.params": "trig"})
    assert [c.name for c in g.cells] == ["trig=k4", "trig=k8"]


def test_values_become_readable_labels() -> None:
    assert value_label({"use": "jpeg", "params": {"quality": 50}}) == "jpeg-quality50"
    assert value_label([{"use": "jpeg", "label": "JPEG 50"}]) == "JPEG 50"
    assert value_label([]) == "none"
    assert value_label(0.1) == "0.1"
    g = grid(axes={"defense": [[], [{"use": "jpeg", "params": {"quality": 50}}]]})
    assert [c.name for c in g.cells] == ["defense=none", "defense=jpeg-quality50"]


def test_no_axes_no_seeds_is_the_base_run() -> None:
    g = grid()
    assert [c.name for c in g.cells] == ["base"]
    assert g.cells[0].overrides == ('run.name="run"',)
    g = grid(seeds=[3])
    assert [c.name for c in g.cells] == ["seed=3"] and g.cells[0].config == "base"


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3,
        1.5,
        1e-5,
        -0.0,
        math.inf,
        "plain",
        "5",
        'quo"te \\ and\nnewline',
        "ünï",
        True,
        [],
        [1, "a", [2.0]],
        {},
        {"use": "jpeg", "params": {"quality": 50, "a.b": [1, 2], "with space": "x"}},
        [{"use": "jpeg"}, {"use": "none", "label": "n"}],
    ],
)
def test_override_text_round_trips_through_set(value: Any) -> None:
    text = toml_inline(value)
    assert parse_value(text) == value and type(parse_value(text)) is type(value)
    raw: dict[str, Any] = {"defense": [{"use": "x"}]}
    assert apply_overrides(raw, [f"defense[0].params.v={text}"]) == []
    assert raw["defense"][0]["params"]["v"] == value


def test_nan_round_trips() -> None:
    assert math.isnan(parse_value(toml_inline(math.nan)))


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"axes": {"a.b": 5}}, 'sweep.axes."a.b"', "expected an array of values"),
    ({"axes": {"a.b": []}}, 'sweep.axes."a.b"', "is empty"),
    ({"axes": {"a.b": [1, 1.0]}}, 'sweep.axes."a.b"[1]', "appears twice"),
    ({"axes": {"a..b": [1]}}, 'sweep.axes."a..b"', "not a dotted key"),
    ({"axes": {"run.seed": [1, 2]}}, 'sweep.axes."run.seed"', "use sweep.seeds"),
    ({"axes": {"run.name": ["x"]}}, 'sweep.axes."run.name"', "cannot be an axis"),
    ({"axes": {"a[0].b": [1], "a.0.b": [2]}}, 'sweep.axes."a.0.b"', "sets the same key"),
    ({"axes": [1]}, "sweep.axes", "expected a table"),
    ({"axes": {"a.b": [1, 2]}, "zip": [["a.b", "c.d"]]}, "sweep.zip[0][1]", "is not an axis"),
    ({"axes": {"a.b": [1, 2], "c.d": [1]}, "zip": [["b", "d"]]}, "sweep.zip[0]", "equal lengths"),
    ({"axes": {"a.b": [1], "c.d": [1]}, "zip": [["b", "d"], ["b"]]}, "sweep.zip[1][0]", "already in zip group 0"),
    ({"zip": "a.b"}, "sweep.zip", "array of arrays"),
    ({"seeds": 3}, "sweep.seeds", "expected an array"),
    ({"seeds": [0, "1"]}, "sweep.seeds[1]", "expected an integer"),
    ({"seeds": [0, -1]}, "sweep.seeds[1]", "must be >= 0"),
    ({"seeds": [2, 2]}, "sweep.seeds[1]", "appears twice"),
    ({"axes": {"a.b": [1]}, "exclude": [{"c": 1}]}, 'sweep.exclude[0]."c"', "is not an axis"),
    ({"axes": {"a.b": [1, 2]}, "exclude": [{"b": 3}]}, 'sweep.exclude[0]."b"', "none of this axis's values"),
    ({"axes": {"a.b": [1, 2]}, "exclude": [{"b": 1}, {"b": 2}]}, "sweep.exclude", "excludes every cell"),
    ({"exclude": [{}]}, "sweep.exclude[0]", "is empty"),
    ({"seeds": [0], "exclude": [{"seed": 1}]}, 'sweep.exclude[0]."seed"', "not one of sweep.seeds"),
    ({"axes": {"a.b": [1, 2]}, "labels": {"b": ["one"]}}, 'sweep.labels."a.b"', "1 labels for 2 values"),
    ({"axes": {"a.b": [1, 2]}, "labels": {"z": ["one"]}}, 'sweep.labels."z"', "is not an axis"),
    ({"axes": {"a.b": ["x y", "x-y"]}}, 'sweep.axes."a.b"', "same name"),
    ({"axes": {"a.b": [1]}, "names": {"a.b": "seed"}}, 'sweep.names."a.b"', "not a usable name"),
    ({"axes": {"a.b": [1]}, "names": {"q": "x"}}, 'sweep.names."q"', "is not an axis"),
    ({"axes": {"a.b": [1], "c.d": [1]}, "names": {"a.b": "d"}}, 'sweep.names."a.b"', "names another axis"),
    ({"axes": {"a.b": [1]}, "table": {"rows": ["bb"]}}, "sweep.table.rows[0]", 'did you mean "b"'),
    ({"axes": {"a.b": [1]}, "table": {"rows": ["b"], "columns": ["b"]}}, "sweep.table.columns[0]", "already in"),
    ({"table": {"values": "psnr"}}, "sweep.table.values", "array of strings"),
    ({"axes": {"a.b": [1]}, "table": {"x": "q"}}, "sweep.table.x", "is not an axis"),
    ({"store": " "}, "sweep.store", "must not be empty"),
    # in a zip group one axis may repeat a value, but not every axis at the same two positions
    ({"axes": {"a.b": [1, 2, 1], "c.d": [5, 6, 5]}, "zip": [["b", "d"]]}, "sweep.zip[0]", "positions 0 and 2"),
    # ... and the group's first axis names its cells: a repeated value there needs labels
    ({"axes": {"a.b": [1, 1], "c.d": [5, 6]}, "zip": [["b", "d"]]}, 'sweep.axes."a.b"', "zip group 0"),
    ({"axes": {"a.b": [1, 1], "c.d": [5, 6]}, "zip": [["b", "d"]]}, 'sweep.axes."a.b"', "[sweep.labels]"),
    # an axis outside the zip group still may not repeat
    ({"axes": {"a.b": [1, 2], "c.d": [5, 6], "e.f": [3, 3]}, "zip": [["b", "d"]]}, 'sweep.axes."e.f"[1]', "twice"),
]


@pytest.mark.parametrize(("fields", "path", "message"), BAD, ids=[f"{p}:{m}" for _, p, m in BAD])
def test_table_problems_name_their_key(fields: dict[str, Any], path: str, message: str) -> None:
    table = fields.pop("table", None)
    section = GridSection(**fields, **({"table": GridTable(**table)} if table else {}))
    issues = section_issues(section)
    hits = [i for i in issues if i.path == path and message in f"{i.message} ({i.hint})"]
    assert hits, issues
