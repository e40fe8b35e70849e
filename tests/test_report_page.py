"""report.html: the setup, clean-vs-attacked deltas with arrows, examples from distinct source images labelled
by model, the attack target only where it means something, readable loss axes, the manifest collapsed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bdcore import hookimpl
from bdcore.report.html import clean_vs_attacked, delta_cell, render_deltas
from bdcore.report.plots import loss_axis, plain_tick
from bdcore.testing import run_spec
from bdcore.testing.toy import ToyInvert

SPEC = """
[run]
name = "page"
seed = 2
[data]
use = "image-folder"
params = {{ path = "{photos}", crop = 8, test_crops = 3, train_fraction = 0.5 }}
[victim]
use = "toy-denoiser"
params = {{ width = 4 }}
[train]
steps = 2
batch_size = 4
[attack]
poison_rate = 0.5
steps = 2
batch_size = 4
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "{loss}"
[[metric]]
use = "psnr"
[eval]
grid = 5
batch_size = 4
"""


class SameAsInput(ToyInvert):
    """An untargeted attack: its 'target' is the clean input (a codec reconstructs its input)."""

    def attack_target(self, batch: Any, strength: Any) -> Any:
        return batch["input"]


class Described(ToyInvert):
    target_description = "outputs <b>inverted</b> & flipped"


class Losses:
    @hookimpl
    def register_attack_losses(self, register: Any) -> None:
        from bdcore.testing.toy import InvertParams

        register("same-as-input", SameAsInput, params=InvertParams, summary="test")
        register("described", Described, params=InvertParams, summary="test")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"photo{i}.png")
    return folder


def _page(tmp_path: Path, photos: Path, loss: str) -> tuple[Any, str]:
    out = run_spec(SPEC.format(photos=photos, loss=loss), tmp_path, [Losses()])
    return out, (out.run_dir / "report.html").read_text()


def test_examples_come_from_distinct_photographs_labelled_by_model(tmp_path: Path, photos: Path) -> None:
    out, html = _page(tmp_path, photos, "toy-invert")
    # 3 test photographs × 3 crops = 9 samples; the grid asks for 5 but shows one crop of each photograph
    assert "mean over <b>9</b> test samples from <b>3</b> distinct source images" in html
    grid = html.split("<h2>Examples</h2>")[1]
    sources = re.findall(r"<tr><td class=l>([^<]*)</td><td><img", grid)
    assert len(sources) == 3 and len(set(sources)) == 3 and all(s.startswith("photo") for s in sources), sources
    assert "[eval] grid = 5, but the evaluated test samples come from 3 distinct source images" in grid
    assert re.findall(r"<th colspan=(\d+)>(.*?)</th>", grid) == [
        ("4", "test inputs"),
        ("2", "clean victim"),
        ("2", "attacked model"),
    ]
    assert "<td><b>attack target</b></td>" in grid  # toy-invert's target (the inverted image) is shown
    for group in ("inputs-clean-input", "clean-victim-output-poisoned-input", "attacked-model-output-poisoned-input"):
        assert len(list((out.run_dir / "grid").glob(f"{group}-*.png"))) == 3
    # the manifest is collapsed, not a 3000 px <pre>
    assert re.search(r"<details><summary>manifest.json[^<]*</summary><pre>", html)
    assert "<h2>Clean vs attacked</h2>" in html and "<td class=l>psnr</td>" in html


@pytest.mark.parametrize(
    ("loss", "note"),
    [
        ("same-as-input", "Attack target: not shown"),
        ("described", "Attack target: outputs &lt;b&gt;inverted&lt;/b&gt; &amp; flipped"),
    ],
)
def test_an_attack_target_that_means_nothing_is_not_a_column(
    tmp_path: Path, photos: Path, loss: str, note: str
) -> None:
    _, html = _page(tmp_path, photos, loss)
    grid = html.split("<h2>Examples</h2>")[1]
    assert "<b>attack target</b>" not in grid and "<b>inverted</b>" not in html
    assert note in grid


def test_deltas_have_direction_arrows_coloured_by_the_metrics_direction() -> None:
    rows = [
        {"stage": s, "split": sp, "metric": m, "value": v, "higher_is_better": hib, "defense": None}
        for s, sp, m, v, hib in (
            ("clean-victim", "clean", "psnr", 30.0, True),
            ("attacked", "clean", "psnr", 29.5, True),
            ("clean-victim", "poisoned", "psnr", 28.0, True),
            ("attacked", "poisoned", "psnr", 9.0, True),
            ("clean-victim", "clean", "lpips", 0.1, False),
            ("attacked", "clean", "lpips", 0.05, False),
            ("clean-victim", "poisoned", "asr", 0.0, None),
            ("attacked", "poisoned", "asr", 100.0, None),
            ("attacked", "poisoned", "only-attacked", 1.0, True),
        )
    ]
    assert [m for m, _, _ in clean_vs_attacked(rows)] == ["psnr", "lpips", "asr"]
    assert delta_cell(30.0, 29.5, True) == "<td class=bad>\u22120.5 \u2193</td>"
    assert delta_cell(28.0, 9.0, True) == "<td class=bad>\u221219 \u2193</td>"
    assert delta_cell(0.1, 0.05, False) == "<td class=good>\u22120.05 \u2193</td>"
    assert delta_cell(0.0, 100.0, None) == "<td class=flat>+100 \u2191</td>"
    assert delta_cell(1.0, 1.0, True) == "<td class=flat>+0 =</td>"
    assert delta_cell(None, 1.0, True) == "<td class=na></td>"
    page = render_deltas(rows)
    assert "only-attacked" not in page and page.count("<tr><td class=l>") == 3
    assert render_deltas([r for r in rows if r["stage"] == "attacked"]) == ""


def test_loss_axes_read_as_plain_numbers() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (mixed, decades) = plt.subplots(1, 2)
    assert loss_axis(mixed, [-3.0, -1.0, 0.5, 2.0]) == "linear"  # negative losses: no log, no symlog
    assert loss_axis(decades, [5.0, 0.4, 0.01]) == "log"
    for ax, values in ((mixed, [-3.0, 2.0]), (decades, [0.01, 5.0])):
        ax.plot([0, 1], values)
    fig.canvas.draw()
    for ax in (mixed, decades):
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert labels and all(re.fullmatch(r"\u2212?[0-9.]+(e[+\u2212]\d+)?", t) for t in labels), labels
        assert not any("10^" in t or "$" in t for t in labels)
    plt.close(fig)
    assert [plain_tick(v) for v in (0.0, -0.0, -1.0, 0.05, 20000.0)] == ["0", "0", "\u22121", "0.05", "20000"]
