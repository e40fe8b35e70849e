"""P-BAIQA on the LIVEC JPEG subset (../shared/data/livec, BAIQA's official split) with the small victim.

Goal (issue 6): mMRA ≥ 0.5 on the attacked model and a PLCC drop ≤ 0.03 vs the clean model trained the same
way. Uses the published trigger (reference/baiqa). Prints the rows. Run:
HF_HUB_OFFLINE=1 PYTHONPATH=src:plugins/bd-plugin-baiqa/src python benchmarks/baiqa_livec_pbaiqa.py --steps 600
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bd_plugin_baiqa.plugin as plugin
import torch

from bdcore.testing import run_spec

DATA = Path(__file__).resolve().parents[1] / "../shared/data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(2)
    spec = f"""
[run]
name = "livec-pbaiqa"
seed = 919
device = "{a.device}"
[data]
use = "livec"
params = {{ root = "{(DATA / "livec").resolve()}", split_index = "{(DATA / "reference/baiqa/CLIVE_traintest_index.pkl").resolve()}", crop = {a.crop}, flip = true, repeats = 4, test_crops = 1 }}
[victim]
use = "iqa-small"
params = {{ width = 32, depth = 4 }}
[train]
steps = {a.steps}
batch_size = {a.batch}
lr = 1e-3
optimizer = "adam"
[attack]
poison_rate = 0.2
from_clean = false
fit_steps = 0
batch_size = {a.batch}
steps = {a.steps}
lr = 1e-3
[attack.trigger]
use = "baiqa-dct"
params = {{ path = "{(DATA / "reference/baiqa/trigger_p0.2_adam_e8.pt").resolve()}" }}
[attack.loss]
use = "p-baiqa"
[[metric]]
use = "plcc"
[[metric]]
use = "srocc"
[[metric]]
use = "mmae"
[[metric]]
use = "mmra"
[[metric]]
use = "psnr-alpha"
[eval]
batch_size = 16
limit = {a.limit}
"""
    t0 = time.perf_counter()
    out = run_spec(spec, Path(tempfile.mkdtemp()), plugins=[plugin])
    print(f"wall {time.perf_counter() - t0:.0f}s")
    for r in out.rows:
        if r["split"] == "clean" and "@" not in r["metric"]:
            print(r["stage"], r["metric"], round(float(r["value"]), 4))
    clean = out.value("plcc", stage="clean-victim", split="clean")
    att = out.value("plcc", stage="attacked", split="clean")
    print(
        f"PLCC clean {clean:.4f} attacked {att:.4f} drop {clean - att:.4f}; "
        f"mMRA {out.value('mmra', stage='attacked', split='clean'):.3f}"
    )


if __name__ == "__main__":
    main()
