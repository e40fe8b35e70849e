"""Output files respect the umask: every file a run, ``bdcore report --out`` and the stage store write gets
``0o666 & ~umask`` (folders ``0o777 & ~umask``), never the 0600 of the atomic writer's temporary file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.io import atomic
from bdcore.testing import run_spec

SPEC = """
[run]
name = "modes"
seed = 1
checkpoint_every = 2
[data]
use = "toy-smooth"
params = { count = 12, size = 8 }
[victim]
use = "toy-denoiser"
params = { width = 4 }
[train]
steps = 3
batch_size = 4
[attack]
poison_rate = 0.5
steps = 3
batch_size = 4
from_clean = true
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert"
[[metric]]
use = "psnr"
[eval]
grid = 2
"""


@pytest.fixture
def umask() -> Iterator[object]:
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}


def wrong_modes(root: Path, mask: int) -> dict[str, str]:
    want_file, want_dir = 0o666 & ~mask, 0o777 & ~mask
    return {
        name: oct(mode)
        for name, mode in modes(root).items()
        if mode != (want_dir if (root / name).is_dir() else want_file)
    }


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_every_output_of_a_run_and_a_report_respects_the_umask(tmp_path: Path, umask: object, mask: int) -> None:
    os.umask(mask)
    out = run_spec(SPEC, tmp_path / "spec", out=tmp_path / "runs")
    names = set(modes(tmp_path / "runs"))
    run = out.run_dir.name
    for expected in ("manifest.json", "results.jsonl", "results.csv", "report.html", "poison_index.json", "COMPLETE"):
        assert f"{run}/{expected}" in names, expected
    assert any(n.startswith(".stages/") and n.endswith("tensors.safetensors") for n in names), names
    assert any(n.startswith(".stages/") and n.endswith("stage.json") for n in names), names
    page = tmp_path / "cmp" / "compare.html"
    res = CliRunner().invoke(cli.main, ["report", str(out.run_dir), "--out", str(page), "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert wrong_modes(tmp_path / "runs", mask) == {}
    assert wrong_modes(tmp_path / "cmp", mask) == {}


@pytest.mark.parametrize("mask", [0o002, 0o077])
def test_atomic_writers_give_new_files_the_umask_mode(tmp_path: Path, umask: object, mask: int) -> None:
    os.umask(mask)
    atomic.write_text(tmp_path / "a.txt", "x")
    atomic.write_bytes(tmp_path / "b.bin", b"x")
    # a writer that replaces the temporary file by a new one (unlink + create) still ends with the umask mode
    atomic.write_with(tmp_path / "c.bin", lambda p: (p.unlink(), p.write_bytes(b"x")))
    atomic.write_text(tmp_path / "a.txt", "rewritten")
    assert atomic.current_umask() == mask
    assert {n: oct(m) for n, m in modes(tmp_path).items()} == {
        n: oct(0o666 & ~mask) for n in ("a.txt", "b.bin", "c.bin")
    }
