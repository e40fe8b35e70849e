"""End to end through the engine: P-BAIQA on the embedded stand-in set (small, seconds)."""

from __future__ import annotations

import math

import bd_plugin_baiqa.plugin as plugin
import pytest

from bdcore.testing import run_spec

SPEC = """
[run]
name = "t"
seed = 0
device = "cpu"
[data]
use = "iqa-embedded"
params = { size = 48, crop = 32, repeats = 1, test_crops = 1, levels = 2 }
[victim]
use = "iqa-small"
params = { width = 8, depth = 3 }
[train]
steps = 4
batch_size = 8
lr = 1e-3
optimizer = "adam"
[attack]
poison_rate = 0.3
from_clean = true
fit_steps = 1
batch_size = 8
steps = 4
lr = 1e-3
[attack.trigger]
use = "baiqa-dct"
params = { inner_steps = 2, surrogate_steps = 2 }
[attack.loss]
use = "{loss}"
[[metric]]
use = "plcc"
[[metric]]
use = "srocc"
[[metric]]
use = "mmra"
params = { alphas = [1.0, -0.5] }
[[metric]]
use = "psnr-alpha"
[eval]
batch_size = 8
limit = 8
"""


def _check(out) -> None:
    out.assert_success()
    for stage in ("clean-victim", "attacked"):
        for m in ("plcc", "srocc", "mmra", "psnr-alpha"):
            v = out.value(m, stage=stage, split="clean")
            assert math.isfinite(v), (stage, m, v)  # a NaN PLCC/SROCC (constant predictions) fails the run
    assert abs(out.value("plcc", stage="attacked", split="clean")) > 0.0
    assert 20 < out.value("psnr-alpha", stage="attacked", split="clean") < 60
    names = {r["metric"] for r in out.rows}
    assert "mra@-0.5" in names or any("mra@-0.5" in str(r) for r in out.rows)
    assert (out.run_dir / "plots" / "curve-mra.png").is_file()  # the per-α response curve
    assert "curve-mra.png" in (out.run_dir / "report.html").read_text()


def test_p_baiqa_end_to_end(tmp_path) -> None:
    _check(run_spec(SPEC.replace("{loss}", "p-baiqa"), tmp_path, plugins=[plugin]))


@pytest.mark.parametrize("refine", ["image", "batch"])
def test_c_baiqa_end_to_end(tmp_path, refine: str) -> None:
    """Both refinements through the engine: "image" refines the poisoned training images once, before
    training (the official code); "batch" refines the crops in every step."""
    spec = SPEC.replace("{loss}", "c-baiqa").replace(
        'use = "c-baiqa"', f'use = "c-baiqa"\nparams = {{ pgd_steps = 2, pgd_views = 3, refine = "{refine}" }}'
    )
    out = run_spec(spec, tmp_path, plugins=[plugin])
    _check(out)
    prepared = 'poisoned items prepared by attack.loss: attack loss "c-baiqa"' in (out.run_dir / "run.log").read_text()
    assert prepared is (refine == "image")


def test_algorithm_2_end_to_end_reuses_the_partial_surrogate(tmp_path) -> None:
    """Algorithm 1's surrogate (trained on the poisoned share) drives C-BAIQA's PGD (surrogate = "trigger");
    a second run with another attack reuses the fit stage and gets the surrogate back from the store."""
    c_spec = SPEC.replace("{loss}", "c-baiqa").replace(
        'use = "c-baiqa"', 'use = "c-baiqa"\nparams = { pgd_steps = 1, pgd_views = 2, surrogate = "trigger" }'
    )
    first = run_spec(c_spec, tmp_path / "a", plugins=[plugin], out=tmp_path / "runs")
    _check(first)
    assert "trigger-fit" not in first.reused
    again = run_spec(
        c_spec.replace("pgd_views = 2", "pgd_views = 3"), tmp_path / "b", plugins=[plugin], out=tmp_path / "runs"
    )
    _check(again)
    assert "trigger-fit" in again.reused and "attack" not in again.reused


def test_nan_correlation_fails_the_end_to_end_check(tmp_path) -> None:
    """The check above is not vacuous: a victim with constant output gives NaN PLCC/SROCC and fails it."""
    constant = "params = { width = 8, depth = 3, score_scale = 0.0 }"
    spec = SPEC.replace("{loss}", "p-baiqa").replace("params = { width = 8, depth = 3 }", constant)
    out = run_spec(spec, tmp_path, plugins=[plugin])
    assert math.isnan(out.value("plcc", stage="attacked", split="clean"))
    with pytest.raises(AssertionError, match="plcc"):
        _check(out)


def _fit_key(tmp_path, spec: str, name: str) -> tuple[str, dict]:
    from bdcore.spec.structure import load_spec
    from bdcore.sweep.plan import cell_stages
    from bdcore.testing import make_host

    path = tmp_path / f"{name}.toml"
    path.write_text(spec)
    stages = cell_stages(load_spec(path, make_host([plugin]).registry))
    return stages["trigger-fit"][1], stages


@pytest.mark.parametrize("surrogate", ["partial", "clean-victim"])
def test_the_fit_keys_on_the_clean_training_only_when_it_searches_against_the_clean_victim(
    tmp_path, surrogate: str
) -> None:
    """Algorithm 1's partial surrogate is a fresh victim trained on the poisoned share (builds_victim): another
    clean training keeps its fit, another victim architecture refits. surrogate = "clean-victim" searches
    against the trained clean victim (needs_victim), so its fit follows the clean training too."""
    spec = SPEC.replace("{loss}", "p-baiqa").replace(
        "params = { inner_steps = 2, surrogate_steps = 2 }",
        f'params = {{ inner_steps = 2, surrogate_steps = 2, surrogate = "{surrogate}" }}',
    )
    key, _ = _fit_key(tmp_path, spec, "base")
    longer, _ = _fit_key(tmp_path, spec.replace("[train]\nsteps = 4", "[train]\nsteps = 5"), "longer")
    deeper, _ = _fit_key(tmp_path, spec.replace("width = 8, depth = 3", "width = 8, depth = 2"), "deeper")
    assert deeper != key
    assert (longer == key) is (surrogate == "partial")
    # through the engine: the second run (another clean training) reuses the partial surrogate's fit
    runs = tmp_path / "runs"
    run_spec(spec, tmp_path / "a", plugins=[plugin], out=runs).assert_success()
    again = run_spec(
        spec.replace("[train]\nsteps = 4", "[train]\nsteps = 5"), tmp_path / "b", plugins=[plugin], out=runs
    )
    again.assert_success()
    assert ("trigger-fit" in again.reused) is (surrogate == "partial")
