"""With every plugin installed: AS-FIBA's comparison (Tables I/II) and analyses (Figs. 5/6) through the
engine — SF-I-Net, WaNet, ISSBA and FIBA each trained by the ``asfiba`` loss (Eq. 5 with I_0.1 and the
trigger family's own pseudo triggers) from one shared clean victim, each run with a fine-pruning sweep
and STRIP, then one ``bdcore report`` table across the four runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("bd_plugin_asfiba")
pytest.importorskip("bd_plugin_baselines")
pytest.importorskip("skimage")  # the embedded faces and trigger photographs

TRIGGERS = {
    "asfiba": 'use = "sf-i-net"\nparams = { preset = "small", trigger_image = "coffee", pool_size = 32 }',
    "wanet": 'use = "wanet"',
    "issba": 'use = "issba"\nparams = { bits = 8, width = 8 }',
    "fiba": 'use = "fiba"',
}

SPEC = """
[run]
name = "cmp-{attack}"
seed = 0
[data]
use = "degraded-faces"
params = {{ size = 32, limit = 16 }}
[victim]
use = "unet-restorer"
params = {{ base = 8, depth = 2 }}
[train]
steps = 4
batch_size = 4
lr = 2e-3
[attack]
from_clean = true
fit_steps = 2
steps = 3
batch_size = 4
lr = 5e-4
[attack.trigger]
{trigger}
[attack.loss]
use = "asfiba"
[[defense]]
use = "fine-pruning"
params = {{ layer = "downs.1.2.2", calib_batches = 1 }}
sweep = {{ param = "rate", values = [0.5, 0.9] }}
[[defense]]
use = "strip"
params = {{ n_overlays = 2, pool_size = 4 }}
[[metric]]
use = "asfiba-asr"
[[metric]]
use = "asfiba-ba"
[[metric]]
use = "psnr"
[eval]
batch_size = 4
limit = 4
"""


def test_four_attacks_under_eq5_with_fine_pruning_strip_and_one_comparison_table(tmp_path: Path) -> None:
    import bd_plugin_asfiba.plugin as asfiba
    import bd_plugin_baselines.plugin as baselines

    import bdcore.cli as cli
    from bdcore.testing import run_spec

    store = tmp_path / "runs"
    run_dirs = []
    for attack, trigger in TRIGGERS.items():
        out = run_spec(SPEC.format(attack=attack, trigger=trigger), tmp_path / attack, [asfiba, baselines], out=store)
        run_dirs.append(out.run_dir)
        assert ("clean-victim" in out.reused) == (attack != "asfiba"), (attack, out.reused)  # trained once
        # Eq. 5's third term was trained for every trigger family (the attack stage's logged terms)
        key = json.loads((out.run_dir / "manifest.json").read_text())["stages"]["attack"]
        history = json.loads((store / ".stages" / f"attack-{key}" / "stage.json").read_text())["history"]
        assert history and all({"clean", "backdoor", "pseudo"} <= set(h) for h in history), (attack, history)
        # Fig. 5: BA/ASR against the pruning rate; Fig. 6: STRIP's statistic, clean vs triggered
        report = (out.run_dir / "report.html").read_text()
        assert "plots/sweep-fine-pruning.png" in report and (out.run_dir / "plots/sweep-fine-pruning.png").is_file()
        assert "detector_statistic [poisoned]" in report and "detection_auroc [poisoned]" in report
        for rate in ("rate=0.5", "rate=0.9"):
            for metric, split in (("asfiba-ba", "clean"), ("asfiba-asr", "poisoned")):
                assert (
                    0.0 <= out.value(metric, stage="defended", split=split, defense="fine-pruning", setting=rate) <= 100
                )
        for split in ("clean", "poisoned"):
            out.value("detector_statistic", stage="defended", split=split, defense="strip")
        assert 0.0 <= out.value("detection_auroc", stage="defended", defense="strip") <= 1.0
        assert any(p.name.startswith("detection-strip") for p in (out.run_dir / "plots").iterdir())
        assert out.value("stealth_psnr", stage="trigger") > 20.0
    page = tmp_path / "compare.html"
    args = ["report", *map(str, run_dirs), "--model", "attacked", "--out", str(page)]
    for m in ("stealth_psnr", "asfiba-asr", "asfiba-ba", "psnr"):
        args += ["--metric", m]
    res = CliRunner().invoke(cli.main, args)
    assert res.exit_code == 0, res.output
    html = page.read_text()
    for attack in TRIGGERS:
        assert f"<td class=l>cmp-{attack}</td><td class=l>attacked</td>" in html
    head = html[html.index("<table>") : html.index("</tr>")]
    assert head.index("stealth_psnr") < head.index("asfiba-asr [poisoned]") < head.index("asfiba-ba [clean]")
    assert "fine-pruning" not in html


def test_the_baselines_pseudo_triggers_feed_eq5() -> None:
    """Unit view of the same wiring: the asfiba loss returns a pseudo term for each baseline trigger, and
    a baseline without pseudo triggers is refused by default (not silently trained without the term)."""
    import torch
    from bd_plugin_asfiba.attack import ASFIBA
    from bd_plugin_asfiba.params import ASFIBAParams
    from bd_plugin_baselines import params_triggers as P
    from bd_plugin_baselines.triggers import FIBA, ISSBA, SIG, WaNet

    from bdcore.context import Context
    from bdcore.errors import ComponentError

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    clean = {"input": x, "target": x}
    for trig in (WaNet(P.WaNetParams()), FIBA(P.FIBAParams()), ISSBA(P.ISSBAParams(width=8))):
        atk = ASFIBA(ASFIBAParams(), Context(seed=0, trigger=trig, component="attack:asfiba"))
        with torch.no_grad():
            terms = atk.attack_loss(lambda t: t, clean, atk.poison(clean, trig))
        assert float(terms["pseudo"]) > 0.0, type(trig).__name__  # identity victim: |I'_p − I| > 0
    with pytest.raises(ComponentError, match="pseudo_poison"):
        ASFIBA(ASFIBAParams(), Context(seed=0, trigger=SIG(P.SigParams()), component="attack:asfiba"))
