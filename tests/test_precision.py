"""Mixed precision: bf16 end to end on the CPU tracks fp32; float32 islands (``keep_fp32``, ``@fp32``);
loss scaling for 16-mixed; channels-last and compile leave the numbers where they belong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from bdcore.precision import MixedPrecision, fp32, fp32_islands, fp32_modules
from bdcore.testing import run_spec

SPEC = """
[run]
name = "prec"
seed = 5
checkpoint_every = 50
[data]
use = "toy-smooth"
params = {{ count = 24, size = 16 }}
[victim]
use = "toy-denoiser"
params = {{ width = 16 }}
[train]
steps = 100
batch_size = 6
lr = 2e-3
{train}
[attack]
poison_rate = 0.3
steps = 100
batch_size = 6
lr = 5e-3
from_clean = true
{train}
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "toy-invert-controlled"
[[metric]]
use = "psnr"
[eval]
grid = 0
"""


def histories(out: Any) -> dict[str, list[float]]:
    stages = out.run_dir.parent / ".stages"
    return {
        s: [h["loss"] for h in json.loads(next(stages.glob(f"{s}-*[!l]/stage.json")).read_text())["history"]]
        for s in ("clean-victim", "attack")
    }


def test_bf16_runs_end_to_end_on_cpu_and_tracks_fp32(tmp_path: Path) -> None:
    """Tolerance: every logged mean loss of the clean stage within 2 % of fp32's (measured: 0.5 %); the
    attack stage's first within 2 % and its last within 25 %: the backdoor loss drops steeply mid-run and
    where exactly is chaotic — fp32 alone, on 1 and on 2 threads, ends at 0.0740 and 0.0663 (11 % apart),
    bf16 at 0.0752 and 0.0742. The attack is visible in both and the clean PSNRs stay within 3 dB."""
    ref = run_spec(SPEC.format(train=""), tmp_path / "fp32")
    bf16 = run_spec(SPEC.format(train='precision = "bf16"'), tmp_path / "bf16")
    h32, h16 = histories(ref), histories(bf16)
    assert h16 != h32  # bf16 really ran
    for a, b in zip(h16["clean-victim"], h32["clean-victim"], strict=True):
        assert a == pytest.approx(b, rel=0.02)
    assert h16["attack"][0] == pytest.approx(h32["attack"][0], rel=0.02)
    assert h16["attack"][-1] == pytest.approx(h32["attack"][-1], rel=0.25)
    assert h16["attack"][-1] < 0.5 * h16["attack"][0]
    for out in (ref, bf16):
        assert out.value("psnr", split="poisoned") < out.value("psnr", split="clean") - 10.0
    assert bf16.value("psnr", split="clean") == pytest.approx(ref.value("psnr", split="clean"), abs=3.0)
    resolved = (bf16.run_dir / "spec.resolved.toml").read_text()
    assert resolved.count('precision = "bf16"') == 2


class Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.seen: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.dtype)
        return self.lin(x)


class Flagged(Recorder):
    keep_fp32 = True


class Model(nn.Module):
    keep_fp32 = ("exact", "Flagged")

    def __init__(self) -> None:
        super().__init__()
        self.exact = Recorder()
        self.by_class = Flagged()
        self.plain = Recorder()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.plain(x)
        return [h, self.exact(h), self.by_class(h)]


def test_keep_fp32_parts_run_in_float32_under_autocast() -> None:
    model = Model()
    assert {id(m) for m in fp32_modules(model)} == {id(model.exact), id(model.by_class)}
    x = torch.rand(2, 4)
    with fp32_islands([model]), torch.autocast("cpu", dtype=torch.bfloat16):
        plain, exact, by_class = model(x)
    assert plain.dtype == torch.bfloat16
    assert exact.dtype == by_class.dtype == torch.float32
    assert model.exact.seen == [torch.float32]  # the bf16 activation was cast up on the way in
    torch.testing.assert_close(exact, model.exact.lin(plain.float()), rtol=0, atol=0)
    assert "forward" not in model.exact.__dict__  # the islands are undone afterwards
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x)[1].dtype == torch.bfloat16


def test_fp32_decorator_matches_a_float32_computation() -> None:
    @fp32
    def transform(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b

    a, b = torch.rand(8, 8) * 255, torch.rand(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = transform(a.bfloat16(), b)
        unguarded = a @ b
    assert inside.dtype == torch.float32 and unguarded.dtype == torch.bfloat16
    torch.testing.assert_close(inside, a.bfloat16().float() @ b, rtol=0, atol=0)
    assert transform(a, b).dtype == torch.float32


def test_block_dct_stays_float32_under_bf16() -> None:
    from bdcore.ops.blockdct import blocks_dct, blocks_idct

    x = torch.rand(2, 3, 4, 4, 16, 16) * 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        back = blocks_idct(blocks_dct(x))
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, x, rtol=0, atol=1e-3)


def test_16_mixed_scales_the_loss_and_skips_an_overflowing_step() -> None:
    """PyTorch's AMP recipe: scaled backward, unscale before clipping, a step with inf gradients skipped
    and the scale halved."""
    prec = MixedPrecision("16-mixed", "cpu")
    assert prec.scaler is not None and prec.dtype == torch.float16
    w = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    scale = prec.scaler.get_scale()
    prec.backward((w * 2).sum())
    assert torch.equal(w.grad, torch.full((3,), 2.0 * scale))
    prec.step(opt, [w], grad_clip=1.0)
    assert torch.all(w < 1) and prec.scaler.get_scale() == scale  # clipped step taken
    before = w.detach().clone()
    opt.zero_grad()
    prec.backward((w * float("inf")).sum())
    prec.step(opt, [w], grad_clip=None)
    assert torch.equal(w.detach(), before) and prec.scaler.get_scale() == scale / 2
    state = prec.state_dict()
    fresh = MixedPrecision("16-mixed", "cpu")
    fresh.load_state_dict(state)
    assert fresh.scaler.get_scale() == scale / 2  # type: ignore[union-attr]
    assert MixedPrecision("bf16", "cpu").scaler is None


def test_channels_last_and_compile_keep_the_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """channels_last only changes the memory layout: same results up to float rounding. compile (the eager
    backend here: no C++ compiler needed in CI) traces the same operations: same results."""
    monkeypatch.setenv("BDCORE_COMPILE_BACKEND", "eager")
    short = SPEC.replace("steps = 100", "steps = 20")
    ref = histories(run_spec(short.format(train=""), tmp_path / "ref"))
    layout = histories(run_spec(short.format(train="channels_last = true"), tmp_path / "cl"))
    compiled = histories(run_spec(short.format(train="compile = true"), tmp_path / "compiled"))
    for stage in ref:
        assert layout[stage] == pytest.approx(ref[stage], rel=1e-4)
        assert compiled[stage] == pytest.approx(ref[stage], rel=1e-5)
