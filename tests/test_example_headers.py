"""Every example spec says in its header what it shows and how long it takes, and each paper plugin has a CPU
example that shows the paper's effect within 10 minutes on 2 cores — or its CPU examples are labelled smoke
tests that name what does show it.

Header form (the leading comment block)::

    # Shows: what a user learns from it
    # Time: about N min on 2 CPU cores (how it was measured)       a CPU example
    # Time: GPU, paper scale (...)                                  a paper-scale example
    # Effect: the measured effect                                   or
    # Smoke test: why it shows no effect; the effect: <path of the spec or benchmark that shows it>
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted([*ROOT.glob("examples/*.toml"), *ROOT.glob("plugins/*/examples/*.toml")])
#: plugins that implement a paper (bd-plugin-baselines collects other papers' baselines); the demo is bavaft's
PAPER_PLUGINS = ("asfiba", "baiqa", "bavaft", "diffpure", "sketch")
CPU_TIME = re.compile(r"about (\d+(?:\.\d+)?) min on 2 CPU cores")


def header(path: Path) -> dict[str, str]:
    """``{"Shows": ..., "Time": ..., ...}`` from the leading comment block (continuation lines joined)."""
    fields: dict[str, str] = {}
    key = None
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        m = re.match(r"(Shows|Time|Effect|Smoke test):\s*(.*)", text)
        if m:
            key = m.group(1)
            fields[key] = m.group(2)
        elif key is not None and line.startswith("#   "):
            fields[key] += " " + text
        else:
            key = None
    return fields


def plugin_of(path: Path) -> str:
    return (
        "bavaft"
        if path.parent.name == "examples" and path.parent.parent == ROOT
        else path.parts[-3][len("bd-plugin-") :]
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_states_what_it_shows_and_how_long_it_takes(path: Path) -> None:
    fields = header(path)
    assert fields.get("Shows"), f"{path}: no '# Shows:' line in the header"
    time = fields.get("Time", "")
    device = tomllib.loads(path.read_text()).get("run", {}).get("device", "cpu")
    if device == "cpu":
        assert CPU_TIME.search(time), f"{path}: '# Time: about N min on 2 CPU cores (...)' expected, got {time!r}"
        assert ("Effect" in fields) != ("Smoke test" in fields), f"{path}: one of '# Effect:' or '# Smoke test:'"
    else:
        assert "GPU" in time or CPU_TIME.search(time), f"{path}: the Time line names GPU or CPU minutes: {time!r}"
    if "Smoke test" in fields or "smoke" in path.stem:
        assert "smoke" in path.stem and "Smoke test" in fields, f"{path}: a smoke test says so in name and header"
        named = re.findall(r"[\w./-]+\.(?:toml|py)", fields["Smoke test"])
        assert any((ROOT / n).is_file() or (path.parent / n).is_file() for n in named), (
            f"{path}: the smoke test must name an existing spec or benchmark that shows the effect, got {named}"
        )


@pytest.mark.parametrize("plugin", PAPER_PLUGINS)
def test_each_paper_plugin_shows_its_effect_on_cpu_within_10_minutes_or_says_smoke_test(plugin: str) -> None:
    cpu = [p for p in EXAMPLES if plugin_of(p) == plugin and CPU_TIME.search(header(p).get("Time", ""))]
    assert cpu, f"bd-plugin-{plugin} has no CPU example"
    showing = [p for p in cpu if "Effect" in header(p) and float(CPU_TIME.search(header(p)["Time"]).group(1)) <= 10]
    smoke = [p for p in cpu if "Smoke test" in header(p)]
    assert showing or len(smoke) == len(cpu), (
        f"bd-plugin-{plugin}: no CPU example shows the effect within 10 min and not all are smoke tests"
    )
