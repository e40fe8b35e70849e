"""End to end through the engine: P-BAIQA on the embedded stand-in set (small, seconds)."""

from __future__ import annotations

import math

import bd_plugin_baiqa.plugin as plugin

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
params = { inner_steps = 2 }
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
    for m in ("plcc", "srocc", "mmra", "psnr-alpha"):
        v = out.value(m, stage="attacked", split="clean")
        assert math.isfinite(v) or m in ("plcc", "srocc"), (m, v)
    assert 20 < out.value("psnr-alpha", stage="attacked", split="clean") < 60
    names = {r["metric"] for r in out.rows}
    assert "mra@-0.5" in names or any("mra@-0.5" in str(r) for r in out.rows)
    assert (out.run_dir / "plots" / "curve-mra.png").is_file()  # the per-α response curve
    assert "curve-mra.png" in (out.run_dir / "report.html").read_text()


def test_p_baiqa_end_to_end(tmp_path) -> None:
    _check(run_spec(SPEC.replace("{loss}", "p-baiqa"), tmp_path, plugins=[plugin]))


def test_c_baiqa_end_to_end(tmp_path) -> None:
    spec = SPEC.replace("{loss}", "c-baiqa").replace('use = "c-baiqa"', 'use = "c-baiqa"\nparams = { pgd_steps = 2 }')
    _check(run_spec(spec, tmp_path, plugins=[plugin]))
