"""The method cards' results tables are regenerated from the committed sweep exports (tools/results_tables.py).

Fix a failure of the last test with ``python tools/results_tables.py`` (from the repository root) and commit.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "tools" / "results_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["results_tables"] = module
    spec.loader.exec_module(module)
    return module


rt = _load()

# A sweep export as `bdcore sweep` writes it: comment header, one row per config × model × split × metric.
EXPORT = """\
# Produced by bdcore sweep t.toml --out runs/t
config,row,model,split,metric,mean,std,n,values
row=a,paper,attacked,clean,psnr,23.746,0.674,3,1;2;3
row=a,paper,attacked,clean,bpp,0.35549,0.01,3,1;2;3
row=a,paper,attacked,poisoned,psnr,23.5,0.5,3,1;2;3
row=a,paper,trigger,poisoned,stealth_psnr,56.6,3.2,3,1;2;3
row=b,ours,attacked,clean,psnr,20.0,1.0,3,1;2;3
row=b,ours,attacked,clean,bpp,0.4,0.02,3,1;2;3
row=b,ours,attacked,poisoned,psnr,8.104,2.849,2,1;2
row=b,ours,trigger,poisoned,stealth_psnr,39.4,0.8,1,1
"""

RECIPE = """\
source = "results/t.csv"
rows = ["row"]
headers = ["loss"]
[rename]
paper = "paper: Eq. 8"
[[column]]
title = "clean PSNR / bpp"
join = " / "
where = { model = "attacked", split = "clean" }
parts = [{ where = { metric = "psnr" } }, { where = { metric = "bpp" }, digits = 3, std = false }]
[[column]]
title = "triggered PSNR"
where = { model = "attacked", split = "poisoned", metric = "psnr" }
[[column]]
title = "trigger PSNR"
digits = 1
where = { model = "trigger", split = "poisoned", metric = "stealth_psnr" }
[[column]]
title = "JPEG 50"
where = { model = "jpeg50", split = "poisoned", metric = "psnr" }
"""

# Written out by hand from EXPORT: mean ± std at the digits asked, "(n = k)" below the table's 3 seeds,
# no "±" for one seed, "–" where nothing matches, rows in order of appearance, renamed.
EXPECTED = """\
| loss | clean PSNR / bpp | triggered PSNR | trigger PSNR | JPEG 50 |
|---|---|---|---|---|
| paper: Eq. 8 | 23.75 ± 0.67 / 0.355 | 23.50 ± 0.50 | 56.6 ± 3.2 | – |
| ours | 20.00 ± 1.00 / 0.400 | 8.10 ± 2.85 (n = 2) | 39.4 (n = 1) | – |
"""


def _readme(tmp_path: Path, recipe: str = RECIPE, table: str = "stale\n") -> Path:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.csv").write_text(EXPORT)
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# card\n\ntext before\n<!-- results-table\n{recipe}-->\n{table}<!-- end results-table -->\n\nafter\n"
    )
    return readme


def test_a_table_is_rendered_from_the_export_as_written_by_hand(tmp_path: Path) -> None:
    text = rt.regenerate(_readme(tmp_path))
    assert EXPECTED in text
    assert text.startswith("# card\n\ntext before\n<!-- results-table\n") and text.endswith(
        "<!-- end results-table -->\n\nafter\n"
    )
    assert "stale" not in text


def test_regenerating_twice_changes_nothing(tmp_path: Path) -> None:
    readme = _readme(tmp_path)
    readme.write_text(rt.regenerate(readme))
    assert rt.regenerate(readme) == readme.read_text()


def test_join_separates_the_parts(tmp_path: Path) -> None:
    recipe = RECIPE.replace('join = " / "', 'join = " → "')
    assert "| paper: Eq. 8 | 23.75 ± 0.67 → 0.355 |" in rt.regenerate(_readme(tmp_path, recipe))


def test_scale_multiplies_mean_and_std(tmp_path: Path) -> None:
    recipe = 'source = "results/t.csv"\nrows = ["row"]\nscale = 100\ndigits = 1\n[[column]]\ntitle = "bpp %"\nwhere = { metric = "bpp" }\n'
    text = rt.regenerate(_readme(tmp_path, recipe))
    assert "| row | bpp % |\n|---|---|\n| paper | 35.5 ± 1.0 |\n| ours | 40.0 ± 2.0 |\n" in text


def test_the_recipe_where_keeps_only_matching_rows_of_the_export(tmp_path: Path) -> None:
    # rows = ["model"] over the whole export would put both rows' "attacked" lines in one cell (ambiguous);
    # the recipe's where keeps row paper's lines only, so each model is one row, in order of appearance.
    recipe = (
        'source = "results/t.csv"\nrows = ["model"]\nwhere = { row = "paper" }\n'
        '[[column]]\ntitle = "PSNR"\nwhere = { metric = "psnr", split = "poisoned" }\n'
        '[[column]]\ntitle = "trigger"\ndigits = 1\nwhere = { metric = "stealth_psnr" }\n'
    )
    text = rt.regenerate(_readme(tmp_path, recipe))
    assert (
        "| model | PSNR | trigger |\n|---|---|---|\n| attacked | 23.50 ± 0.50 | – |\n| trigger | – | 56.6 ± 3.2 |\n"
        in text
    )
    (tmp_path / "all").mkdir()
    with pytest.raises(rt.RecipeError, match="2 rows match"):
        rt.regenerate(_readme(tmp_path / "all", recipe.replace('where = { row = "paper" }\n', "")))


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (RECIPE.replace('split = "poisoned", metric = "psnr" }', 'split = "clean" }'), "2 rows match"),
        (RECIPE.replace('rows = ["row"]', 'rows = ["loss"]'), r"README.md \(source results/t.csv\): no column 'loss'"),
        (RECIPE.replace('headers = ["loss"]', 'headers = ["a", "b"]'), "2 headers for 1 row columns"),
        (RECIPE.replace('"results/t.csv"', '"results/missing.csv"'), "does not exist"),
        (RECIPE.replace("[rename]", "[rename"), "not valid TOML"),
        ('source = "results/t.csv"\nrows = ["row"]\n', r"at least one \[\[column\]\]"),
    ],
    ids=["ambiguous", "unknown-row-column", "headers", "missing-source", "bad-toml", "no-columns"],
)
def test_a_bad_recipe_fails_with_the_readme_named(tmp_path: Path, recipe: str, message: str) -> None:
    with pytest.raises(rt.RecipeError, match=message):
        rt.regenerate(_readme(tmp_path, recipe))


def test_an_unclosed_block_fails(tmp_path: Path) -> None:
    readme = _readme(tmp_path)
    readme.write_text(readme.read_text().replace("<!-- end results-table -->", ""))
    with pytest.raises(rt.RecipeError, match="1 results-table blocks open, 0 end"):
        rt.regenerate(readme)


def test_every_committed_results_table_is_up_to_date() -> None:
    found = rt.readmes()
    assert any("bd-plugin-diffpure" in str(p) for p in found)
    for readme in found:
        for recipe in rt.BLOCK.finditer(readme.read_text()):
            assert (readme.parent / tomllib.loads(recipe["recipe"])["source"]).is_file()
    assert rt.main(["--check"]) == 0, "run `python tools/results_tables.py` and commit the result"
